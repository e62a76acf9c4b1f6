"""The OpenAI API that agents and SDKs send, in process: tools, tool results, images, JSON output and
embeddings, parsed, routed by capability, carried to OpenAI-compatible providers and rendered back the way
OpenAI streams them. (Gemini's translation: tests/test_gemini_tools.py; real clients end to end:
tests/test_openai_clients.py.)"""
from __future__ import annotations

import base64
import json
import struct
from dataclasses import replace

import pytest
import responses

from providers import openai_compat
from tests.conftest import MASTER
from tests.fakeprovider import embedding_of
from utils.chat import ChatRequest, Image, Message, ToolCall, ToolCallDelta
from utils.errors import ValidationError
from utils.openai_request import parse_completion_request

AUTH = {"Authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
LOOP = [{"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}]


def sse(*events) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def chunk(delta, finish=None, usage=None) -> dict:
    event = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return {**event, "usage": usage} if usage else event


TOOL_STREAM = sse(
    chunk({"role": "assistant", "content": None}),
    chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk({}, "tool_calls", {"prompt_tokens": 20, "completion_tokens": 9}))


def test_a_tool_loop_parses_into_typed_messages():
    parsed = parse_completion_request({"messages": LOOP, "tools": [WEATHER], "tool_choice": "required",
                                       "parallel_tool_calls": False})
    user, assistant, tool = parsed.chat.messages
    assert assistant.tool_calls == (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "call_1", '{"temp": 21}')
    assert parsed.chat.options["tools"] == [WEATHER]
    assert parsed.chat.options["tool_choice"] == "required"
    assert parsed.chat.needs == {"tools"}


@pytest.mark.parametrize("body, param", [
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema"),
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"modalities": ["text", "audio"]}, "modalities"),
    ({"presence_penalty": 3}, "presence_penalty"), ({"verbosity": "low"}, "verbosity"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"), ({"reasoning_effort": 2}, "reasoning_effort"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": 1}]}]}, "messages[0].tool_calls[0]"),
])
def test_what_cannot_be_carried_is_refused_by_name(body, param):
    with pytest.raises(ValidationError) as caught:
        parse_completion_request({"messages": HI, **body})
    assert caught.value.param == param


def test_a_reasoning_effort_is_carried_to_the_provider():
    assert parse_completion_request({"messages": HI, "reasoning_effort": "low"}).chat.options == {
        "reasoning_effort": "low"}


def test_n_of_one_and_text_format_are_accepted_as_what_every_answer_is():
    parsed = parse_completion_request({"messages": HI, "n": 1, "response_format": {"type": "text"},
                                       "logprobs": False, "modalities": ["text"]})
    assert "response_format" not in parsed.chat.options


def test_an_openai_compatible_provider_gets_tools_images_and_tool_results_in_openais_shape():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    parsed = parse_completion_request({
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}] + LOOP[1:],
        "tools": [WEATHER], "tool_choice": "auto", "response_format": {"type": "json_object"},
        "frequency_penalty": 0.5})
    body = openai_compat.to_upstream(parsed.chat, "m", stream=True)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]},
        LOOP[1], {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}]
    assert (body["tools"], body["tool_choice"], body["response_format"], body["frequency_penalty"]) == (
        [WEATHER], "auto", {"type": "json_object"}, 0.5)
    assert parsed.chat.needs == {"tools", "json", "vision"}


def test_streamed_tool_call_pieces_are_read_with_their_index():
    assert openai_compat.parse_chunk(json.loads(TOOL_STREAM.split(b"\n\n")[1][6:])).tool_calls == (
        ToolCallDelta(0, "call_9", "get_weather", ""),)
    whole = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}
    assert [d.index for d in openai_compat.parse_chunk(whole).tool_calls] == [0, 1]


