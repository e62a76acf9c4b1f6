"""All HTTP to providers goes through here: one pooled `requests.Session` per provider per worker,
(connect, read) timeouts on every call, per-request headers on the call, and `requests`' exceptions
turned into `ProviderError` in this module and nowhere else.

A provider's answer is untrusted: redirects are never followed (requests would carry `x-goog-api-key`
to the new host), and every read is bounded in bytes and time, so a provider that streams forever,
or trickles, is that provider's failure rather than a worker's lost memory.

The hot path is lean: a request is prepared here (its URL once) and sent by the session's adapter (over
`utils/upstream_pool.py`); a chunked answer is read as whatever the socket has, its framing taken off here.
"""
from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator

import gevent
import requests
import urllib3
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, merge_cookies
from requests.structures import CaseInsensitiveDict
from requests.utils import get_auth_from_url

from utils.errors import ProviderError
from utils.upstream_pool import LeanAdapter

# Pooled connections per provider for a worker's concurrent streams; more are opened on demand, and not kept.
POOL_SIZE = 256
# A busy stream yields to the others this often (seconds): a socket always ready never blocks, and would starve them.
YIELD_EVERY = 0.005
# Uncompressed bodies: a decompressor holds a stream back, and the byte bounds would count compressed bytes.
IDENTITY = {"Accept-Encoding": "identity"}
READ_SIZE = 65536  # at most this much of what has arrived, per socket read
MAX_CHUNK_LINE = 65536  # a longer chunk-size or trailer line is a broken answer (urllib3's own bound)
URL_CACHE = 256  # prepared URLs kept per provider (Gemini's carry the model, which a client may choose)
# How many more chunks of the same upstream read are ready behind the one just handed on (the provider's
# stream sets it before each chunk it yields): a writer gathers them into one send, and sends at once
# when none are, so a lone event is never held back. Per greenlet, so per request.
_READY: contextvars.ContextVar[int] = contextvars.ContextVar("upstream_ready", default=0)
set_ready, more_ready = _READY.set, _READY.get


