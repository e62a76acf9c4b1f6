"""Sending the webhook outbox (utils/webhooks.py), off the request path: one background thread per worker
(a greenlet under gunicorn's gevent workers), started when there is a webhook to send to.

Each delivery follows the Standard Webhooks specification (https://www.standardwebhooks.com/): the body as it
was queued, `webhook-id` (the same on every retry), `webhook-timestamp` and `webhook-signature`, signed by the
`standardwebhooks` package with the webhook's secret. An attempt succeeds on a 2xx, gets `timeout` seconds in
all, never follows a redirect (a 3xx is a failure) and reads nothing of the answer but its status. A failed
attempt is tried again after a back-off that doubles from `retry_delay` up to an hour, for a day; then the
delivery is marked failed. A slow or dead receiver holds up only this thread, never a chat request.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timezone

import gevent
import requests
from gevent import monkey
from standardwebhooks import Webhook

from utils.webhooks import WebhookStore

log = logging.getLogger("gateway")

RETRY_FOR = 86400.0  # a delivery is given up a day after its event
MAX_RETRY_DELAY = 3600.0
POLL_SECONDS = 2.0  # how soon deliveries queued by other workers or machines are noticed
BATCH = 8  # deliveries sent side by side, so one dead receiver does not hold up the others
USER_AGENT = "ai-gateway-webhooks"


class AttemptTimeout(Exception):
    """The attempt's whole time ran out (under gevent, where it can be cut short anywhere)."""


def retry_delay(attempt: int, first: float) -> float:
    """Seconds before the attempt after number `attempt` (1 for the first)."""
    return min(MAX_RETRY_DELAY, first * 2 ** (attempt - 1))


def signed_headers(delivery: dict, now: float) -> dict:
    # Whole seconds first: a time a microsecond short of the next second would round up in the datetime, and
    # the signature would then be over another second than the header's.
    moment = datetime.fromtimestamp(int(now), timezone.utc)
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": delivery["id"],
            "webhook-timestamp": str(int(now)),
            "webhook-signature": Webhook(delivery["secret"]).sign(delivery["id"], moment, delivery["payload"])}


class Deliverer:
    def __init__(self, hooks: WebhookStore, *, timeout: float, retry_delay: float, clock=time.time):
        self.hooks = hooks
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.clock = clock
        self.session = requests.Session()
        # Proxies come from the environment (HTTPS_PROXY, NO_PROXY) as for providers; ~/.netrc credentials do not.
        self.session.trust_env = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + 5)

    def deliver_due(self) -> int:
        """Claim the deliveries due now and send them; how many were sent."""
        # The claim outlives any attempt, so no other sender takes the row while this one is still trying.
        claimed = self.hooks.claim(self.clock(), hold=2 * self.timeout + 10, limit=BATCH)
        senders = [threading.Thread(target=self.send, args=(delivery,), daemon=True) for delivery in claimed[1:]]
        for sender in senders:
            sender.start()
        if claimed:
            self.send(claimed[0])
        for sender in senders:
            sender.join()
        return len(claimed)

    def send(self, delivery: dict) -> None:
        """One attempt, and its outcome recorded: delivered, tried again later, or failed for good."""
        now, started = self.clock(), time.monotonic()
        status, error = None, None
        # Under gevent the whole attempt is cut at `timeout`; elsewhere each connect and read is.
        deadline = gevent.Timeout(self.timeout, AttemptTimeout) if monkey.is_module_patched("socket") else nullcontext()
        try:
            with deadline:
                response = self.session.post(delivery["url"], data=delivery["payload"].encode(),
                                             headers=signed_headers(delivery, now), allow_redirects=False,
                                             timeout=(self.timeout, self.timeout), stream=True,
                                             proxies=requests.utils.get_environ_proxies(delivery["url"]))
                response.close()  # the status is the answer; the body is never read
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except (AttemptTimeout, requests.Timeout):
            error = f"no answer within {self.timeout:g} seconds"
        except requests.ConnectionError:
            error = "could not connect"  # not the exception's text: it holds the URL, which may hold a token
        except (requests.RequestException, ValueError, OSError) as exc:  # a URL no request can be sent to, say
            error = type(exc).__name__
        try:
            self._record(delivery, now, int((time.monotonic() - started) * 1000), status, error)
        except Exception:  # the row keeps its claim until it runs out, then is tried again
            log.exception("could not record a webhook attempt", extra={"deliveryId": delivery["id"]})

    def _record(self, delivery: dict, now: float, duration_ms: int, status: int | None, error: str | None) -> None:
        give_up_at = delivery["created_at"] + RETRY_FOR
        about = {"webhookId": delivery["webhook_id"], "deliveryId": delivery["id"], "event": delivery["type"],
                 "attempt": delivery["attempts"]}
        if error is None:
            self.hooks.record(delivery, now, duration_ms, status, None, "delivered")
        elif now >= give_up_at:
            self.hooks.record(delivery, now, duration_ms, status, error, "failed")
            log.warning("webhook delivery failed for good", extra={**about, "error": error})
        else:
            retry_at = min(now + retry_delay(delivery["attempts"], self.retry_delay), give_up_at)
            self.hooks.record(delivery, now, duration_ms, status, error, "pending", retry_at)
            log.info("webhook delivery attempt failed; will retry", extra={**about, "error": error})

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.deliver_due():
                    continue
                due = self.hooks.next_due()
                if self._failing:
                    self._failing = False
                    log.info("webhook deliveries resumed")
            except Exception:  # the database away, say: this thread must outlive it, or nothing is sent again
                if not self._failing:
                    self._failing = True
                    log.exception("webhook deliveries paused; will retry")
                due = None
            wait = POLL_SECONDS if due is None else min(POLL_SECONDS, max(0.05, due - self.clock()))
            self._wake.wait(wait)
