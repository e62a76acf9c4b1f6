"""FakeProviders: the fake's public face. Tests start it, script it (enqueue, set_default, models,
strict_models, gemini_crlf) and watch it (requests, outcomes, disconnects, floods, wait_for); the handler threads
report to it through the underscored methods at the end."""
from __future__ import annotations

import collections
import socket
import threading

from tests.fakeprovider.handler import _Handler, _Server
from tests.fakeprovider.records import Flood, RecordedRequest
from tests.fakeprovider.registry import BASE_PATHS, DEFAULT_MODELS, PROVIDERS
from tests.fakeprovider.reply import Reply


class FakeProviders:
    """Every provider of the gateway's registry, faked on one 127.0.0.1 port, each under its own base path.
    Starts on construction; also a context manager."""

    def __init__(self, port: int = 0):
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server = self._thread = None
        self._port = port
        self._conns: set = set()
        self._queues = {p: collections.deque() for p in PROVIDERS}
        self._defaults = {p: Reply() for p in PROVIDERS}
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[str] = []
        self._outcomes: list[tuple[str, str]] = []
        self._floods: list[Flood] = []
        self._generation = 0  # bumped by clear(): a flood still running from before is not recorded after it
        self.models = {p: list(m) for p, m in DEFAULT_MODELS.items()}
        self.strict_models = False  # True: a chat for a model not in self.models gets the provider's real error
        self.gemini_crlf = True  # Gemini ends SSE events with \r\n\r\n (see GeminiFormat.separator); False: \n\n
        self.start()

    def start(self) -> "FakeProviders":
        if self._server is None:
            self._stopping.clear()
            handler = type("Handler", (_Handler,), {"fake": self})
            self._server = _Server(("127.0.0.1", self._port), handler)
            self._port = self._server.server_address[1]  # a restart reuses the same port
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fakeprovider", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes every _pause()
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            conns = list(self._conns)
        for c in conns:  # unblock handlers idling on keep-alive connections
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def base_url(self, provider: str) -> str:
        return self.url + BASE_PATHS[provider]

    def enqueue(self, provider: str, *replies: Reply) -> None:
        with self._cond:
            for r in replies:
                self._queues[provider].append([r, max(1, r.times)])

    def set_default(self, provider: str, reply: Reply) -> None:
        with self._cond:
            self._defaults[provider] = reply

    def pending(self, provider: str) -> int:
        """Requests still to be served from the queue."""
        with self._cond:
            return sum(n for _, n in self._queues[provider])

    def clear(self) -> None:
        with self._cond:
            for q in self._queues.values():
                q.clear()
            self._requests.clear()
            self._disconnects.clear()
            self._outcomes.clear()
            self._floods.clear()
            self._generation += 1
            self.models = {p: list(m) for p, m in DEFAULT_MODELS.items()}
            self.strict_models = False
            self._defaults = {p: Reply() for p in PROVIDERS}
            self._cond.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def chat_requests(self, provider: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "chat" and provider in (None, r.provider)]

    def embedding_requests(self, provider: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "embeddings" and provider in (None, r.provider)]

    @property
    def disconnects(self) -> list[str]:
        with self._cond:
            return list(self._disconnects)

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """(provider, "complete" | "dropped" | "stalled" | "never_answered") for every chat reply that ran to its scripted end."""
        with self._cond:
            return list(self._outcomes)

    @property
    def floods(self) -> list[Flood]:
        """How every flood (Reply.endless, Reply.body_bytes) ended, in the order they ended."""
        with self._cond:
            return list(self._floods)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests for exactly this path (a redirect's Location, say), whatever their provider."""
        return [r for r in self.requests if r.path == path]

    def wait_flood(self, provider: str, timeout: float = 5.0) -> Flood | None:
        """The first flood to end for `provider`, waiting up to `timeout` for one."""
        found = self.wait_for(lambda f: any(x.provider == provider for x in f._floods), timeout)
        return next((x for x in self.floods if x.provider == provider), None) if found else None

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_disconnect(self, provider: str, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda f: provider in f._disconnects, timeout)

    def _next_reply(self, provider: str) -> Reply:
        with self._cond:
            q = self._queues[provider]
            if not q:
                return self._defaults[provider]
            q[0][1] -= 1
            return q[0][0] if q[0][1] > 0 else q.popleft()[0]

    def _notify(self, lst, item):
        with self._cond:
            lst.append(item)
            self._cond.notify_all()

    def _record(self, rec):
        self._notify(self._requests, rec)

    def _disconnected(self, provider):
        self._notify(self._disconnects, provider)

    def _outcome(self, provider, what):
        self._notify(self._outcomes, (provider, what))

    def _flooded(self, flood, generation):
        with self._cond:
            if generation == self._generation:
                self._floods.append(flood)
                self._cond.notify_all()

    def _track(self, conn, add):
        with self._cond:
            (self._conns.add if add else self._conns.discard)(conn)
