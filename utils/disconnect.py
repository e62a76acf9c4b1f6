"""Noticing at once that a streaming client has gone, even while the provider is silent.

Writing to a closed connection fails, but only when there is something to write: a client that leaves
while its provider stalls would hold the upstream connection until the idle timeout. Under gunicorn's
gevent worker, a small greenlet waits for the client's socket to turn readable; end-of-file there means
the client closed, and the serving greenlet is interrupted with `ClientGone`, which unwinds through the
stream's `finally` blocks and so closes the upstream response.
"""
from __future__ import annotations

import socket
from collections.abc import Callable

import gevent
from gevent import monkey
from gevent.socket import wait_read


class ClientGone(gevent.GreenletExit):
    """Thrown into a serving greenlet whose client closed the connection. A GreenletExit, so no
    `except Exception` on the way mistakes it for a provider's failure."""


def watch_client(client: socket.socket | None) -> Callable[[], None]:
    """Start watching `client` for the current greenlet; returns the function that stops watching."""
    if client is None or not monkey.is_module_patched("socket"):
        return lambda: None
    serving = gevent.getcurrent()

    def watch() -> None:
        try:
            wait_read(client.fileno())
            if client.recv(1, socket.MSG_PEEK) == b"":  # readable with nothing to read: closed
                serving.kill(ClientGone, block=False)
        except OSError:
            pass  # the socket is already gone: the next write will say so

    watcher = gevent.spawn(watch)
    return lambda: watcher.kill(block=False)
