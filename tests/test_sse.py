"""utils/sse.py: `data:` payloads out of a byte stream, however the network cuts it."""
import pytest

from utils.errors import ProviderError
from utils.sse import MAX_LINE_BYTES, iter_data

# Three events the way OpenAI-compatible providers frame them, with a keep-alive comment in front.
OPENROUTER_BODY = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
    b"data: [DONE]\n\n"
)
OPENROUTER_DATA = [
    '{"choices":[{"index":0,"delta":{"content":"Hel"}}]}',
    '{"choices":[{"index":0,"delta":{"content":"lo"}}]}',
    "[DONE]",
]


def test_each_data_line_is_one_payload():
    assert list(iter_data([OPENROUTER_BODY])) == OPENROUTER_DATA


@pytest.mark.parametrize("position", range(1, len(OPENROUTER_BODY)))
def test_a_body_split_in_two_at_any_position_gives_the_same_payloads(position):
    chunks = [OPENROUTER_BODY[:position], OPENROUTER_BODY[position:]]
    assert list(iter_data(chunks)) == OPENROUTER_DATA


def test_a_body_arriving_one_byte_at_a_time_gives_the_same_payloads():
    chunks = [OPENROUTER_BODY[i:i + 1] for i in range(len(OPENROUTER_BODY))]
    assert list(iter_data(chunks)) == OPENROUTER_DATA


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_line_end_style_ends_a_line(line_end):
    body = line_end.join([b"data: one", b"", b"data: two", b"", b""])
    assert list(iter_data([body])) == ["one", "two"]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_line_end_style_survives_any_split(line_end):
    body = line_end.join([b"data: one", b"", b": keep-alive", b"", b"data: two", b"", b""])
    for position in range(1, len(body)):
        assert list(iter_data([body[:position], body[position:]])) == ["one", "two"], position


def test_gemini_crlf_framing_gives_whole_json_payloads():
    first = '{"candidates":[{"content":{"parts":[{"text":"There are **3**"}],"role":"model"},"index":0}]}'
    last = ('{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"EpAICo0I"}],"role":"model"},'
            '"finishReason":"STOP","index":0}]}')
    body = f"data: {first}\r\n\r\ndata: {last}\r\n\r\n".encode()
    assert list(iter_data([body])) == [first, last]


def test_a_crlf_split_between_its_cr_and_lf_neither_loses_nor_repeats_a_payload():
    assert list(iter_data([b"data: one\r", b"\n\r\ndata: two\r", b"\n\r\n"])) == ["one", "two"]


def test_comment_lines_are_skipped():
    body = b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: {}\n\n:\n\n"
    assert list(iter_data([body])) == ["{}"]


def test_other_sse_fields_are_skipped():
    body = b"event: message\nid: 7\nretry: 1000\ndata: payload\n\n"
    assert list(iter_data([body])) == ["payload"]


def test_events_without_blank_line_separators_are_still_separate_payloads():
    body = b"data: one\ndata: two\ndata: [DONE]\n"
    assert list(iter_data([body])) == ["one", "two", "[DONE]"]


def test_a_final_line_without_a_line_end_is_still_read():
    assert list(iter_data([b"data: one\n\ndata: last"])) == ["one", "last"]


def test_a_final_line_without_a_line_end_split_across_chunks_is_read_whole():
    assert list(iter_data([b"data: one\n\ndata: la", b"st"])) == ["one", "last"]


def test_a_final_comment_without_a_line_end_is_skipped():
    assert list(iter_data([b"data: one\n\n: OPENROUTER PROCESSING"])) == ["one"]


def test_only_the_one_space_after_the_colon_is_removed():
    assert list(iter_data([b"data:tight\ndata:  two spaces\n"])) == ["tight", " two spaces"]


def test_an_unfinished_line_is_held_back_until_its_line_end_arrives():
    assert list(iter_data([b'data: {"a":'])) == ['{"a":']  # only once the stream has ended
    assert list(iter_data([b'data: {"a":', b"1}\n"])) == ['{"a":1}']


