"""A webhook receiver for the tests: a local HTTP server on 127.0.0.1 that records every delivery and answers
as scripted (statuses in turn, then 200; a redirect; or hang until released)."""
from __future__ import annotations

import collections
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    def __init__(self, port: int = 0):
        self.statuses: collections.deque[int] = collections.deque()  # answered in turn; then 200
        self.redirect_to: str | None = None  # answer 302 with this Location
        self.hang = threading.Event()  # set: every request waits for `release` before it is answered
        self.release = threading.Event()
        self.received: list[Delivery] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    receiver.received.append(Delivery(self.path, dict(self.headers), body))
                    receiver._cond.notify_all()
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                if receiver.hang.is_set():
                    receiver.release.wait(30)
                self.send_response(302 if receiver.redirect_to else status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def events(self, event_type: str | None = None) -> list[dict]:
        with self._cond:
            return [d.event for d in self.received if event_type in (None, d.event["type"])]

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        """Wait until `predicate(self)` holds, woken by each delivery."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