@responses.activate
def test_a_streamed_tool_call_reaches_the_client_as_openai_streams_it(make_client, fake):
    responses.post(f"{fake.base_url('groq')}/chat/completions", body=TOOL_STREAM, content_type="text/event-stream")
    response = make_client(providers=("groq",)).post("/v1/chat/completions", headers=AUTH, json={
        "model": "groq", "messages": HI, "tools": [WEATHER], "stream": True})
    events = [json.loads(line[6:]) for line in response.data.decode().split("\n\n") if line.startswith("data: {")]
    calls = [e["choices"][0]["delta"]["tool_calls"] for e in events if e["choices"][0]["delta"].get("tool_calls")]
    assert calls[0] == [{"index": 0, "id": "call_9", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]
    assert "".join(c[0]["function"]["arguments"] for c in calls) == '{"city":"Paris"}'
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


@responses.activate
def test_a_whole_answer_that_only_calls_a_tool_carries_message_tool_calls(make_client, fake):
    responses.post(f"{fake.base_url('groq')}/chat/completions", body=TOOL_STREAM, content_type="text/event-stream")
    response = make_client(providers=("groq",)).post("/v1/chat/completions", headers=AUTH, json={
        "model": "groq", "messages": HI, "tools": [WEATHER]})
    choice = response.json["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "call_9", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert choice["finish_reason"] == "tool_calls"
    assert response.json["usage"]["completion_tokens"] == 9


@responses.activate(assert_all_requests_are_fired=True)
def test_auto_sends_a_tool_request_only_to_providers_whose_model_has_tools(make_client, fake):
    # OpenRouter's default model (DeepSeek R1, free) has no tools here; Groq's has.
    responses.post(f"{fake.base_url('groq')}/chat/completions", body=TOOL_STREAM, content_type="text/event-stream")
    client = make_client(providers=("openrouter", "groq"))
    for _ in range(3):
        response = client.post("/v1/chat/completions", headers=AUTH, json={"messages": HI, "tools": [WEATHER]})
        assert response.headers["X-Provider"] == "Groq"
    assert len(responses.calls) == 3


def test_a_request_no_configured_provider_can_serve_names_what_is_missing(make_client):
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]
    response = make_client(providers=("groq", "cerebras")).post("/v1/chat/completions", headers=AUTH,
                                                                json={"messages": image})
    assert response.status_code == 400
    message = response.json["error"]["message"]
    assert "images (vision)" in message and "GROQ_VISION=true" in message and "CEREBRAS_VISION=true" in message


def test_a_capability_turned_on_by_setting_lets_the_provider_serve(make_client, fake):
    client = make_client(providers=("groq",))
    groq = client.application.extensions["router"].by_id("groq")  # as if GROQ_VISION=true were set
    groq.settings = replace(groq.settings, capabilities=frozenset({"tools", "json", "vision"}))
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]
    with responses.RequestsMock() as mock:
        mock.post(f"{fake.base_url('groq')}/chat/completions", body=TOOL_STREAM, content_type="text/event-stream")
        assert client.post("/v1/chat/completions", headers=AUTH, json={"messages": image}).status_code == 200
        sent = json.loads(mock.calls[0].request.body)
    assert sent["messages"][0]["content"][0]["type"] == "image_url"


@responses.activate
def test_groq_gets_a_plain_call_for_json_output_and_the_client_still_gets_a_stream(make_client, fake):
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": '{"ok": true}'}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    responses.post(f"{fake.base_url('groq')}/chat/completions", json=answer)
    response = make_client(providers=("groq",)).post("/v1/chat/completions", headers=AUTH, json={
        "model": "groq", "messages": HI, "stream": True, "response_format": {"type": "json_object"}})
    assert json.loads(responses.calls[0].request.body)["stream"] is False
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in response.data.decode().split("\n\n") if line.startswith('data: {"id"')
                   and json.loads(line[6:])["choices"])
    assert json.loads(text) == {"ok": True}


@responses.activate
def test_openrouters_no_endpoint_for_this_need_fails_over_and_leaves_it_healthy(make_client, fake):
    responses.post(f"{fake.base_url('openrouter')}/chat/completions", status=404, json={"error": {
        "code": 404, "message": "No endpoints found that support tool use. To learn more about provider routing, "
        "visit: https://openrouter.ai/docs/provider-routing"}})
    responses.post(f"{fake.base_url('groq')}/chat/completions", body=TOOL_STREAM, content_type="text/event-stream")
    client = make_client(providers=("openrouter", "groq"))
    router = client.application.extensions["router"]
    openrouter = router.by_id("openrouter")
    openrouter.settings = replace(openrouter.settings, capabilities=frozenset({"tools"}))  # an operator's mistake
    response = client.post("/v1/chat/completions", headers=AUTH, json={"messages": HI, "tools": [WEATHER]})
    assert (response.status_code, response.headers["X-Provider"]) == (200, "Groq")
    assert router.status()["openrouter"]["state"] == "ok"


