"""The socket under each provider: a stream read as the network cuts it, read no further than asked,
closed when the reader stops or an error answers, and every transport failure made a retryable
ProviderError."""
from __future__ import annotations

import io

import pytest
import requests

from tests.providers_helpers import (
    CEREBRAS_STREAM,
    CEREBRAS_STREAM_URL,
    GROQ_STREAM_URL,
    HI,
    Pieces,
    arriving,
    cerebras,
    groq,
    groq_chunk,
    mocked,
    sse,
    stream_all,
    stream_until_error,
)
from utils.chat import Chunk, Usage


def test_a_stream_cut_into_network_pieces_mid_line_parses_the_same():
    whole = CEREBRAS_STREAM
    pieces = [whole[i:i + 7] for i in range(0, len(whole), 7)]
    with mocked() as rsps:
        rsps.post(CEREBRAS_STREAM_URL, body=arriving(*pieces), content_type="text/event-stream")
        chunks = stream_all(cerebras())
    assert "".join(c.text for c in chunks) == "Paris is the capital."
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(322, 65))


def test_a_chunk_is_yielded_before_the_rest_of_the_stream_is_read():
    raw = Pieces([sse(groq_chunk({"content": "first"})), sse(groq_chunk({"content": "second"}))])
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=io.BufferedReader(raw), content_type="text/event-stream")
        stream = groq().stream(HI)
        assert next(stream) == Chunk(text="first")
        assert len(raw.pieces) == 1  # the second piece is still "on the wire"
        stream.close()


def test_closing_the_stream_early_closes_the_upstream_response():
    reader = arriving(sse(groq_chunk({"content": "first"})), sse(groq_chunk({"content": "second"})))
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, content_type="text/event-stream")
        stream = groq().stream(HI)
        assert next(stream) == Chunk(text="first")
        assert not reader.closed
        stream.close()
        # Checked inside the `with`: on leaving it, RequestsMock drops its responses, which closes them anyway.
        assert reader.closed


def test_an_error_status_closes_the_upstream_response():
    # A body longer than the gateway reads of an error answer: reading it to its end cannot be what closes it.
    reader = arriving(b'{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}',
                      *[b" " * 16384] * 8)
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, status=401, content_type="application/json")
        _, error = stream_until_error(groq())
        assert error.message == "upstream answered 401: Invalid API Key"
        # Checked inside the `with`: on leaving it, RequestsMock drops its responses, which closes them anyway.
        assert reader.closed


def test_a_connection_dropped_mid_stream_raises_broken_after_the_text_before_it():
    reader = arriving(sse(groq_chunk({"content": "Hel"})), then=ConnectionResetError(104, "Connection reset by peer"))
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Hel")]
    assert (error.kind, error.retryable, error.message) == ("broken", True, "the connection to the provider broke")



@pytest.mark.parametrize("exception, kind, message", [
    (requests.exceptions.ConnectionError("Failed to establish a new connection: [Errno 111] Connection refused"),
     "connect", "could not reach the provider"),
    (requests.exceptions.ConnectTimeout("Connection to api.groq.test timed out. (connect timeout=1)"), "timeout",
     "connecting to the provider timed out"),
    (requests.exceptions.ReadTimeout("Read timed out. (read timeout=1)"), "timeout",
     "the provider stopped sending (read timed out)"),
    (requests.exceptions.SSLError("certificate verify failed"), "connect", "could not reach the provider"),
    (requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), "broken",
     "the connection to the provider broke"),
], ids=["refused", "connect-timeout", "read-timeout", "tls", "chunked"])
def test_transport_failure_becomes_a_retryable_provider_error(exception, kind, message):
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=exception)
        chunks, error = stream_until_error(groq())
    assert chunks == []
    assert (error.kind, error.retryable, error.upstream_status, error.status) == (kind, True, 0, 502)
    # The library's own text (host names, internals) never reaches the message.
    assert error.message == message


