"""Gemini's native API for OpenAI tools, tool results, JSON output and images: the request translated
(`to_upstream`), function calls read back as OpenAI tool call deltas (`parse_response`), the thought
signature carried through the tool call id and restored on the next turn, and what Gemini cannot honour
named (`unsupported_option`). HTTP, where used, is faked with `responses` at the session boundary."""
from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers import call_ids, gemini, openai_compat
from providers.call_ids import read_call_id
from providers.gemini_tools import SKIP_SIGNATURE
from tests.providers_helpers import (
    GEMINI_STREAM_URL,
    arriving,
    gemini_event,
    gemini_provider,
    mocked,
    sent_requests,
    sse,
    stream_all,
    stream_until_error,
)
from utils.chat import (
    ChatRequest,
    Chunk,
    Image,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from utils.errors import ProviderError, ValidationError

# A signature as Gemini writes it (standard base64 with padding), with the `+`, `/` and `=` an id cannot hold.
SIGNATURE = base64.b64encode(bytes(range(256)) * 3 + b"!").decode()
ID = re.compile(r"[A-Za-z0-9_-]+")
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}, "strict": True}}
ASK = Message("user", "Weather in Paris and Rome?")


def call_part(name, args, signature=None, call_id=None):
    call = {"name": name, "args": args, **({"id": call_id} if call_id else {})}
    return {"functionCall": call, **({"thoughtSignature": signature} if signature else {})}


def body(messages, **options):
    return gemini.to_upstream(ChatRequest(messages=tuple(messages), options=options))


# ----- the request: tools, tool_choice, response_format, penalties -----

def test_tools_become_function_declarations_with_their_json_schema():
    bare = {"type": "function", "function": {"name": "now"}}
    assert body([ASK], tools=[WEATHER, bare])["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city",
         "parametersJsonSchema": WEATHER["function"]["parameters"]},
        {"name": "now"}]}]


@pytest.mark.parametrize("choice, config", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
], ids=["auto", "none", "required", "named"])
def test_tool_choice_becomes_the_function_calling_mode(choice, config):
    assert body([ASK], tools=[WEATHER], tool_choice=choice)["toolConfig"] == {"functionCallingConfig": config}