@responses.activate
def test_embeddings_come_back_in_openais_shape_as_floats_or_base64(make_client, fake):
    responses.post(f"{fake.base_url('groq')}/embeddings", json={
        "object": "list", "data": [{"object": "embedding", "index": 1, "embedding": [0.25, -1]},
                                   {"object": "embedding", "index": 0, "embedding": [0.5, 2]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    client = make_client(providers=("groq", "gemini"))
    groq = client.application.extensions["router"].by_id("groq")
    groq.settings = replace(groq.settings, embedding_model="embed-1")
    floats = client.post("/v1/embeddings", headers=AUTH, json={"input": ["a", "b"]})
    assert [d["embedding"] for d in floats.json["data"]] == [[0.5, 2.0], [0.25, -1.0]]
    assert (floats.json["model"], floats.json["usage"]["prompt_tokens"], floats.headers["X-Provider"]) == (
        "embed-1", 4, "Groq")
    packed = client.post("/v1/embeddings", headers=AUTH, json={"input": ["a", "b"], "encoding_format": "base64"})
    assert struct.unpack("<2f", base64.b64decode(packed.json["data"][0]["embedding"])) == (0.5, 2.0)
    assert json.loads(responses.calls[0].request.body) == {"model": "embed-1", "input": ["a", "b"],
                                                           "encoding_format": "float"}
    nobody = client.post("/v1/embeddings", headers=AUTH, json={"input": "a", "model": "gemini"})
    assert (nobody.status_code, nobody.json["error"]["param"]) == (400, "model")
    assert "GEMINI_EMBEDDING_MODEL" in nobody.json["error"]["message"]


def test_more_texts_than_one_call_takes_go_in_batches_and_come_back_in_order(make_client, fake):
    client = make_client(providers=("gemini",))
    gemini = client.application.extensions["router"].by_id("gemini")
    gemini.settings = replace(gemini.settings, embedding_model="gemini-embedding-001")
    texts = [f"text {n}" for n in range(250)]  # the openai SDKs and the Vercel AI SDK send up to 2,048 at once
    response = client.post("/v1/embeddings", headers=AUTH, json={"input": texts, "model": "gemini"})
    assert response.status_code == 200
    assert [d["embedding"] for d in response.json["data"]] == [embedding_of(text) for text in texts]
    assert [len(r.json["requests"]) for r in fake.embedding_requests("gemini")] == [100, 100, 50]
    too_many = client.post("/v1/embeddings", headers=AUTH, json={"input": ["a"] * 2049, "model": "gemini"})
    assert (too_many.status_code, too_many.json["error"]["param"]) == (400, "input")


def test_a_chat_request_is_plain_data_that_says_what_it_needs():
    request = ChatRequest((Message("user", "see", (Image("https://x.test/a.png"),)),),
                          {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}})
    assert request.needs == {"vision", "json"}


@responses.activate
def test_a_tool_call_streamed_without_an_id_gets_one_and_one_without_a_name_is_malformed(make_client, fake):
    nameless = sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), chunk({}, "tool_calls"))
    idless = sse(chunk({"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": "{}"}}]}),
                 chunk({}, "tool_calls"))
    responses.post(f"{fake.base_url('groq')}/chat/completions", body=nameless, content_type="text/event-stream")
    responses.post(f"{fake.base_url('cerebras')}/chat/completions", body=idless, content_type="text/event-stream")
    response = make_client(providers=("groq", "cerebras")).post("/v1/chat/completions", headers=AUTH, json={
        "messages": HI, "tools": [WEATHER]})
    assert (response.status_code, response.headers["X-Provider"], response.headers["X-Attempts"]) == (
        200, "Cerebras", "2")
    [call] = response.json["choices"][0]["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["function"] == {"name": "get_weather", "arguments": "{}"}