def test_a_real_answer_is_read_through_the_small_buffer_and_arrives_whole():
    """Over a real socket (not `responses`): the pools' responses read through READ_BUFFER, not http.client's
    8 KiB (a stream holds its buffer as long as it lasts), and an answer many buffers long still arrives whole,
    its headers included."""
    import http.server
    import threading

    from utils.upstream import Upstream
    from utils.upstream_pool import READ_BUFFER, LeanResponse

    body = b"".join(sse(groq_chunk({"content": f"piece {n} "})) for n in range(200))
    assert len(body) > 10 * READ_BUFFER

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("X-Long", "h" * (3 * READ_BUFFER))  # a header line longer than the buffer
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        upstream = Upstream(5, 5, 5)
        response = upstream.post(f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions",
                                 headers={}, json={"stream": True})
        assert isinstance(response.raw._original_response, LeanResponse)
        assert response.headers["X-Long"] == "h" * (3 * READ_BUFFER)
        assert b"".join(upstream.iter_bytes(response)) == body
    finally:
        server.shutdown()
        server.server_close()


def raw_answer(*steps) -> str:
    """A provider on a local socket that reads one request and then sends `steps` as they are: bytes, or a
    callable given the socket (for endless or trickled writes). Its URL."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener, listener.accept()[0] as conn:
            received = b""
            while b"}" not in received:  # the JSON request body's end: all of it has arrived
                received += conn.recv(65536)
            try:
                for step in steps:
                    step(conn) if callable(step) else conn.sendall(step)
            except OSError:  # the gateway hung up: what these tests want
                pass

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions"


CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b'16\r\ndata: {"choices":[]}\n\n\r\n0\r\n'  # one event, then the last chunk: its trailers follow


def endless(piece: bytes, pause: float = 0.0, seconds: float = 8.0):
    def send(conn):
        import time
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            conn.sendall(piece)
            time.sleep(pause)
    return send


@pytest.mark.parametrize("trailers, bound", [
    (endless(b"X-Pad: " + b"a" * 100 + b"\r\n"), "bytes"),  # as fast as the socket takes them
    (endless(b"X", pause=0.1), "time"),  # one byte at a time, never silent long enough for the idle timeout
], ids=["flood", "trickle"])
def test_trailers_that_never_end_are_the_providers_failure_within_the_bounds(trailers, bound):
    """What follows the last chunk is framing, not data: it yields nothing, yet it is still bounded (all of it
    together as one chunk line is) and still read within ANSWER_TIMEOUT."""
    import time

    from utils.errors import ProviderError
    from utils.upstream import Upstream

    upstream = Upstream(2, 2, 2, answer_timeout=1.5)
    response = upstream.post(raw_answer(CHUNKED, LAST_CHUNK, trailers), headers={}, json={"stream": True})
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        b"".join(upstream.iter_bytes(response))
    assert time.monotonic() - started < 3
    assert caught.value.kind == ("broken" if bound == "bytes" else "timeout"), caught.value


def test_an_answer_ends_at_done_though_the_provider_then_holds_the_connection_silent():
    """[DONE] is the end: waiting on for the chunked body's terminator would turn a complete answer into an
    idle timeout, counted against the provider."""
    import time

    from providers.groq import GroqProvider
    from utils.chat import ChatRequest, Message
    from utils.settings import ProviderSettings
    from utils.upstream import Upstream

    event = sse(groq_chunk({"content": "Hello"})) + b"data: [DONE]\n\n"
    url = raw_answer(CHUNKED, b"%x\r\n%s\r\n" % (len(event), event), lambda conn: time.sleep(5))
    provider = GroqProvider(ProviderSettings("groq", "k", url.removesuffix("/chat/completions"), "m"),
                            Upstream(2, 2, 2))
    started = time.monotonic()
    chunks = list(provider.stream(ChatRequest((Message("user", "hi"),))))
    assert ([chunk.text for chunk in chunks], time.monotonic() - started < 1.5) == (["Hello"], True)
