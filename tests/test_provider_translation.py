"""Each provider's translation as pure functions: the request body built from a ChatRequest, and the
chunk read from one stream event (OpenAI-compatible `parse_chunk`, Gemini `parse_response`)."""
from __future__ import annotations

import pytest

from providers import gemini, openai_compat
from tests.providers_helpers import (
    GROQ_STREAM_URL,
    GROQ_USAGE,
    HI,
    OPENROUTER_MIDSTREAM_ERROR,
    cerebras_chunk,
    gemini_event,
    gemini_provider,
    groq,
    groq_chunk,
    hf_chunk,
    mocked,
    openrouter_chunk,
    reasoning_delta,
    sse,
    stream_all,
)
from utils.chat import ChatRequest, Chunk, Message, Usage
from utils.errors import ProviderError


def test_openai_request_carries_model_messages_stream_and_usage_option():
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi"), Message("assistant", "yo")))
    assert openai_compat.to_upstream(request, "m", stream=True) == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "yo"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_openai_request_without_streaming_has_no_stream_options():
    assert openai_compat.to_upstream(HI, "m", stream=False) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_openai_request_passes_known_options_and_drops_unknown_and_null_ones():
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
    request = ChatRequest(messages=HI.messages, options={"temperature": 0.6, "top_p": 0.9, "stop": ["\n"], "seed": 7,
                                                         "user": "u1", "max_tokens": 64, "logit_bias": {"1": 2},
                                                         "tools": tools, "frequency_penalty": None})
    body = openai_compat.to_upstream(request, "m", stream=True)
    assert {k: v for k, v in body.items() if k not in ("model", "messages", "stream", "stream_options")} == {
        "temperature": 0.6, "top_p": 0.9, "stop": ["\n"], "seed": 7, "user": "u1", "max_tokens": 64, "tools": tools}


@pytest.mark.parametrize("asked, cap, sent", [
    (None, 512, 512),      # the client set none: the ceiling applies
    (4096, 512, 512),      # the client asked for more: the ceiling applies
    (100, 512, 100),       # the client asked for less: theirs stands
    (512, 512, 512),
    (0, 512, 512),
    (4096, 0, 4096),       # no ceiling configured
    (None, 0, None),
])
def test_openai_max_tokens_ceiling(asked, cap, sent):
    options = {} if asked is None else {"max_tokens": asked}
    body = openai_compat.to_upstream(ChatRequest(messages=HI.messages, options=options), "m", stream=True,
                                     max_tokens_cap=cap)
    assert body.get("max_tokens") == sent


def test_gemini_request_uses_contents_with_model_role_and_system_instruction():
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi"),
                                    Message("assistant", "hello"), Message("system", "in English"),
                                    Message("user", "again")))
    assert gemini.to_upstream(request) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]},
                     {"role": "user", "parts": [{"text": "again"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "in English"}]},
    }


def test_gemini_request_maps_openai_options_to_generation_config():
    request = ChatRequest(messages=HI.messages, options={"temperature": 1.0, "top_p": 0.95, "max_tokens": 1024,
                                                         "stop": "END", "seed": 3, "user": "u1", "logit_bias": {}})
    assert gemini.to_upstream(request)["generationConfig"] == {
        "temperature": 1.0, "topP": 0.95, "maxOutputTokens": 1024, "stopSequences": ["END"], "seed": 3}


@pytest.mark.parametrize("effort, level", [("none", "minimal"), ("minimal", "minimal"), ("low", "low"),
                                           ("medium", "medium"), ("high", "high"), ("xhigh", "high")])
def test_reasoning_effort_reaches_openai_compatible_providers_as_it_is_and_gemini_as_a_thinking_level(effort, level):
    request = ChatRequest(messages=HI.messages, options={"reasoning_effort": effort})
    assert openai_compat.to_upstream(request, "m", stream=True)["reasoning_effort"] == effort
    assert gemini.to_upstream(request)["generationConfig"] == {"thinkingConfig": {"thinkingLevel": level}}


def test_gemini_request_without_options_or_system_messages_has_only_contents():
    assert gemini.to_upstream(HI) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize("asked, cap, sent", [(None, 512, 512), (4096, 512, 512), (100, 512, 100), (4096, 0, 4096)])
def test_gemini_max_output_tokens_ceiling(asked, cap, sent):
    options = {} if asked is None else {"max_tokens": asked}
    config = gemini.to_upstream(ChatRequest(messages=HI.messages, options=options), max_tokens_cap=cap)
    assert config["generationConfig"]["maxOutputTokens"] == sent


