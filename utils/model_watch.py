"""Retired models are named, not guessed at: at start-up and then every `interval` seconds, ask each
configured provider for its model list (no chat quota spent). A configured model the provider no longer
offers takes the provider out of the rotation, with one log line naming the setting to change and the
closest ids on offer; it comes back when the list offers the model again."""
from __future__ import annotations

import difflib
import logging
import threading

from utils.errors import GatewayError, ProviderError
from utils.router import Router

log = logging.getLogger("gateway")


class ModelWatcher:
    def __init__(self, router: Router, interval: float):
        self.router = router
        self.interval = interval
        self._stop = threading.Event()

    def start(self) -> None:
        if self.interval and self.router.configured:
            threading.Thread(target=self._run, name="model-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        for provider in self.router.configured:
            try:
                offered = provider.list_models()
            except ProviderError as exc:
                log.warning("could not list the provider's models", extra={"service": provider.name,
                                                                          "reason": exc.kind})
                continue
            if provider.model in offered:
                self.router.model_offered(provider)
            else:
                self.router.model_missing(provider, difflib.get_close_matches(provider.model, offered, n=3, cutoff=0.3))

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except GatewayError as exc:  # e.g. Redis away: try again next round
                log.warning("model check skipped", extra={"reason": exc.message})
            if self._stop.wait(self.interval):
                return
