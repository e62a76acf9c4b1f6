"""Noticing at once that a streaming client has gone, even while the provider is silent.

Writing to a closed connection fails, but only when there is something to write: a client that leaves
while its provider stalls would hold the upstream connection until the idle timeout. Under gunicorn's
gevent worker, the event loop watches the client's socket for turning readable (a watcher, not a greenlet:
thousands of open streams hold no stack for it); readable with nothing to read means the client closed, and
the serving greenlet is interrupted with `ClientGone`, which unwinds through the stream's `finally` blocks and
so closes the upstream response.
"""
from __future__ import annotations

import fcntl
import socket
import struct
import termios
from collections.abc import Callable

import gevent
from gevent import monkey

READ = 1  # libev's and libuv's EV_READ / UV_READABLE


class ClientGone(gevent.GreenletExit):
    """Thrown into a serving greenlet whose client closed the connection. A GreenletExit, so no
    `except Exception` on the way mistakes it for a provider's failure."""


def watch_client(client: socket.socket | None) -> Callable[[], None]:
    """Start watching `client` for the current greenlet; returns the function that stops watching."""
    if client is None or not monkey.is_module_patched("socket"):
        return lambda: None
    serving = gevent.getcurrent()
    try:
        fd = client.fileno()
        watcher = gevent.get_hub().loop.io(fd, READ)
    except OSError:  # the socket is already gone: the next write will say so
        return lambda: None

    def readable() -> None:  # in the loop, once: readable with data (a pipelined request) stays so
        watcher.stop()
        try:  # the bytes waiting, asked of the kernel: nothing here can block the loop
            waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return  # as above
        if waiting == 0:  # readable with nothing to read: closed
            serving.kill(ClientGone, block=False)

    watcher.start(readable)
    return watcher.close