def test_without_tools_or_tool_choice_nothing_about_tools_is_sent():
    assert "toolConfig" not in body([ASK], tools=[WEATHER])
    assert body([ASK]) == {"contents": [{"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]}]}


@pytest.mark.parametrize("response_format, config", [
    ({"type": "json_object"}, {"responseMimeType": "application/json"}),
    ({"type": "json_schema", "json_schema": {"name": "w", "strict": True, "schema": {"type": "object"}}},
     {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}),
], ids=["json_object", "json_schema"])
def test_response_format_becomes_json_output(response_format, config):
    assert body([ASK], response_format=response_format)["generationConfig"] == config


def test_penalties_are_mapped_a_zero_one_and_user_are_not_sent():
    assert body([ASK], presence_penalty=0.5, frequency_penalty=-1, user="u1")["generationConfig"] == {
        "presencePenalty": 0.5, "frequencyPenalty": -1}
    assert "generationConfig" not in body([ASK], presence_penalty=0, frequency_penalty=0.0)


# ----- the request: earlier calls and their results -----

def test_an_earlier_turn_with_parallel_calls_and_their_results_in_gemini_shape():
    first, second = call_ids.call_id(None, SIGNATURE), call_ids.call_id(None, None)
    sent = body([ASK,
                 Message("assistant", "Checking.", tool_calls=(ToolCall(first, "get_weather", '{"city": "Paris"}'),
                                                               ToolCall(second, "get_weather", '{"city":"Rome"}'))),
                 Message("tool", '{"temp": 21}', tool_call_id=first),
                 Message("tool", "sunny, 25C", tool_call_id=second),
                 Message("user", "Thanks")])
    assert sent["contents"][1:] == [
        {"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
        # Both results in one content, in order: Gemini counts them against the calls they answer.
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 25C"}}}]},
        {"role": "user", "parts": [{"text": "Thanks"}]}]


def test_a_call_another_provider_made_gets_the_documented_stand_in_signature_on_its_first_call():
    calls = (ToolCall("call_abc123", "get_weather", '{"city":"Paris"}'), ToolCall("fc_2", "get_weather", "{}"))
    parts = body([ASK, Message("assistant", "", tool_calls=calls),
                  Message("tool", "21", tool_call_id="call_abc123"), Message("tool", "25", tool_call_id="fc_2")]
                 )["contents"][1]["parts"]
    assert [part.get("thoughtSignature") for part in parts] == [SKIP_SIGNATURE, None]


def test_each_step_of_a_turn_keeps_its_own_signature():
    step1, step2 = call_ids.call_id(None, "AAAA"), call_ids.call_id(None, "BBBB")
    contents = body([ASK, Message("assistant", "", tool_calls=(ToolCall(step1, "a", "{}"),)),
                     Message("tool", "1", tool_call_id=step1),
                     Message("assistant", "", tool_calls=(ToolCall(step2, "b", "{}"),)),
                     Message("tool", "2", tool_call_id=step2)])["contents"]
    assert [content["parts"][0].get("thoughtSignature") for content in contents[1:]] == ["AAAA", None, "BBBB", None]


def test_geminis_own_call_id_goes_back_on_the_call_and_on_its_result():
    call = call_ids.call_id("8f2b-1c3d", None)
    contents = body([ASK, Message("assistant", "", tool_calls=(ToolCall(call, "get_weather", "{}"),)),
                     Message("tool", "21", tool_call_id=call)])["contents"]
    assert contents[1]["parts"][0]["functionCall"]["id"] == "8f2b-1c3d"
    assert contents[2]["parts"][0]["functionResponse"]["id"] == "8f2b-1c3d"


@pytest.mark.parametrize("text, args", [
    ('{"city": "Paris"}', {"city": "Paris"}),
    ("", {}),
    ("  ", {}),
    ('["Paris"]', {"arguments": '["Paris"]'}),
    ('{"city": "Par', {"arguments": '{"city": "Par'}),
    ('{"temp": NaN}', {"arguments": '{"temp": NaN}'}),
], ids=["object", "empty", "blank", "list", "broken", "nan"])
def test_arguments_that_are_not_a_json_object_are_wrapped_not_refused(text, args):
    message = Message("assistant", "", tool_calls=(ToolCall("call_1", "f", text),))
    assert body([ASK, message])["contents"][1]["parts"][0]["functionCall"]["args"] == args


def test_a_result_names_its_function_from_the_message_when_no_earlier_call_matches():
    contents = body([ASK, Message("tool", "[1, 2]", tool_call_id="lost", name="lookup")])["contents"]
    assert contents[1]["parts"] == [{"functionResponse": {"name": "lookup", "response": {"result": "[1, 2]"}}}]


def test_a_result_for_no_call_and_without_a_name_is_the_clients_mistake():
    with pytest.raises(ValidationError) as caught:
        body([ASK, Message("tool", "21", tool_call_id="lost")])
    assert caught.value.param == "messages[1].tool_call_id"


# ----- the request: images -----

def test_images_are_inline_data_or_file_data_in_their_place_among_the_texts():
    message = Message("user", "a\nb", parts=(
        "a", Image("data:IMAGE/PNG;base64,iVBO\nRw0K", "high"), "b", Image("https://x.test/cat.WEBP?size=2#top"),
        Image("http://x.test/picture"), Image("https://x.test/v1.2/img.gif")))
    assert body([message])["contents"][0]["parts"] == [
        {"text": "a"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}, {"text": "b"},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/cat.WEBP?size=2#top"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "http://x.test/picture"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/v1.2/img.gif"}}]


# ----- the answer: function calls -----

def test_function_calls_become_whole_tool_call_deltas_and_stop_stays_stop():
    event = gemini_event([{"text": "Checking."}, call_part("get_weather", {"city": "Paris"}, SIGNATURE),
                          call_part("get_weather", {"city": "Rome"})], {"candidatesTokenCount": 20}, finish="STOP")
    chunk = gemini.parse_response(event)
    assert (chunk.text, chunk.finish_reason, chunk.usage) == ("Checking.", "stop", Usage(9, 20))
    first, second = chunk.tool_calls
    assert (first.index, first.name, json.loads(first.arguments)) == (0, "get_weather", {"city": "Paris"})
    assert (second.index, second.name, second.arguments) == (1, "get_weather", '{"city": "Rome"}')
    assert ID.fullmatch(first.id) and ID.fullmatch(second.id) and first.id != second.id
    assert read_call_id(first.id) == (None, SIGNATURE)  # exactly as Gemini sent it
    assert read_call_id(second.id) == (None, None)
    assert len(second.id) == len("call_") + 12
    assert len(first.id) == len(second.id) + len("_ts_") + len(SIGNATURE.rstrip("="))


def test_a_call_without_arguments_and_with_geminis_id():
    (delta,) = gemini.parse_response({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "now", "id": "ab12"}}]}}]}).tool_calls
    assert (delta.arguments, read_call_id(delta.id)) == ("{}", ("ab12", None))


