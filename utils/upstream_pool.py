"""The connection pools under `utils/upstream.py`'s `requests` adapter: urllib3's own, with one change. An
answer is read through a small buffer (http.client gives every response an 8 KiB one), because a stream holds
its buffer for as long as it lasts, however little it is sent, and one worker holds thousands of streams. The
body is still read in what the socket has, a buffer at a time, so a burst of events costs a few more reads.
"""
from __future__ import annotations

import http.client

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

READ_BUFFER = 2048  # bytes: a status line and headers, or a few events, at a time


class _SmallBuffers:
    """The socket as http.client sees it: its `makefile` gives a reader with a READ_BUFFER buffer."""

    def __init__(self, sock):
        self._sock = sock

    def makefile(self, mode: str):
        return self._sock.makefile(mode, READ_BUFFER)


class LeanResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, **kwargs):
        super().__init__(_SmallBuffers(sock), *args, **kwargs)


class _Connection(HTTPConnection):
    response_class = LeanResponse


class _TLSConnection(HTTPSConnection):
    response_class = LeanResponse


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class LeanAdapter(HTTPAdapter):
    """`requests`' adapter over those pools (direct connections; through a proxy, urllib3's own)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
