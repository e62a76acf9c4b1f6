"""All HTTP to providers goes through here: one pooled `requests.Session` per provider per worker,
(connect, read) timeouts on every call, per-request headers on the call, and `requests`' exceptions
turned into `ProviderError` in this module and nowhere else.

A provider's answer is untrusted: redirects are never followed (requests would carry `x-goog-api-key`
to the new host), and every read is bounded in bytes and time, so a provider that streams forever,
or trickles, is that provider's failure rather than a worker's lost memory.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import gevent
import requests
import urllib3
from requests.adapters import HTTPAdapter

from utils.errors import ProviderError

# Enough pooled connections per provider for a worker's concurrent streams; more are opened on demand
# (pool_block=False) and simply not kept.
POOL_SIZE = 256
# A busy stream yields to the other greenlets this often (seconds): a socket that always has data
# never blocks, so without it one fast provider would starve every other request on the worker.
YIELD_EVERY = 0.005
# Every request asks for an uncompressed body: a compressed one would be held back by the decompressor
# (streams), and the byte bounds below would count compressed bytes.
IDENTITY = {"Accept-Encoding": "identity"}


class Upstream:
    """The HTTP client of one provider. Per-process: each gunicorn worker builds its own."""

    def __init__(self, connect_timeout: float, first_token_timeout: float, idle_timeout: float, base_url: str = "",
                 *, max_bytes: int = 32 * 1024 * 1024, answer_timeout: float = 600.0):
        # Until the first event arrives, reads may wait `first_token_timeout`; after it, `idle_timeout`.
        self.timeout = (connect_timeout, first_token_timeout)
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        # Bounds on one answer: bytes read from the provider, and seconds from the first read to the last.
        self.max_bytes = max_bytes
        self.answer_timeout = answer_timeout
        self.session = requests.Session()
        # Proxy settings are read from the environment once, here: with trust_env on, requests would
        # scan os.environ and ~/.netrc on every call (a sixth of a request's CPU time).
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(base_url) if base_url else {}
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, url: str, *, headers: dict, json: dict) -> requests.Response:
        """Send a request whose answer is read as a stream (`iter_bytes`, `read_prefix`)."""
        try:
            return self.session.post(url, headers={**headers, **IDENTITY}, json=json, stream=True,
                                     timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.RequestException as exc:
            raise _translate(exc) from None

    def get(self, url: str, *, headers: dict) -> requests.Response:
        """A GET whose body is read with `read_prefix`."""
        try:
            return self.session.get(url, headers={**headers, **IDENTITY}, stream=True, timeout=self.timeout,
                                    allow_redirects=False)
        except requests.exceptions.RequestException as exc:
            raise _translate(exc) from None

    def iter_bytes(self, response: requests.Response) -> Iterator[bytes]:
        """The body as it arrives, never waiting to fill a buffer: a chunked body yields each HTTP
        chunk, any other body whatever one socket read returns.

        Keep-alive comments (`: OPENROUTER PROCESSING`) do not count as a first token: until a `data:`
        line arrives, the first-token deadline holds; then each read may wait `idle_timeout`."""
        raw = response.raw
        started = last_yield = time.monotonic()
        deadline = started + self.first_token_timeout
        answer_deadline = started + self.answer_timeout
        waiting, received, tail = True, 0, b""
        try:
            for data in _reads(raw):
                now = time.monotonic()
                if waiting:
                    seen, tail = tail + data, data[-4:]  # `data:` may arrive split over two reads
                    if b"data:" in seen:
                        waiting = False
                        _set_read_timeout(raw, self.idle_timeout)
                    elif now > deadline:
                        raise TimeoutError
                received += len(data)
                if received > self.max_bytes:
                    raise ProviderError(f"the provider's answer passed {self.max_bytes} bytes (MAX_ANSWER_BYTES)",
                                        kind="too_large")
                if now > answer_deadline:
                    raise ProviderError(f"the provider's answer lasted over {self.answer_timeout:g} s "
                                        "(ANSWER_TIMEOUT)", kind="timeout")
                yield data
                if now - last_yield > YIELD_EVERY:
                    gevent.sleep(0)
                    last_yield = time.monotonic()
        except ProviderError:
            raise
        except Exception as exc:  # urllib3 and socket errors alike: the stream broke
            raise _translate(exc) from None


def read_prefix(response: requests.Response, limit: int, seconds: float) -> tuple[bytes, bool]:
    """At most `limit` bytes of a body, read within about `seconds`, and whether that was all of it.
    For bodies read whole (error answers, model lists): a 400 MB error page costs 64 KB, not 400 MB."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    try:
        for piece in _reads(response.raw):
            data += piece
            if len(data) > limit or time.monotonic() > deadline:
                return bytes(data[:limit]), False
    except Exception:  # a body that breaks is as far as it got
        return bytes(data[:limit]), False
    return bytes(data), True


def _reads(raw: urllib3.HTTPResponse) -> Iterator[bytes]:
    """Whatever the socket has, as it arrives: each HTTP chunk of a chunked body, else each read."""
    if raw.chunked and raw.supports_chunked_reads():
        return raw.read_chunked(None, decode_content=True)
    return iter(lambda: raw.read1(65536, decode_content=True), b"")


def _set_read_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    # requests takes one read timeout per call; the socket under an open response can be given another.
    connection = getattr(raw, "connection", None)
    if connection is not None and connection.sock is not None:
        connection.sock.settimeout(seconds)


def _translate(exc: Exception) -> ProviderError:
    # Messages stay generic: a library's text can carry URLs and internals that clients need not see.
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ProviderError("connecting to the provider timed out", kind="timeout")
    if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return ProviderError("the provider stopped sending (read timed out)", kind="timeout")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ProviderError("could not reach the provider", kind="connect")
    return ProviderError("the connection to the provider broke", kind="broken")
