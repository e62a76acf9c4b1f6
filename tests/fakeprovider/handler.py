"""The HTTP side of the fake: a threaded HTTP/1.1 server whose handler records each request, finds the format
of the provider its path belongs to, and plays the scripted Reply in that format. It never asks which provider it
serves: everything provider-specific is a method of the format object."""
from __future__ import annotations

import json
import select
import socket
import socketserver
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from tests.fakeprovider.base import WireFormat
from tests.fakeprovider.records import Flood, RecordedRequest
from tests.fakeprovider.registry import FORMATS, echo_key_body, presented_key
from tests.fakeprovider.reply import FLOOD_BLOCK, FLOOD_TEXT, KEEPALIVE_COMMENT, Reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # server_close() must not join stalled handler threads
    request_queue_size = 1024
    allow_reuse_address = True

    def server_bind(self):  # HTTPServer.server_bind calls getfqdn(), which may hang on reverse DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):  # peers vanishing is expected here
        pass


def error_text(body) -> str:
    """The message of an error body, whichever provider's shape it has."""
    error = body.get("error") if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) else str(body)


class _Abort(Exception):
    """The stream ended early (dropped, stalled out, client gone, or the fake is stopping)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive; every response has Content-Length or is chunked
    disable_nagle_algorithm = True  # each SSE event leaves immediately
    fake: "FakeProviders"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self):
        self.fake._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self):
        self.generation = self.fake._generation
        parts = urlsplit(self.path)
        raw = self._read_body()  # always drain the body so the keep-alive connection stays in sync
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(parts.query))
        fmt = next((f for f in FORMATS.values() if parts.path.startswith(f.base_path + "/")), None)
        rest = parts.path[len(fmt.base_path):] if fmt else ""
        rec = RecordedRequest(fmt and fmt.id, self.command, parts.path, query, headers, body,
                              client=self.client_address)
        route = fmt.chat_route(rest, body) if fmt and self.command == "POST" else None
        embed = fmt.embeddings_route(rest, body) if fmt and self.command == "POST" and route is None else None
        if fmt and self.command == "GET" and rest == "/models":
            rec.kind = "models"
        elif route is not None:
            rec.kind, (rec.model, rec.stream) = "chat", route
        elif embed is not None:
            rec.kind, (rec.model,) = "embeddings", embed
        self.fake._record(rec)
        try:
            if rec.kind == "other":
                return self._send_body(404, {"error": {"message": f"Not found: {self.command} {parts.path}"}})
            denied = fmt.auth_error(headers, query, rec.model or "model")
            if denied:
                return self._send_body(denied[0], denied[1], fmt.default_headers(denied[0]))
            if rec.kind == "models":
                return self._send_body(200, fmt.model_list(list(self.fake.models.get(fmt.id, []))),
                                       fmt.default_headers(200))
            if rec.kind == "embeddings":
                status, answer = fmt.embeddings(rec)
                return self._send_body(status, answer, fmt.default_headers(status))
            if self.fake.strict_models and rec.model not in self.fake.models.get(fmt.id, []):
                status = fmt.unknown_model_status
                return self._send_body(status, fmt.error_body(status, rec.model), fmt.default_headers(status))
            refused = fmt.refusal(rec)
            if refused is not None:  # the provider refuses the request itself: the scripted reply stays queued
                status, answer = refused
                rec.refusal = error_text(answer)
                return self._send_body(status, answer, fmt.default_headers(status))
            self._chat(fmt, rec, self.fake._next_reply(fmt.id))
        except (_Abort, OSError):
            self.close_connection = True

    def _send_body(self, status, body, headers=None, extra=None):
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        ctype = "application/json" if text.lstrip().startswith(("{", "[")) else "text/plain"
        self.send_response(status)
        hdrs = {"content-type": ctype + ("; charset=UTF-8" if ctype == "application/json" else ""),
                **(headers or {}), **{k.lower(): v for k, v in (extra or {}).items()}}
        hdrs["content-length"] = str(len(data))
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _pause(self, seconds, rec=None, poll=True):
        """Sleep up to `seconds`, waking on fake.stop(). While the response is pending, also watch the socket: if
        the peer closes, record a disconnect (for streams) and abort. Raises _Abort on either."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.fake._stopping.is_set():
                raise _Abort
            step = min(left, 0.05)
            if not poll:
                self.fake._stopping.wait(step)
                continue
            poller = select.poll()  # not select.select(): fds above 1024 are likely with 500+ connections
            poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
            if poller.poll(step * 1000):
                try:
                    closed = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    self._client_gone(rec)
                poll = False  # data pending (pipelined request?): stop polling, just sleep
        if self.fake._stopping.is_set():
            raise _Abort

    def _client_gone(self, rec):
        if rec is not None and rec.stream:
            self.fake._disconnected(rec.provider)
        raise _Abort

    def _drop(self):
        """Abrupt close: no terminating chunk, so the client sees a truncated chunked body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()
        raise _Abort

    def _chunk(self, data: bytes, rec):
        try:  # one HTTP chunk per SSE event
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:  # BrokenPipe / ConnectionReset: the client went away
            self._client_gone(rec)

    def _chat(self, fmt: WireFormat, rec, r: Reply):
        p = fmt.id
        model = rec.model or fmt.default_model
        self._pause(r.header_delay, rec)
        if r.never_answer:
            self._pause(r.stall_seconds, rec)
            self.fake._outcome(p, "never_answered")
            self._drop()
        extra = fmt.default_headers(r.status)
        if r.redirect is not None:
            status = r.status if 300 <= r.status < 400 else 307
            self.fake._outcome(p, "complete")
            return self._send_body(status, "", extra, {"location": self.fake.url + r.redirect, **r.headers})
        if r.echo_key:
            self.fake._outcome(p, "complete")
            return self._send_body(r.status, echo_key_body(p, r.status, presented_key(rec.headers, rec.query)),
                                   extra, r.headers)
        if r.raw_body is not None:
            self._pause(r.first_delay, rec)
            self._send_head(r.status, {"content-type": r.content_type, **extra, **r.headers,
                                       "content-length": str(len(r.raw_body))})
            self.wfile.write(r.raw_body)
            self.fake._outcome(p, "complete")
            return
        if r.body_bytes:
            return self._flood_body(p, rec, r, extra)
        if r.endless:
            return self._flood_stream(fmt, rec, r, model, extra)
        if r.status != 200 or not rec.stream:
            self._pause(r.first_delay, rec)
            if r.status != 200:
                body = r.body if r.body is not None else fmt.error_body(r.status, model)
            elif r.error_event is not None:  # a non-streamed request can get 200 + an error body too (OpenRouter)
                body = r.error_event
            else:
                a = fmt.answer(model, r, rec)
                body = fmt.full(a, a.chunks)
            self.fake._outcome(p, "complete")
            return self._send_body(r.status, body, extra, r.headers)
        a = fmt.answer(model, r, rec)
        chunks = a.chunks
        sse_end, array = fmt.separator(self.fake), fmt.streams_array(rec)
        self.send_response(200)
        hdrs = {"content-type": "application/json; charset=UTF-8" if array else "text/event-stream",
                "cache-control": "no-cache", "transfer-encoding": "chunked", **extra,
                **{k.lower(): v for k, v in r.headers.items()}}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        n_events = 0

        def event(obj):
            nonlocal n_events
            data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
            if array:
                self._chunk((b"[" if n_events == 0 else b",\r\n") + data, rec)
            else:
                self._chunk(b"data: " + data + sse_end, rec)
            n_events += 1

        for _ in range(r.keepalive):
            self._chunk(KEEPALIVE_COMMENT, rec)
            self._pause(r.first_delay / r.keepalive, rec)
        if not r.keepalive:
            self._pause(r.first_delay, rec)
        body = [(False, e) for e in fmt.head(a)] + [(False, fmt.reasoning(a, t)) for t in r.reasoning]
        body += [(True, fmt.content(a, t, i, len(chunks))) for i, t in enumerate(chunks)]
        body += [(True, e) for e in (fmt.tool_call_events(a) if a.calls else [])]  # counted with the content
        sent = 0
        for idx, (is_content, ev) in enumerate(body + [(True, None)]):
            if is_content:  # checkpoints before each content chunk and after the last one
                if sent == r.drop_after:
                    self.fake._outcome(p, "dropped")
                    self._drop()
                if sent == r.stall_after:
                    self._pause(r.stall_seconds, rec)
                    self.fake._outcome(p, "stalled")
                    self._drop()
                if r.malformed and sent == min(1, len(chunks)):
                    event(fmt.malformed)
                if r.raw_events and sent == r.raw_after:
                    for raw in r.raw_events:
                        self._chunk(b"data: " + (raw if isinstance(raw, bytes) else raw.encode()) + sse_end, rec)
            if ev is None:
                break
            if idx and r.interval:
                self._pause(r.interval, rec)
            event(ev)
            sent += is_content
        if r.error_event is not None:
            self._pause(r.interval, rec)
            event(r.error_event)  # ...and the stream just ends
        else:
            for ev in fmt.tail(a):
                event(ev)
            if fmt.done_event is not None:
                event(fmt.done_event)
        if array:
            self._chunk(b"]", rec)
        self.wfile.write(b"0\r\n\r\n")
        self.fake._outcome(p, "complete")

    def _send_head(self, status, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _flood_body(self, p, rec, r: Reply, extra):
        """An error body of r.body_bytes bytes (valid JSON once whole), written as the peer takes it."""
        head, tail = b'{"error": {"message": "', b'"}}'
        size = max(r.body_bytes, len(head) + len(tail))
        self._send_head(r.status, {"content-type": "application/json; charset=UTF-8", **extra, **r.headers,
                                   "content-length": str(size)})
        self._flood(p, rec, "body", head, b"x" * FLOOD_BLOCK, size - len(tail), tail, r.interval, chunked=False)
        self.fake._outcome(p, "complete")

    def _flood_stream(self, fmt: WireFormat, rec, r: Reply, model, extra):
        """Reply.endless: a 200 event stream that never ends, until the peer closes it or r.flood_limit."""
        p, a, end = fmt.id, fmt.answer(model, r, rec), fmt.separator(self.fake)
        head = b"".join(b"data: " + json.dumps(e).encode() + end for e in fmt.head(a))
        if r.endless == "line":
            head += fmt.endless_line_head
            block = b"a" * FLOOD_BLOCK
        elif r.endless == "events":
            event = b"data: " + json.dumps(fmt.content(a, FLOOD_TEXT, 0, 2)).encode() + end
            block = event if r.interval else event * max(1, FLOOD_BLOCK // len(event))
        else:
            raise ValueError(f"unknown endless mode {r.endless!r}")
        self._send_head(200, {"content-type": "text/event-stream", "cache-control": "no-cache",
                              "transfer-encoding": "chunked", **extra, **{k.lower(): v for k, v in r.headers.items()}})
        self._flood(p, rec, r.endless, head, block, r.flood_limit, b"", r.interval, chunked=True)
        self.fake._outcome(p, "dropped")
        self._drop()

    def _flood(self, p, rec, mode, head, block, limit, tail, interval, *, chunked):
        """Write head, then block after block up to `limit` bytes, then tail; record how it ended. Raises _Abort
        when the peer closed the connection or the fake is stopping."""
        sent, closed = 0, False

        def write(data):
            nonlocal sent
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)

        try:
            write(head)
            while sent < limit:
                if interval:
                    self._pause(interval, rec)
                elif self.fake._stopping.is_set():
                    raise _Abort
                write(block[:limit - sent])
            if tail:
                write(tail)
        except OSError:  # BrokenPipe / ConnectionReset: the peer closed
            closed = True
            if rec.stream:
                self.fake._disconnected(p)
            raise _Abort from None
        except _Abort:  # _pause() saw the peer close (and recorded it), or the fake is stopping
            closed = not self.fake._stopping.is_set()
            raise
        finally:
            self.fake._flooded(Flood(p, mode, sent, closed), self.generation)