def test_a_signature_too_long_to_carry_is_dropped_and_the_next_turn_still_validates():
    (delta,) = gemini.parse_response({"candidates": [{"content": {"parts": [
        call_part("f", {}, "A" * (call_ids.MAX_SIGNATURE_CHARS + 4))]}}]}).tool_calls
    assert read_call_id(delta.id) == (None, None)
    part = body([ASK, Message("assistant", "", tool_calls=(ToolCall(delta.id, "f", delta.arguments),))]
                )["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == SKIP_SIGNATURE


@pytest.mark.parametrize("part", [
    {"functionCall": "get_weather"},
    {"functionCall": []},
    {"functionCall": {"args": {}}},
    {"functionCall": {"name": 5}},
    {"functionCall": {"name": "f", "args": "{}"}},
    {"functionCall": {"name": "f", "args": [1]}},
    {"functionCall": {"name": "f", "args": {"x": float("nan")}}},
    {"functionCall": {"name": "f", "args": {"x": "\ud800"}}},
    {"functionCall": {"name": "f", "id": 7}},
    {"functionCall": {"name": "f"}, "thoughtSignature": 12},
    {"functionCall": {"name": "f"}, "thoughtSignature": "not base64!"},
    {"functionCall": {"name": "f"}, "thoughtSignature": "AAAAA"},
], ids=repr)
def test_a_function_call_of_the_wrong_shape_is_malformed(part):
    with pytest.raises(ProviderError) as caught:
        gemini.parse_response({"candidates": [{"content": {"parts": [part]}}]})
    assert caught.value.kind == "malformed"


@pytest.mark.parametrize("finish", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"])
def test_an_unusable_function_call_is_a_failure_another_provider_may_take_over(finish):
    with pytest.raises(ProviderError) as caught:
        gemini.parse_response({"candidates": [{"content": {"parts": []}, "finishReason": finish}]})
    assert (caught.value.kind, caught.value.retryable) == ("unsupported", True)


ARGS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=8)
ANYTHING = ARGS | st.sampled_from(["", "AAAA", SIGNATURE, "a b", "\ud800"])
CALL_PARTS = st.fixed_dictionaries({"functionCall": st.one_of(ANYTHING, st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["f", ""]), ANYTHING), "args": st.one_of(st.dictionaries(st.text(), ARGS), ANYTHING),
    "id": st.one_of(st.sampled_from(["ab12", "x y"]), ANYTHING)}))}, optional={"thoughtSignature": ANYTHING})


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(CALL_PARTS, max_size=3))
def test_any_function_call_part_gives_whole_calls_with_sendable_ids_or_malformed(parts):
    try:
        chunk = gemini.parse_response({"candidates": [{"content": {"parts": parts}}]})
    except ProviderError as error:
        assert error.kind == "malformed"
        return
    calls = chunk.tool_calls if chunk else ()
    # A null functionCall reads as absent, as null does everywhere in the format: a part without text.
    assert [call.index for call in calls] == list(range(sum(part["functionCall"] is not None for part in parts)))
    for call in calls:
        assert ID.fullmatch(call.id) and call.name and isinstance(json.loads(call.arguments), dict)
        call.arguments.encode()  # sendable as UTF-8


# ----- the answer over HTTP: indices across events, the signature round trip -----