class Upstream:
    """The HTTP client of one provider. Per-process: each gunicorn worker builds its own."""

    def __init__(self, connect_timeout: float, first_token_timeout: float, idle_timeout: float, base_url: str = "",
                 *, max_bytes: int = 32 * 1024 * 1024, answer_timeout: float = 600.0):
        # Reads may wait `first_token_timeout` until the first event arrives, then `idle_timeout`.
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
        adapter = LeanAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._urls: dict[str, str] = {}

    def post(self, url: str, *, headers: dict, json: dict) -> requests.Response:
        """Send a request whose answer is read as a stream (`iter_bytes`, `read_prefix`)."""
        return self._send("POST", url, headers, json)

    def get(self, url: str, *, headers: dict) -> requests.Response:
        """A GET whose body is read with `read_prefix`."""
        return self._send("GET", url, headers, None)

    def _send(self, method: str, url: str, headers: dict, json: dict | None) -> requests.Response:
        """`session.request(method, url, ..., stream=True, allow_redirects=False)`'s request (headers in their
        order, body, cookies, proxies, verification) without its per-call merging, hooks and redirect work."""
        session = self.session
        try:
            if url not in self._urls and any(get_auth_from_url(url)):  # credentials in the URL: requests' way
                return session.request(method, url, headers={**headers, **IDENTITY}, json=json, stream=True,
                                       timeout=self.timeout, allow_redirects=False)
            prepared = requests.PreparedRequest()
            prepared.method, prepared.url = method, self._urls.get(url) or self._prepare_url(url)
            merged = CaseInsensitiveDict(session.headers)
            merged.update({**headers, **IDENTITY})
            prepared.prepare_headers(merged)
            if session.cookies:
                prepared.prepare_cookies(merge_cookies(RequestsCookieJar(), session.cookies))
            prepared.prepare_body(None, None, json)
            response = session.get_adapter(prepared.url).send(prepared, stream=True, timeout=self.timeout,
                                                              proxies=session.proxies, verify=session.verify,
                                                              cert=session.cert)
            if "set-cookie" in response.headers:  # the session keeps what a provider sets, as Session.send does
                extract_cookies_to_jar(session.cookies, prepared, response.raw)
            response.request = None  # its body (the whole prompt) need not live as long as the stream
            return response
        except requests.exceptions.RequestException as exc:
            raise _translate(exc) from None

    def _prepare_url(self, url: str) -> str:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        if len(self._urls) >= URL_CACHE:
            self._urls.clear()
        self._urls[url] = prepared.url
        return prepared.url

    def iter_bytes(self, response: requests.Response) -> Iterator[bytes]:
        """The body as it arrives, never waiting to fill a buffer: what one socket read returns (a chunked
        body's framing taken off), so under load one read carries many events.

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
                    tail = (seen := tail + data)[-4:]  # `data:` may arrive split over reads
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
    """Whatever the socket has, as it arrives: a chunked body without its framing, else each read."""
    if raw.chunked and raw.supports_chunked_reads():
        fp = getattr(raw._fp, "fp", None)
        encoding = raw.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity") and hasattr(fp, "read1"):
            return _dechunked(raw, fp)
        return raw.read_chunked(None, decode_content=True)
    return iter(lambda: raw.read1(READ_SIZE, decode_content=True), b"")


def _dechunked(raw: urllib3.HTTPResponse, fp) -> Iterator[bytes]:
    """A chunked body's data, one socket read at a time: each read's chunks joined, their framing
    (size lines, CRLFs, the last chunk and its trailers) taken off, as urllib3's `read_chunked` would.
    At the end the connection goes back to the pool; on any failure the response's close drops it.
    A line split over reads waits in a bytearray and only new bytes are searched: linear time."""
    pending: bytearray | None = None  # a size or trailer line not yet complete
    left = skip = 0  # the current chunk's data bytes to come; then its CRLF's
    trailers: int | None = None  # once the last chunk is read: the bytes of its trailer lines so far
    while True:
        # peek waits in the reader's own buffer, so a stream waiting for its provider holds no read buffer.
        data = fp.peek(1) and fp.read1(READ_SIZE)
        if not data:
            if trailers is not None:  # some servers end without the final CRLF
                break
            raise urllib3.exceptions.ProtocolError("Response ended prematurely")
        out = []
        pos, end = 0, len(data)
        while pos < end:
            if left:
                take = min(left, end - pos)
                out.append(data[pos:pos + take])
                pos, left = pos + take, left - take
                skip = 0 if left else 2
                continue
            if skip:  # urllib3 discards these two bytes unread
                taken = min(skip, end - pos)
                pos, skip = pos + taken, skip - taken
                continue
            newline = data.find(b"\n", pos)
            if pending is None and newline >= 0:
                line = data[pos:newline + 1]
            else:
                pending = pending or bytearray()
                pending += data[pos:end if newline < 0 else newline + 1]
                if newline < 0 and len(pending) <= MAX_CHUNK_LINE:
                    break
                line, pending = bytes(pending), None
            if len(line) + (trailers or 0) > MAX_CHUNK_LINE:  # one line, or all the trailers together
                raise urllib3.exceptions.ProtocolError("Response chunk line exceeded maximum allowed length")
            pos = newline + 1
            if trailers is not None:
                if line == b"\r\n":
                    _release(raw)
                    yield b"".join(out)
                    return
                trailers += len(line)
                continue
            # `1a\r\n` (int() ignores the line end), else `1a;name=value`; not a number: the stream broke.
            left = int(line, 16) if b";" not in line else int(line.split(b";", 1)[0], 16)
            if left < 0:
                raise urllib3.exceptions.ProtocolError("Response chunk length is negative")
            trailers = None if left else 0
        # Even a read of framing alone (b""): the reader's deadlines are checked, and other greenlets get a turn.
        yield out[0] if len(out) == 1 else b"".join(out)
    _release(raw)


def _release(raw: urllib3.HTTPResponse) -> None:  # as read_chunked ends: the connection can serve again
    if raw._original_response:
        raw._original_response.close()
    raw.release_conn()


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
