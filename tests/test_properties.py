"""Every parser of provider data, fed whatever a provider could send: hypothesis properties, then one
example per hostile shape seen or feared.

A parser either returns its typed value or raises ProviderError; nothing else may escape, because any
other exception would be a 500 for the client instead of one provider's failure that another can take.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from providers import PROVIDER_CLASSES, gemini, openai_compat
from utils import sse, wire
from utils.chat import Chunk, Usage
from utils.errors import ProviderError
from utils.quota import MAX_COUNT, MAX_RESET_SECONDS, Quota, header_int, parse_reset
from utils.settings import ProviderSettings
from utils.upstream import Upstream
from utils.wire import MAX_REPORTED_TOKENS

NOW = datetime(2026, 7, 14, 15, 30, tzinfo=timezone.utc).timestamp()
FAST = settings(max_examples=50, deadline=None)


def build(cls):
    return cls(ProviderSettings(cls.id, "test-key", "https://provider.test/v1", "test-model"), Upstream(1, 1, 1))


PROVIDERS = [build(cls) for cls in PROVIDER_CLASSES]
BY_ID = {provider.id: provider for provider in PROVIDERS}
PROVIDER_IDS = [provider.id for provider in PROVIDERS]

# ----- strategies -----

# Every field name the parsers look for, so that random JSON often has the shape they expect, with
# values of any type in it.
KEYS = ["error", "message", "status", "code", "type", "choices", "delta", "content", "reasoning",
        "reasoning_content", "finish_reason", "usage", "prompt_tokens", "completion_tokens", "x_groq",
        "candidates", "parts", "text", "thought", "finishReason", "usageMetadata", "promptTokenCount",
        "candidatesTokenCount", "thoughtsTokenCount", "details", "@type", "violations", "quotaId", "quotaValue",
        "retryDelay", "metadata", "headers", "X-RateLimit-Remaining", "X-RateLimit-Reset", "data", "id",
        "models", "name"]
NUMBERS = st.one_of(st.integers(), st.integers(-10 ** 40, 10 ** 40), st.floats(),
                    st.sampled_from([0, 1, -1, 10 ** 30, 1e308, 5.5, 5.0, -0.0]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12),
                    st.sampled_from(KEYS + ["stop", "STOP", "0", "34.4s", "QuotaFailure", "\ud800"]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4),
                                                                 inner, max_size=4),
    max_leaves=12)
OBJECTS = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), JSON, max_size=5)


def maybe(plausible):
    """Mostly the documented type, sometimes anything."""
    return st.one_of(plausible, plausible, JSON)


OPENAI_CHUNKS = st.fixed_dictionaries({}, optional={
    "choices": maybe(st.lists(maybe(st.fixed_dictionaries({}, optional={
        "delta": maybe(st.fixed_dictionaries({}, optional={
            "content": maybe(st.none() | st.text()), "reasoning": maybe(st.none() | st.text()),
            "reasoning_content": maybe(st.text()), "role": maybe(st.just("assistant"))})),
        "finish_reason": maybe(st.none() | st.just("stop"))})), max_size=2)),
    "usage": maybe(st.none() | st.fixed_dictionaries({}, optional={"prompt_tokens": NUMBERS,
                                                                    "completion_tokens": NUMBERS})),
    "x_groq": maybe(st.fixed_dictionaries({}, optional={"usage": JSON})),
    "error": maybe(st.none()),
})
GEMINI_RESPONSES = st.fixed_dictionaries({}, optional={
    "candidates": maybe(st.lists(maybe(st.fixed_dictionaries({}, optional={
        "content": maybe(st.fixed_dictionaries({}, optional={"parts": maybe(st.lists(maybe(
            st.fixed_dictionaries({}, optional={"text": maybe(st.text()), "thought": maybe(st.booleans()),
                                                "thoughtSignature": st.text(max_size=4)})), max_size=3))})),
        "finishReason": maybe(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY"]))})), max_size=2)),
    "usageMetadata": maybe(st.fixed_dictionaries({}, optional={
        "promptTokenCount": NUMBERS, "candidatesTokenCount": NUMBERS, "thoughtsTokenCount": NUMBERS})),
    "error": maybe(st.none()),
})
EVENTS = OPENAI_CHUNKS | GEMINI_RESPONSES | OBJECTS

# Reset and count values in every provider's format, and the hostile ones.
RESET_TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A[+-]?\d{1,400}(\.\d{0,20})?\Z"),
    st.from_regex(r"\A(\d{1,20}(\.\d{1,5})?(h|m|s|ms|us|ns)){1,4}\Z"),
    st.sampled_from(["1e999", "-1e999", "nan", "inf", "-5", "1e308", "9" * 400, "Wed, 21 Oct 2026 07:28:00 GMT",
                     "Fri, 31 Dec 9999 23:59:59 -2359", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59Z",
                     "1741305600000", "2m59.56s", "33011.382867097855", "99999999999999h"]),
)
HEADER_NAMES = ["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
                "x-ratelimit-remaining-requests-day", "x-ratelimit-reset-requests-day",
                "x-ratelimit-remaining-tokens-minute", "x-ratelimit-reset-tokens-minute"]
HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=8), RESET_TEXT, max_size=6).map(
    CaseInsensitiveDict)
STATUSES = st.sampled_from([200, 400, 401, 402, 403, 404, 429, 500, 503]) | st.integers(100, 599)
VIOLATIONS = st.lists(maybe(st.fixed_dictionaries({}, optional={
    "quotaId": maybe(st.sampled_from(["GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                      "GenerateContentInputTokensPerModelPerMinute-FreeTier"])),
    "quotaValue": maybe(st.sampled_from(["0", "250"]))})), max_size=2)
DETAILS = st.lists(maybe(st.fixed_dictionaries({}, optional={
    "@type": maybe(st.sampled_from(["type.googleapis.com/google.rpc.QuotaFailure",
                                    "type.googleapis.com/google.rpc.RetryInfo"])),
    "violations": maybe(VIOLATIONS),
    "retryDelay": maybe(RESET_TEXT)})), max_size=3)
COPIED_HEADERS = st.dictionaries(st.sampled_from(["X-RateLimit-Remaining", "X-RateLimit-Reset"]), JSON | RESET_TEXT)
QUOTA_ERRORS = st.fixed_dictionaries({}, optional={
    "message": maybe(st.sampled_from(["Rate limit reached on tokens per minute (TPM). Please try again in 1e999s.",
                                      "Rate limit exceeded: free-models-per-day",
                                      "limit: 0, Please retry in 9999999999h", "Tokens per minute limit exceeded"])),
    "type": maybe(st.sampled_from(["tokens", "requests"])),
    "metadata": maybe(st.fixed_dictionaries({"headers": maybe(COPIED_HEADERS)})),
    "details": maybe(DETAILS),
})
QUOTA_BODIES = JSON | st.fixed_dictionaries({"error": maybe(QUOTA_ERRORS)})


# ----- checks -----

def outcome(call, kinds=("malformed", "error_event")):
    """What a parser did: its value, or the ProviderError it raised (of one of the expected kinds)."""
    try:
        return call()
    except ProviderError as error:
        assert error.kind in kinds, error.kind
        return error


def assert_chunk(result) -> None:
    if result is None or isinstance(result, ProviderError):
        return
    assert type(result) is Chunk and result != Chunk()
    assert type(result.text) is str and type(result.reasoning) is str
    result.text.encode()  # sendable as UTF-8
    result.reasoning.encode()
    assert result.finish_reason is None or type(result.finish_reason) is str
    if result.usage is not None:
        for count in (result.usage.prompt_tokens, result.usage.completion_tokens):
            assert type(count) is int and 0 <= count <= MAX_REPORTED_TOKENS


def assert_time(value) -> None:
    assert value is None or (type(value) is float and 0 <= value <= NOW + MAX_RESET_SECONDS), value


def assert_count(value) -> None:
    assert value is None or (type(value) is int and 0 <= value <= MAX_COUNT), value


# ----- properties: SSE framing -----

# Lines of every kind with every line end (or none, so that lines run together), their text sometimes
# cut inside a UTF-8 sequence or not UTF-8 at all.
LINES = st.tuples(
    st.sampled_from([b"data:", b"data: ", b"data:  ", b": keep-alive", b"event: x", b"", b" data:"]),
    st.lists(st.sampled_from([b" ", b"x", b"{}", b"[DONE]", b"data:", "\u00e9".encode(), "\U0001f642".encode(),
                              b"\xff", b"\xc3", b"\xa9", b"\xed\xa0\x80"]), max_size=5).map(b"".join),
    st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b""]),
).map(b"".join)
BODIES = st.lists(LINES, max_size=8).map(b"".join) | st.binary(max_size=60)


def sse_outcome(chunks) -> tuple[list[str], str | None]:
    payloads = []
    try:
        for payload in sse.iter_data(chunks):
            assert type(payload) is str
            payloads.append(payload)
    except ProviderError as error:
        return payloads, error.kind
    return payloads, None


def reference(body: bytes) -> list[str]:
    """The framing rules, stated as simply as possible: every data line, one space after the colon dropped."""
    values = [line[5:] for line in body.splitlines() if line.startswith(b"data:")]
    return [(value[1:] if value.startswith(b" ") else value).decode() for value in values]


@FAST
@given(body=BODIES, data=st.data())
def test_sse_splitting_a_body_anywhere_never_changes_what_it_yields(body, data):
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=6))))
    pieces = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)])]
    whole = sse_outcome([body])
    assert sse_outcome(pieces) == whole
    assert sse_outcome([body[i:i + 1] for i in range(len(body))]) == whole
    assert whole[1] in (None, "malformed")
    try:
        expected = reference(body)
    except UnicodeDecodeError:
        assert whole[1] == "malformed"
    else:
        assert whole == (expected, None)


# ----- properties: events -----

@FAST
@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@given(event=EVENTS)
def test_any_json_event_gives_a_typed_chunk_nothing_or_a_provider_error(provider, event):
    assert_chunk(outcome(lambda: provider.parse_event(event)))
    assert_chunk(outcome(lambda: provider.parse_data(json.dumps(event))))


@FAST
@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@given(data=st.text(max_size=40) | JSON.map(json.dumps))
def test_any_data_line_gives_a_typed_chunk_nothing_or_a_provider_error(provider, data):
    assert_chunk(outcome(lambda: provider.parse_data(data)))


# ----- properties: model lists -----

@FAST
@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@given(body=JSON | st.fixed_dictionaries({}, optional={
    "data": maybe(st.lists(maybe(st.fixed_dictionaries({"id": maybe(st.text(max_size=8))})), max_size=3)),
    "models": maybe(st.lists(maybe(st.fixed_dictionaries({"name": maybe(st.text(max_size=8))})), max_size=3))}))
def test_any_model_list_gives_string_ids_or_malformed(provider, body):
    result = outcome(lambda: provider.parse_models(body), kinds=("malformed",))
    if not isinstance(result, ProviderError):
        assert type(result) is list and all(type(model) is str for model in result)


# ----- properties: quota -----

@FAST
@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@given(status=STATUSES, headers=HEADERS, body=QUOTA_BODIES | st.none() | st.text(max_size=20))
def test_any_headers_and_body_give_a_sane_quota_or_none(provider, status, headers, body):
    quota = provider.read_quota(status, headers, body, NOW)
    assert quota is None or type(quota) is Quota
    if quota is not None:
        for value in (quota.requests_reset, quota.tokens_reset, quota.retry_at):
            assert_time(value)
        assert_count(quota.remaining_requests)
        assert_count(quota.remaining_tokens)


@settings(max_examples=150, deadline=None)
@given(value=RESET_TEXT | JSON)
def test_parse_reset_gives_a_sane_time_or_none(value):
    assert_time(parse_reset(value, NOW))
    assert_count(header_int(CaseInsensitiveDict({"x": value}), "x"))


@FAST
@given(status=STATUSES, body=QUOTA_BODIES)
def test_gemini_retry_delay_is_none_or_a_finite_wait(status, body):
    delay = gemini.retry_delay(body, NOW)
    assert delay is None or (type(delay) is float and 0 <= delay <= MAX_RESET_SECONDS)


# ----- properties: error bodies -----

@settings(max_examples=150, deadline=None)
@given(body=JSON | QUOTA_BODIES | st.text())
def test_any_error_body_gives_a_short_printable_message_and_a_string_code(body):
    message, code = wire.error_message(body)
    assert type(message) is str and 0 < len(message) <= wire.MAX_MESSAGE_CHARS
    message.encode()
    assert code is None or (type(code) is str and 0 < len(code) <= wire.MAX_CODE_CHARS)


# ----- examples: the wrong shapes a provider has sent or could send -----

def malformed(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    assert caught.value.kind == "malformed"
    return caught.value


def delta_chunk(delta, **fields) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}], **fields}


@pytest.mark.parametrize("event", [
    {"choices": {}},
    {"choices": 5},
    {"choices": ["x"]},
    {"choices": [{"delta": "x"}]},
    delta_chunk({"content": 5}),
    delta_chunk({"content": ["a"]}),
    delta_chunk({"reasoning": {"text": "a"}}),
    delta_chunk({"content": "\ud800"}),  # a lone surrogate cannot be sent to the client as UTF-8
    delta_chunk({}, usage={"prompt_tokens": "5"}),
    delta_chunk({}, usage={"completion_tokens": True}),
    delta_chunk({}, usage={"completion_tokens": -1}),
    delta_chunk({}, usage={"completion_tokens": 5.5}),
    delta_chunk({}, usage={"completion_tokens": math.nan}),
    delta_chunk({}, usage={"completion_tokens": math.inf}),
    delta_chunk({}, usage=5),
    delta_chunk({}, x_groq={"usage": "lots"}),
    {"choices": [{"delta": {}, "finish_reason": 1}]},
    {"choices": [{"delta": {}, "finish_reason": {"reason": "stop"}}]},
], ids=repr)
def test_an_openai_chunk_of_the_wrong_shape_is_malformed(event):
    error = malformed(lambda: openai_compat.parse_chunk(event))
    assert error.message.startswith("the provider sent a malformed answer: ")


@pytest.mark.parametrize("data", ['{"choices":[],"usage":{"prompt_tokens":NaN}}',
                                  '{"choices":[],"usage":{"completion_tokens":Infinity}}',
                                  '{"choices":[],"usage":{"completion_tokens":-Infinity}}',
                                  '{"choices":[],"usage":{"completion_tokens":1e999}}'])
def test_non_finite_token_counts_in_an_event_are_malformed(data):
    malformed(lambda: BY_ID["groq"].parse_data(data))


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": 10 ** 30, "completion_tokens": 2}, Usage(MAX_REPORTED_TOKENS, 2)),
    ({"prompt_tokens": 3, "completion_tokens": 1e308}, Usage(3, MAX_REPORTED_TOKENS)),
    ({"prompt_tokens": 7.0, "completion_tokens": None}, Usage(7, 0)),
    ({"prompt_tokens": MAX_REPORTED_TOKENS, "completion_tokens": MAX_REPORTED_TOKENS + 1},
     Usage(MAX_REPORTED_TOKENS, MAX_REPORTED_TOKENS)),
], ids=["huge-int", "huge-float", "whole-float-and-null", "at-the-limit"])
def test_huge_token_counts_are_clamped(usage, expected):
    assert openai_compat.parse_chunk({"choices": [], "usage": usage}) == Chunk(usage=expected)


@pytest.mark.parametrize("event, expected", [
    ({"choices": [{"delta": {"content": None, "reasoning": None}, "finish_reason": None}]}, None),
    (delta_chunk({"content": "Hi"}, usage=None), Chunk(text="Hi")),
    ({"choices": [], "usage": {"prompt_tokens": 36, "completion_tokens": 3}}, Chunk(usage=Usage(36, 3))),
    ({"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]},
     Chunk(text="whole", finish_reason="stop")),
    ({"choices": None, "x_groq": {"usage": {"prompt_tokens": 1}}}, Chunk(usage=Usage(1, 0))),
], ids=["nulls", "usage-null", "choices-empty-usage-chunk", "message-not-delta", "x-groq-usage"])
def test_nulls_and_empties_the_openai_format_allows_are_read(event, expected):
    assert openai_compat.parse_chunk(event) == expected


@pytest.mark.parametrize("event", [
    {"candidates": [{"content": "abc"}]},
    {"candidates": {"content": {}}},
    {"candidates": ["abc"]},
    {"candidates": [{"content": {"parts": {"text": "a"}}}]},
    {"candidates": [{"content": {"parts": "abc"}}]},
    {"candidates": [{"content": {"parts": ["abc"]}}]},
    {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
    {"candidates": [{"content": {"parts": [{"text": ["a"], "thought": True}]}}]},
    {"candidates": [{"content": {"parts": []}, "finishReason": 1}]},
    {"usageMetadata": {"promptTokenCount": "9"}},
    {"usageMetadata": {"candidatesTokenCount": [1]}},
    {"usageMetadata": {"thoughtsTokenCount": -4}},
    {"usageMetadata": {"thoughtsTokenCount": math.inf}},
    {"usageMetadata": "lots"},
], ids=repr)
def test_a_gemini_response_of_the_wrong_shape_is_malformed(event):
    malformed(lambda: gemini.parse_response(event))


def test_gemini_counts_are_clamped_and_so_is_their_sum():
    event = {"usageMetadata": {"promptTokenCount": 10 ** 30, "candidatesTokenCount": MAX_REPORTED_TOKENS,
                               "thoughtsTokenCount": 1e308}}
    assert gemini.parse_response(event) == Chunk(usage=Usage(MAX_REPORTED_TOKENS, MAX_REPORTED_TOKENS))


@pytest.mark.parametrize("event, expected", [
    ({"candidates": [], "usageMetadata": {"promptTokenCount": 9}}, Chunk(usage=Usage(9, 0))),
    ({"candidates": [{"content": {"parts": [{"text": None}]}, "finishReason": None}]}, None),
    ({"candidates": [{"finishReason": "SAFETY"}], "usageMetadata": None}, Chunk(finish_reason="safety")),
], ids=["no-candidates", "nulls", "blocked-without-content"])
def test_nulls_and_empties_the_gemini_format_allows_are_read(event, expected):
    assert gemini.parse_response(event) == expected


@pytest.mark.parametrize("body", [b"data: \xff\xfe\n\n", b"data: caf\xc3\n\n", b"data: \xed\xa0\x80\n\n"],
                         ids=["invalid-byte", "truncated", "encoded-surrogate"])
def test_invalid_utf8_in_a_data_line_is_malformed(body):
    malformed(lambda: list(sse.iter_data([body])))


@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@pytest.mark.parametrize("body", [{}, {"data": None}, {"data": {}}, {"data": [{"id": 5}]}, {"data": ["m"]},
                                  {"models": [{"name": None}]}, {"models": "m"}, [], "text", None],
                         ids=repr)
def test_a_model_list_of_the_wrong_shape_is_malformed_not_empty(provider, body):
    malformed(lambda: provider.parse_models(body))


def test_well_formed_model_lists_are_read():
    assert BY_ID["groq"].parse_models({"data": [{"id": "a"}, {"id": "b", "object": "model"}]}) == ["a", "b"]
    assert BY_ID["gemini"].parse_models({"models": [{"name": "models/gemini-3-flash-preview"}]}) == [
        "gemini-3-flash-preview"]


# ----- examples: reset times and counts -----

@pytest.mark.parametrize("value", ["1e999", "-1e999", "nan", "inf", "9" * 400, 10 ** 400, 1e308, "1e308",
                                   "99999999999999h", f"{400 * 86400}s", NOW + 400 * 86400,
                                   "Fri, 31 Dec 9999 23:59:59 GMT", "9999-12-31T23:59:59Z",
                                   "0001-01-01T00:00:00+23:59", -1, "-0.5"], ids=repr)
def test_absurd_reset_values_count_as_absent(value):
    assert parse_reset(value, NOW) is None


@pytest.mark.parametrize("value", ["1" * 65536 + "x", "1" * 65536 + ".5sx", "1s" * 32768 + "x"],
                         ids=["digits", "number", "duration"])
def test_a_header_long_as_http_allows_is_read_in_one_pass(value):
    # Before the number patterns were made unambiguous, each of these backtracked for minutes.
    assert parse_reset(value, NOW) is None


def test_a_reset_within_a_year_is_kept():
    assert parse_reset(f"{300 * 86400}s", NOW) == NOW + 300 * 86400


@pytest.mark.parametrize("value, expected", [("1e999", None), ("nan", None), ("-3", None), (10 ** 400, None),
                                             ([1], None), (True, None), ("9" * 30, MAX_COUNT), ("12.7", 12), (5, 5)],
                         ids=repr)
def test_count_headers_are_finite_non_negative_and_capped(value, expected):
    assert header_int(CaseInsensitiveDict({"x-ratelimit-remaining": value}), "x-ratelimit-remaining") == expected


def test_openrouter_copied_rate_headers_of_any_type_do_not_break_the_quota():
    body = {"error": {"message": "Rate limit exceeded: free-models-per-day", "code": 429,
                      "metadata": {"headers": {"X-RateLimit-Remaining": 10 ** 400, "X-RateLimit-Reset": 10 ** 400}}}}
    quota = BY_ID["openrouter"].read_quota(429, CaseInsensitiveDict(), body, NOW)
    assert (quota.remaining_requests, quota.requests_reset, quota.window) == (None, None, "day")


# ----- examples: error bodies -----

@pytest.mark.parametrize("body, expected", [
    ({"error": {"message": {"text": "quota"}, "code": 429}}, ("{'text': 'quota'}", "429")),
    ({"error": {"message": ["a", "b"], "code": True}}, ("['a', 'b']", None)),
    ({"error": {"message": 5, "code": ["x"]}}, ("5", None)),
    ({"error": {"message": "", "status": "UNAVAILABLE", "code": 503}}, ("UNAVAILABLE", "503")),
    ({"error": ["first", "second"]}, ("['first', 'second']", None)),
    ({"error": 500}, ("500", None)),
    ({"error": None, "message": "bare"}, ("bare", None)),
    ({"error": ""}, ("no details", None)),
    ({"error": {"message": "x" * 10_000, "code": "y" * 10_000}}, ("x" * 300, "y" * 100)),
    ({"error": {"message": "lone \ud800 surrogate"}}, ("lone ? surrogate", None)),
    ([1, 2], ("[1, 2]", None)),
    (None, ("no details", None)),
], ids=["message-dict", "message-list", "message-number", "status-fallback", "error-list", "error-number",
        "error-null", "error-empty", "huge", "surrogate", "list-body", "null-body"])
def test_error_message_reads_any_json_into_a_short_message_and_a_code(body, expected):
    assert wire.error_message(body) == expected


def test_a_deeply_nested_error_message_is_cut_short_cheaply():
    nested = "end"
    for _ in range(500):
        nested = {"message": nested}
    message, _ = wire.error_message({"error": nested})
    assert len(message) <= wire.MAX_MESSAGE_CHARS and "end" not in message
