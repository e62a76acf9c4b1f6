"""All HTTP to providers goes through here: one pooled `requests.Session` per provider per worker,
(connect, read) timeouts on every call, per-request headers on the call, and `requests`' exceptions
turned into `ProviderError` in this module and nowhere else.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import requests
import urllib3
from requests.adapters import HTTPAdapter

from utils.errors import ProviderError

# Enough pooled connections per provider for a worker's concurrent streams; more are opened on demand
# (pool_block=False) and simply not kept.
POOL_SIZE = 256


class Upstream:
    """The HTTP client of one provider. Per-process: each gunicorn worker builds its own."""

    def __init__(self, connect_timeout: float, first_token_timeout: float, idle_timeout: float, base_url: str = ""):
        # Until the first event arrives, reads may wait `first_token_timeout`; after it, `idle_timeout`.
        self.timeout = (connect_timeout, first_token_timeout)
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.session = requests.Session()
        # Proxy settings are read from the environment once, here: with trust_env on, requests would
        # scan os.environ and ~/.netrc on every call (a sixth of a request's CPU time).
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(base_url) if base_url else {}
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, url: str, *, headers: dict, json: dict, stream: bool) -> requests.Response:
        # Compressed streams would be held back by the decompressor: ask for identity.
        headers = {**headers, "Accept-Encoding": "identity"} if stream else headers
        try:
            return self.session.post(url, headers=headers, json=json, stream=stream, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise _translate(exc) from None

    def get(self, url: str, *, headers: dict) -> requests.Response:
        try:
            return self.session.get(url, headers=headers, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise _translate(exc) from None

    def iter_bytes(self, response: requests.Response) -> Iterator[bytes]:
        """The body as it arrives, never waiting to fill a buffer: a chunked body yields each HTTP
        chunk, any other body whatever one socket read returns.

        Keep-alive comments (`: OPENROUTER PROCESSING`) do not count as a first token: until a `data:`
        line arrives, the first-token deadline holds; then each read may wait `idle_timeout`."""
        raw = response.raw
        deadline = time.monotonic() + self.first_token_timeout
        waiting = True
        try:
            reads = raw.read_chunked(None, decode_content=True) if raw.chunked and raw.supports_chunked_reads() \
                else iter(lambda: raw.read1(65536, decode_content=True), b"")
            for data in reads:
                if waiting:
                    if b"data:" in data:
                        waiting = False
                        _set_read_timeout(raw, self.idle_timeout)
                    elif time.monotonic() > deadline:
                        raise TimeoutError
                yield data
        except Exception as exc:  # urllib3 and socket errors alike: the stream broke
            raise _translate(exc) from None


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