def test_a_payload_is_yielded_as_soon_as_its_line_is_complete():
    pulled = []

    def chunks():
        for chunk in (b"data: first\n", b"data: second\n"):
            pulled.append(chunk)
            yield chunk

    payloads = iter_data(chunks())
    assert next(payloads) == "first"
    assert pulled == [b"data: first\n"]  # the second chunk has not been asked for yet


@pytest.mark.parametrize("text", ["données", "日本語のテキスト", "emoji 🙂 at the end 🎉"])
def test_multibyte_utf8_split_across_chunks_decodes_whole(text):
    body = f"data: {text}\n\n".encode()
    for position in range(1, len(body)):
        assert list(iter_data([body[:position], body[position:]])) == [text], position
    assert list(iter_data([body[i:i + 1] for i in range(len(body))])) == [text]


def test_empty_chunks_from_the_transport_are_ignored():
    # An empty read is a legal item of an Iterable[bytes]; it must not break the parser.
    assert list(iter_data([b"", b"data: one\n", b"", b"data: two\n", b""])) == ["one", "two"]


def test_no_bytes_at_all_gives_no_payloads():
    assert list(iter_data([])) == []


# ----- bounds: an endless or huge line, and bytes that are not UTF-8 -----

def test_a_line_of_exactly_the_limit_is_read_whatever_its_line_end_and_however_it_arrives():
    value = b"x" * (MAX_LINE_BYTES - len(b"data: "))
    for line_end in (b"\n", b"\r\n", b""):
        body = b"data: " + value + line_end
        assert list(iter_data([body])) == [value.decode()]
        assert list(iter_data([body[i:i + 4096] for i in range(0, len(body), 4096)])) == [value.decode()]


BODY_OVER = b"data: " + b"x" * (MAX_LINE_BYTES - len(b"data: ") + 1) + b"\n"


@pytest.mark.parametrize("chunks", [
    [BODY_OVER],
    [BODY_OVER[i:i + 4096] for i in range(0, len(BODY_OVER), 4096)],
    [BODY_OVER[:-2], BODY_OVER[-2:]],
], ids=["one-read", "4-KiB-reads", "its-last-byte-apart"])
def test_a_line_one_byte_over_the_limit_is_too_large(chunks):
    with pytest.raises(ProviderError) as caught:
        list(iter_data(chunks))
    assert caught.value.kind == "too_large"


def test_a_line_that_never_ends_is_cut_once_it_passes_the_limit():
    pulled = 0

    def endless():
        nonlocal pulled
        yield b'data: {"choices": "'
        while True:
            pulled += 1
            yield b"x" * 65536

    with pytest.raises(ProviderError) as caught:
        list(iter_data(endless()))
    assert caught.value.kind == "too_large"
    assert pulled * 65536 <= MAX_LINE_BYTES + 65536  # stopped within one read of the limit


def test_a_long_comment_line_counts_too():
    with pytest.raises(ProviderError) as caught:
        list(iter_data([b": " + b"x" * MAX_LINE_BYTES + b"\n"]))
    assert caught.value.kind == "too_large"


def test_lines_before_a_line_too_large_are_yielded_when_they_arrive_first():
    payloads = iter_data([b"data: one\n", b"data: " + b"x" * MAX_LINE_BYTES])
    assert next(payloads) == "one"
    with pytest.raises(ProviderError) as caught:
        next(payloads)
    assert caught.value.kind == "too_large"


@pytest.mark.parametrize("body", [b"data: \xff\n", b"data: caf\xc3\n", b"data: \xed\xa0\x80\n", b"data: caf\xc3"],
                         ids=["invalid-byte", "cut-sequence", "encoded-surrogate", "cut-at-the-end"])
def test_a_data_line_that_is_not_utf8_is_malformed(body):
    with pytest.raises(ProviderError) as caught:
        list(iter_data([body]))
    assert caught.value.kind == "malformed"


def test_bytes_that_are_not_utf8_outside_data_lines_are_skipped_like_the_rest():
    assert list(iter_data([b": \xff\xfe keep-alive\nevent: \xc3\ndata: ok\n"])) == ["ok"]