def test_parallel_calls_in_separate_events_get_indices_running_across_the_answer():
    stream = sse(gemini_event([call_part("get_weather", {"city": "Paris"}, SIGNATURE, "c1")], {}),
                 gemini_event([call_part("get_weather", {"city": "Rome"}, None, "c2")], {}),
                 gemini_event([{"text": ""}], {"candidatesTokenCount": 30}, finish="STOP"), end="\r\n\r\n")
    request = ChatRequest(messages=(ASK,), options={"tools": [WEATHER]})
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=stream, content_type="text/event-stream")
        chunks = stream_all(gemini_provider(), request)
    calls = [call for chunk in chunks for call in chunk.tool_calls]
    assert [(call.index, read_call_id(call.id)) for call in calls] == [(0, ("c1", SIGNATURE)), (1, ("c2", None))]
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(9, 30))

    # The client sends the calls back as it got them; Gemini gets each signature on the part it came on.
    follow_up = ChatRequest(messages=(ASK, Message("assistant", "", tool_calls=tuple(
        ToolCall(call.id, call.name, call.arguments) for call in calls)),
        *(Message("tool", "21C", tool_call_id=call.id) for call in calls)), options={"tools": [WEATHER]})
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=sse(gemini_event([{"text": "Both 21C."}], {}, finish="STOP")),
                  content_type="text/event-stream")
        assert "".join(chunk.text for chunk in stream_all(gemini_provider(), follow_up)) == "Both 21C."
        (sent,) = sent_requests(rsps)
    model, results = json.loads(sent.body)["contents"][1:]
    assert model["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "c2"}}]
    assert [part["functionResponse"]["id"] for part in results["parts"]] == ["c1", "c2"]


def test_closing_an_answer_early_still_closes_the_upstream_response():
    reader = arriving(sse(gemini_event([call_part("f", {}, "AAAA")], {})), sse(gemini_event([{"text": "x"}], {})))
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=reader, content_type="text/event-stream")
        stream = gemini_provider().stream(ChatRequest(messages=(ASK,)))
        assert next(stream).tool_calls[0].index == 0
        stream.close()
        assert reader.closed


def test_a_malformed_function_call_mid_stream_raises_after_what_came_before():
    body_ = sse(gemini_event([{"text": "Let me check."}], {}),
                {"candidates": [{"content": {"parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]})
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=body_, content_type="text/event-stream")
        chunks, error = stream_until_error(gemini_provider())
    assert [chunk.text for chunk in chunks] == ["Let me check."] and error.kind == "unsupported"


def test_the_calls_ids_survive_an_openai_client_and_langchains_stream_merging():
    from langchain_core.messages import AIMessageChunk
    from openai.types.chat import ChatCompletionChunk

    deltas = [ToolCallDelta(0, call_ids.call_id("c1", SIGNATURE), "a", "{}"),
              ToolCallDelta(1, call_ids.call_id(None, None), "b", '{"x": 1}')]
    pieces = [ChatCompletionChunk.model_validate({
        "id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [{"index": 0, "delta": {
            "tool_calls": [{"index": d.index, "id": d.id, "type": "function",
                            "function": {"name": d.name, "arguments": d.arguments}}]}}]}) for d in deltas]
    merged = sum((AIMessageChunk(content="", tool_call_chunks=[
        {"index": c.index, "id": c.id, "name": c.function.name, "args": c.function.arguments}
        for c in piece.choices[0].delta.tool_calls]) for piece in pieces), AIMessageChunk(content=""))
    assert [(call["id"], call["name"]) for call in merged.tool_calls] == [(d.id, d.name) for d in deltas]


# ----- what Gemini cannot honour -----

@pytest.mark.parametrize("options, model, named", [
    ({"tools": [WEATHER], "parallel_tool_calls": False}, None, "parallel_tool_calls"),
    ({"tools": [WEATHER], "parallel_tool_calls": True}, None, None),
    ({"tools": [WEATHER]}, None, None),
    ({"parallel_tool_calls": False}, None, None),
    ({"presence_penalty": 0.4}, None, "presence_penalty"),
    ({"frequency_penalty": -1.0}, "gemini-2.5-flash", "frequency_penalty"),
    ({"frequency_penalty": 0}, None, None),
    ({"presence_penalty": 0.4}, "gemini-2.0-flash", None),
], ids=["parallel-off", "parallel-on", "parallel-absent", "no-tools", "penalty-gemini-3", "penalty-2.5",
        "penalty-zero", "penalty-2.0"])
def test_an_option_gemini_cannot_honour_is_named(options, model, named):
    provider = gemini_provider()
    reason = provider.unsupported_option(ChatRequest(messages=(ASK,), options=options, model=model))
    assert reason == provider.cannot_serve(ChatRequest(messages=(ASK,), options=options, model=model))
    assert (named in reason and reason.startswith("Gemini 3 Flash (gemini) cannot honour ")) if named else reason is None


def test_other_providers_get_gemini_call_ids_cut_to_their_plain_part():
    long_id = call_ids.call_id("g-1", SIGNATURE)
    messages = (Message("assistant", "", tool_calls=(ToolCall(long_id, "f", "{}"),)),
                Message("tool", "21", tool_call_id=long_id))
    sent = openai_compat.to_upstream(ChatRequest(messages), "m", stream=True)["messages"]
    assert sent[0]["tool_calls"][0]["id"] == sent[1]["tool_call_id"] == long_id[:len("call_") + 12]