def test_openai_chunk_with_content_becomes_text():
    assert openai_compat.parse_chunk(groq_chunk({"content": "Int"})) == Chunk(text="Int")


def test_openai_role_only_first_chunk_produces_nothing():
    assert openai_compat.parse_chunk(groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_1"})) is None
    assert openai_compat.parse_chunk(cerebras_chunk({"delta": {"role": "assistant"}})) is None


def test_openai_empty_delta_produces_nothing():
    assert openai_compat.parse_chunk(groq_chunk({})) is None
    assert openai_compat.parse_chunk(openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []})) is None
    assert openai_compat.parse_chunk({"choices": []}) is None


def test_openai_usage_is_read_at_top_level_and_inside_x_groq():
    top = groq_chunk({}, "stop", usage=GROQ_USAGE)
    inside = groq_chunk({}, "stop", x_groq={"id": "req_1", "usage": GROQ_USAGE})
    expected = Chunk(finish_reason="stop", usage=Usage(45, 607))
    assert openai_compat.parse_chunk(top) == openai_compat.parse_chunk(inside) == expected


def test_openai_reasoning_and_deepseek_reasoning_content_are_reasoning_not_text():
    assert openai_compat.parse_chunk(openrouter_chunk(reasoning_delta("hmm"))) == Chunk(reasoning="hmm")
    assert openai_compat.parse_chunk(hf_chunk({"reasoning_content": "hmm"})) == Chunk(reasoning="hmm")


@pytest.mark.parametrize("event, says", [
    ({"error": {"message": "Failed to call a function. Please adjust your prompt.", "type": "invalid_request_error",
                "code": "tool_use_failed", "failed_generation": "<tool>", "status_code": 400}},
     "Failed to call a function. Please adjust your prompt."),
    (OPENROUTER_MIDSTREAM_ERROR, "Provider disconnected unexpectedly"),
    ({"error": "Input validation error", "error_type": "generation"}, "Input validation error"),
], ids=["groq", "openrouter", "string"])
def test_openai_error_event_raises_with_the_providers_message(event, says):
    with pytest.raises(ProviderError) as caught:
        openai_compat.parse_chunk(event)
    assert caught.value.message == f"provider reported an error mid-stream: {says}"
    assert (caught.value.kind, caught.value.retryable) == ("error_event", True)


def test_gemini_thought_parts_are_reasoning_and_the_rest_is_text():
    event = gemini_event([{"text": "**Planning**", "thought": True}, {"text": "Answer"}], {"thoughtsTokenCount": 5})
    assert gemini.parse_response(event) == Chunk(text="Answer", reasoning="**Planning**", usage=Usage(9, 5))


def test_gemini_usage_counts_thoughts_as_completion_tokens():
    event = gemini_event([{"text": "x"}], {"candidatesTokenCount": 28, "thoughtsTokenCount": 244,
                                           "totalTokenCount": 281})
    assert gemini.parse_response(event).usage == Usage(9, 272)


def test_gemini_last_event_with_empty_text_and_thought_signature_is_a_finish_not_an_error():
    event = gemini_event([{"text": "", "thoughtSignature": "EpAICo0I"}], {"candidatesTokenCount": 14}, finish="STOP")
    assert gemini.parse_response(event) == Chunk(finish_reason="stop", usage=Usage(9, 14))


def test_gemini_event_with_nothing_in_it_produces_nothing():
    assert gemini.parse_response({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}}]}) is None
    assert gemini.parse_response({}) is None


def test_gemini_error_event_raises():
    with pytest.raises(ProviderError) as caught:
        gemini.parse_response({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    assert caught.value.kind == "error_event"
    assert caught.value.message == "provider reported an error mid-stream: The model is overloaded."


@pytest.mark.parametrize("data", ["{not json", '{"choices": [', "[1, 2]", '"text"', "null"])
def test_a_malformed_event_raises_malformed(data):
    for provider in (groq(), gemini_provider()):
        with pytest.raises(ProviderError) as caught:
            provider.parse_data(data)
        assert caught.value.kind == "malformed"


def test_done_marker_ends_the_stream_whatever_follows_it():
    after = sse(groq_chunk({"content": "Hello"})) + b"data: [DONE]\n\n" + sse(groq_chunk({"content": " AFTER"}))
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=after, content_type="text/event-stream")
        assert [chunk.text for chunk in stream_all(groq())] == ["Hello"]
