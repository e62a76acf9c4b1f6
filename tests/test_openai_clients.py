"""Real OpenAI clients against the gateway under gunicorn + gevent, the fake providers speaking each provider's
wire format: tool loops, tool_choice, JSON output, images and embeddings with the official `openai` SDK,
LangChain's ChatOpenAI and a pydantic-ai Agent, and routing by what each provider's model can do. (The same
features in process: tests/test_openai_tools.py and tests/test_gemini_tools.py.)"""
from __future__ import annotations

import asyncio
import copy
import functools
import json
import operator

import openai
import pytest
import requests
from pydantic import BaseModel

from providers import PROVIDER_CLASSES
from tests.fakeprovider import SKIP_SIGNATURE, Reply, embedding_of
from tests.gateway import MASTER_KEY, PROVIDER_IDS
from utils.chat import JSON

NAMES = {cls.id: cls.name for cls in PROVIDER_CLASSES}
MODELS = {cls.id: cls.default_model for cls in PROVIDER_CLASSES}
PREFIXES = {cls.id: cls.env_prefix for cls in PROVIDER_CLASSES}
# Every request of these tests is counted against one key's budget: off, so a test can send as many as it needs.
NO_LIMIT = {"RATE_LIMIT_ENABLED": "false"}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}
# strict: the SDK's parse and stream helpers only take strict function tools.
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": CITY, "strict": True}}
NOW = {"type": "function", "function": {"name": "now", "description": "The time", "strict": True,
                                        "parameters": {"type": "object", "properties": {},
                                                       "additionalProperties": False}}}
PARIS = [("get_weather", {"city": "Paris"})]
PARIS_AND_ROME = PARIS + [("get_weather", {"city": "Rome"})]
# A 1x1 PNG.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PICTURES = [{"role": "user", "content": [
    {"type": "text", "text": "What is in these?"},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    {"type": "image_url", "image_url": {"url": "https://images.example.com/cat.webp", "detail": "high"}}]}]
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
                  "required": ["city", "temp"], "additionalProperties": False}


class Weather(BaseModel):
    city: str
    temp: int


def client(gateway) -> openai.OpenAI:
    # No retries: an error must reach the test as the gateway sent it.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def streamed_text(stream) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def tool_result(call, content: str = '{"temp": 21}') -> dict:
    return {"role": "tool", "tool_call_id": call.id, "content": content}


# ----- the openai SDK: tool loops -----

@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_a_tool_loop_with_the_openai_sdk_runs_on_every_provider_whole_and_streamed(start_gateway, fake, provider):
    # OpenRouter's default model has no tools: turned on, as an operator would for a model that has them.
    api = client(start_gateway(providers=[provider], OPENROUTER_TOOLS="true", **NO_LIMIT))
    ask = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    for stream in (False, True):
        fake.enqueue(provider, Reply(tool_calls=PARIS_AND_ROME), Reply(chunks=["21C in Paris, ", "25C in Rome."]))
        if stream:  # the SDK's streaming helper puts the delta.tool_calls pieces together by index
            with api.chat.completions.stream(model=provider, messages=ask, tools=[WEATHER]) as events:
                first = events.get_final_completion()
        else:
            first = api.chat.completions.create(model=provider, messages=ask, tools=[WEATHER])
        choice = first.choices[0]
        # No text: null content (streamed, "": see the test of the streamed content below).
        assert choice.finish_reason == "tool_calls" and not choice.message.content
        calls = choice.message.tool_calls
        assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
            ("function", "get_weather", {"city": "Paris"}), ("function", "get_weather", {"city": "Rome"})]
        assert len({c.id for c in calls}) == 2
        # The SDK's own message object goes back as it is, then one result per call.
        messages = ask + [choice.message, tool_result(calls[0]), tool_result(calls[1], "sunny, 25C")]
        if stream:
            final = streamed_text(api.chat.completions.create(model=provider, messages=messages, tools=[WEATHER],
                                                              stream=True))
        else:
            final = api.chat.completions.create(model=provider, messages=messages, tools=[WEATHER]
                                                ).choices[0].message.content
        assert final == "21C in Paris, 25C in Rome."

        asked, answered = fake.chat_requests(provider)[-2:]
        paris, rome = asked.answered_calls
        assert answered.refusal is None
        if provider == "gemini":
            assert asked.json["tools"] == [{"functionDeclarations": [{
                "name": "get_weather", "description": "Weather in a city", "parametersJsonSchema": CITY}]}]
            # The calls went back as Gemini made them, the signature on the first; the results as functionResponses.
            assert answered.json["contents"][1:] == [
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                     "thoughtSignature": paris.thought_signature},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                    {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 25C"}}}]}]
        else:
            assert asked.json["tools"] == [WEATHER]
            assert [c.id for c in calls] == [paris.id, rome.id]  # the provider's own ids reach the client, and go back
            assert answered.json["messages"][1:] == [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": made.id, "type": "function",
                     "function": {"name": "get_weather", "arguments": made.arguments}} for made in (paris, rome)]},
                {"role": "tool", "tool_call_id": paris.id, "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": rome.id, "content": "sunny, 25C"}]


@pytest.mark.parametrize("provider", ["groq", "gemini"])
def test_a_streamed_answer_that_only_calls_tools_reassembles_with_null_content_as_openais_does(start_gateway, fake,
                                                                                              provider):
    # OpenAI's stream of a tool call answer starts with `"content": null` (a captured stream:
    # https://github.com/alexbrowng/aiomodels/blob/main/tests/openai/chat_completion_chunks/get_weather.py), so
    # the SDK's reassembled message has content None, as the whole answer has.
    api = client(start_gateway(providers=[provider]))
    fake.enqueue(provider, Reply(tool_calls=PARIS), Reply(tool_calls=PARIS))
    whole = api.chat.completions.create(model=provider, messages=ASK, tools=[WEATHER]).choices[0].message
    with api.chat.completions.stream(model=provider, messages=ASK, tools=[WEATHER]) as events:
        streamed = events.get_final_completion().choices[0].message
    assert whole.content is None
    assert streamed.content is None


def test_geminis_thought_signature_travels_back_in_the_call_ids_and_without_it_gemini_refuses(start_gateway, fake):
    api = client(start_gateway(providers=["gemini"]))
    fake.enqueue("gemini", Reply(tool_calls=PARIS_AND_ROME), Reply(chunks=["Both 21C."]))
    ask = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = api.chat.completions.create(model="gemini", messages=ask, tools=[WEATHER]).choices[0].message
    paris, rome = first.tool_calls
    messages = ask + [first, tool_result(paris), tool_result(rome, "sunny, 21C")]
    assert api.chat.completions.create(model="gemini", messages=messages, tools=[WEATHER]
                                       ).choices[0].message.content == "Both 21C."

    asked, answered = fake.chat_requests("gemini")
    signature = asked.answered_calls[0].thought_signature
    assert set(signature) & set("+/=")  # Gemini's standard base64, which no tool call id may hold as it is
    assert answered.refusal is None
    assert answered.json["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": signature},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]
    assert answered.json["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 21C"}}}]

    # The same request without the signature is what Gemini 3 refuses.
    unsigned = copy.deepcopy(answered.json)
    del unsigned["contents"][1]["parts"][0]["thoughtSignature"]
    refused = requests.post(f"{fake.base_url('gemini')}/models/{MODELS['gemini']}:streamGenerateContent?alt=sse",
                            json=unsigned, headers={"x-goog-api-key": "k"}, timeout=10)
    assert (refused.status_code, refused.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert refused.json()["error"]["message"].startswith(
        "Function call is missing a thought_signature in functionCall parts.")

    # A call whose id the client made up carries no signature: the gateway sends the documented stand-in.
    fake.enqueue("gemini", Reply(chunks=["21C."]))
    made_up = ask + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_mine", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_mine", "content": "21C"}]
    assert api.chat.completions.create(model="gemini", messages=made_up).choices[0].message.content == "21C."
    sent = fake.chat_requests("gemini")[-1]
    assert sent.refusal is None and sent.json["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE


def test_a_tool_loop_whose_turns_land_on_different_providers_is_accepted_by_each(start_gateway, fake):
    # auto takes turns, so one conversation's turns go to Groq, Gemini, Groq: each gets the others' calls in a
    # form it accepts (Gemini the documented stand-in signature, Groq plain ids).
    api = client(start_gateway(providers=["groq", "gemini"], **NO_LIMIT))
    fake.enqueue("groq", Reply(tool_calls=PARIS), Reply(chunks=["21C in Paris, 25C in Rome."]))
    fake.enqueue("gemini", Reply(tool_calls=[("get_weather", {"city": "Rome"})]))
    messages = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    for stream in (False, True):
        if stream:
            with api.chat.completions.stream(model="auto", messages=messages, tools=[WEATHER]) as events:
                message = events.get_final_completion().choices[0].message
        else:
            message = api.chat.completions.create(model="auto", messages=messages, tools=[WEATHER]).choices[0].message
        (call,) = message.tool_calls
        messages += [message, tool_result(call)]
    final = api.chat.completions.create(model="auto", messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == "21C in Paris, 25C in Rome."

    first, second, third = fake.chat_requests()
    assert [r.provider for r in (first, second, third)] == ["groq", "gemini", "groq"]
    assert [r.refusal for r in (first, second, third)] == [None, None, None]
    groq_call, gemini_call = first.answered_calls[0], second.answered_calls[0]
    assert second.json["contents"][1]["parts"][0] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SKIP_SIGNATURE}
    gemini_id = messages[3].tool_calls[0].id
    plain = gemini_id[:len("call_") + 12]  # what Groq gets of an id carrying Gemini's signature
    assert gemini_id.startswith(plain + "_ts_")
    sent = third.json["messages"]
    assert [m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])] for m in sent[1:]] == [
        [groq_call.id], groq_call.id, [plain], plain]
    assert sent[3]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": gemini_call.arguments}


def test_tool_choice_naming_a_function_reaches_each_provider_in_its_own_format(start_gateway, fake):
    api = client(start_gateway(OPENROUTER_TOOLS="true", **NO_LIMIT))
    forced = {"type": "function", "function": {"name": "get_weather"}}
    for provider in PROVIDER_IDS:
        fake.enqueue(provider, Reply(tool_calls=PARIS))
        answer = api.chat.completions.create(model=provider, messages=ASK, tools=[NOW, WEATHER], tool_choice=forced)
        assert [c.function.name for c in answer.choices[0].message.tool_calls] == ["get_weather"]
        sent = fake.chat_requests(provider)[-1].json
        if provider == "gemini":
            assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                                    "allowedFunctionNames": ["get_weather"]}}
            assert [d["name"] for d in sent["tools"][0]["functionDeclarations"]] == ["now", "get_weather"]
        else:
            assert (sent["tool_choice"], sent["tools"]) == (forced, [NOW, WEATHER])


# ----- the openai SDK: JSON output -----

def test_json_mode_and_json_schema_answers_parse_on_every_provider_whose_model_has_json(start_gateway, fake):
    providers = [cls.id for cls in PROVIDER_CLASSES if JSON in cls.capabilities]
    api = client(start_gateway(providers=providers, **NO_LIMIT))
    value = {"city": "Paris", "temp": 21}
    schema = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": WEATHER_SCHEMA}}
    for provider in providers:
        for response_format in ({"type": "json_object"}, schema):
            for stream in (False, True):
                # The fake answers JSON only when the provider was asked for JSON output.
                fake.enqueue(provider, Reply(json_content=value))
                if stream:
                    text = streamed_text(api.chat.completions.create(
                        model=provider, messages=ASK, response_format=response_format, stream=True))
                else:
                    text = api.chat.completions.create(model=provider, messages=ASK, response_format=response_format
                                                       ).choices[0].message.content
                assert json.loads(text) == value, (provider, response_format["type"], stream)
                sent = fake.chat_requests(provider)[-1]
                assert sent.refusal is None
                if provider == "gemini":
                    config = sent.json["generationConfig"]
                    assert config["responseMimeType"] == "application/json"
                    assert config.get("responseJsonSchema") == (WEATHER_SCHEMA if response_format is schema else None)
                else:
                    assert sent.json["response_format"] == response_format
                if provider == "groq":  # Groq refuses response_format on a stream: a plain call instead
                    assert sent.json["stream"] is False


def test_the_sdks_parse_helpers_give_back_a_pydantic_model(start_gateway, fake):
    api = client(start_gateway(providers=["groq", "gemini"], **NO_LIMIT))
    paris = Weather(city="Paris", temp=21)
    for provider in ("groq", "gemini"):
        fake.enqueue(provider, Reply(json_content=paris.model_dump()), Reply(json_content=paris.model_dump()))
        parsed = api.chat.completions.parse(model=provider, messages=ASK, response_format=Weather)
        assert parsed.choices[0].message.parsed == paris
        with api.chat.completions.stream(model=provider, messages=ASK, response_format=Weather) as events:
            assert events.get_final_completion().choices[0].message.parsed == paris
    groq, gemini = fake.chat_requests("groq")[-1].json, fake.chat_requests("gemini")[-1].json
    response_format = groq["response_format"]
    assert (response_format["type"], response_format["json_schema"]["name"]) == ("json_schema", "Weather")
    assert groq["stream"] is False
    assert set(gemini["generationConfig"]["responseJsonSchema"]["properties"]) == {"city", "temp"}


# ----- the openai SDK: images -----

def test_images_reach_gemini_inline_from_a_data_url_and_as_file_data_from_an_https_url(start_gateway, fake):
    api = client(start_gateway(providers=["groq", "gemini"], **NO_LIMIT))
    for _ in range(3):  # auto: Groq's model reads no images, so every one goes to Gemini
        raw = api.chat.completions.with_raw_response.create(model="auto", messages=PICTURES)
        assert (raw.headers["X-Provider"], raw.parse().choices[0].message.content) == (
            NAMES["gemini"], "Hello from gemini")
    sent = fake.chat_requests()
    assert [r.provider for r in sent] == ["gemini"] * 3
    assert sent[-1].images() == [("inlineData", {"mimeType": "image/png", "data": PNG}),
                                 ("fileData", {"mimeType": "image/webp",
                                               "fileUri": "https://images.example.com/cat.webp"})]
    assert sent[-1].json["contents"][0]["parts"][0] == {"text": "What is in these?"}


def test_a_text_only_model_switched_on_for_images_by_mistake_gives_the_client_the_providers_400(start_gateway, fake):
    api = client(start_gateway(providers=["groq"], GROQ_VISION="true"))
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="auto", messages=PICTURES)
    (sent,) = fake.chat_requests("groq")
    assert sent.images()[0] == ("image_url", {"url": f"data:image/png;base64,{PNG}"})
    assert sent.refusal == "message[0].content must be a string"
    assert "message[0].content must be a string" in caught.value.message


# ----- the openai SDK: embeddings -----

@pytest.mark.parametrize("provider, model", [("openrouter", "openai/text-embedding-3-small"),
                                             ("gemini", "gemini-embedding-001")])
def test_embeddings_of_a_string_and_of_a_list_are_the_providers_vectors(start_gateway, fake, provider, model):
    api = client(start_gateway(providers=[provider], **{f"{PREFIXES[provider]}_EMBEDDING_MODEL": model}))
    one = api.embeddings.create(model="auto", input="hello")  # the SDK asks for base64
    assert [(d.index, d.embedding) for d in one.data] == [(0, embedding_of("hello"))]
    assert one.model == model
    texts = ["a", "bb", "ccc"]
    many = api.embeddings.create(model=provider, input=texts)
    assert [(d.index, d.embedding) for d in many.data] == list(enumerate(map(embedding_of, texts)))
    assert many.usage.prompt_tokens == (0 if provider == "gemini" else 3)  # Gemini reports none
    floats = api.embeddings.create(model=provider, input="hello", encoding_format="float", dimensions=4)
    assert floats.data[0].embedding == embedding_of("hello", 4)

    sent = fake.embedding_requests(provider)
    assert len(sent) == 3
    if provider == "gemini":
        assert sent[1].path == f"{fake.base_url('gemini').removeprefix(fake.url)}/models/{model}:batchEmbedContents"
        assert sent[1].json == {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}}
                                             for t in texts]}
        assert sent[2].json["requests"][0]["outputDimensionality"] == 4
    else:
        assert sent[1].json == {"model": model, "input": texts, "encoding_format": "float"}
        assert sent[2].json["dimensions"] == 4


def test_groq_which_has_no_embeddings_endpoint_gives_way_to_gemini(start_gateway, fake):
    api = client(start_gateway(providers=["groq", "gemini"], GROQ_EMBEDDING_MODEL="nomic-embed-text",
                               GEMINI_EMBEDDING_MODEL="gemini-embedding-001"))
    raw = api.embeddings.with_raw_response.create(model="auto", input="hello")
    assert (raw.headers["X-Provider"], raw.headers["X-Attempts"]) == (NAMES["gemini"], "2")
    assert raw.parse().data[0].embedding == embedding_of("hello")
    assert [r.provider for r in fake.embedding_requests()] == ["groq", "gemini"]


# ----- LangChain and pydantic-ai -----

def test_langchains_chat_openai_reads_the_tool_calls_of_bind_tools_whole_and_streamed(start_gateway, fake):
    from langchain_openai import ChatOpenAI

    gateway = start_gateway(providers=["groq", "gemini"], **NO_LIMIT)
    # auto takes turns: the first request goes to Groq, the second to Gemini.
    fake.enqueue("groq", Reply(tool_calls=PARIS))
    fake.enqueue("gemini", Reply(tool_calls=PARIS_AND_ROME))
    llm = ChatOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, model="auto", max_retries=0, timeout=30)
    bound = llm.bind_tools([WEATHER])
    whole = bound.invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert whole.tool_calls[0]["id"] == fake.chat_requests("groq")[-1].answered_calls[0].id
    streamed = functools.reduce(operator.add, bound.stream("Weather in Paris and Rome?"))
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("get_weather", {"city": "Paris"}),
                                                                      ("get_weather", {"city": "Rome"})]
    assert len({c["id"] for c in streamed.tool_calls}) == 2
    assert [r.provider for r in fake.chat_requests()] == ["groq", "gemini"]


@pytest.mark.parametrize("provider", ["groq", "gemini"])
def test_a_pydantic_ai_agent_runs_its_tool_through_the_gateway_and_gets_the_final_answer(start_gateway, fake,
                                                                                        provider):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    gateway = start_gateway(providers=[provider], **NO_LIMIT)
    model = OpenAIChatModel("auto", provider=OpenAIProvider(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY))
    agent = Agent(model)
    asked = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather in a city."""
        asked.append(city)
        return "21C"

    async def streamed() -> str:
        async with agent.run_stream("Weather in Paris?") as run:
            return await run.get_output()

    # The fake answers the first call of each run with a tool call, the second with text.
    for run in (lambda: agent.run_sync("Weather in Paris?").output, lambda: asyncio.run(streamed())):
        fake.enqueue(provider, Reply(tool_calls=PARIS), Reply(chunks=["It is 21C ", "in Paris."]))
        assert run() == "It is 21C in Paris."
        first, second = fake.chat_requests(provider)[-2:]
        assert second.refusal is None
        if provider == "gemini":
            assert second.json["contents"][-2]["parts"][0]["thoughtSignature"] == \
                first.answered_calls[0].thought_signature
            assert second.json["contents"][-1]["parts"] == [
                {"functionResponse": {"name": "get_weather", "response": {"result": "21C"}}}]
        else:
            assert second.json["messages"][-1] == {"role": "tool", "tool_call_id": first.answered_calls[0].id,
                                                   "content": "21C"}
    assert asked == ["Paris", "Paris"]


# ----- routing by what each provider's model can do -----

def test_auto_with_tools_never_reaches_a_provider_whose_model_has_none(start_gateway, fake):
    api = client(start_gateway(providers=["openrouter", "groq"], **NO_LIMIT))
    fake.set_default("groq", Reply(tool_calls=PARIS))
    for _ in range(3):
        raw = api.chat.completions.with_raw_response.create(model="auto", messages=ASK, tools=[WEATHER])
        assert (raw.headers["X-Provider"], raw.parse().choices[0].finish_reason) == (NAMES["groq"], "tool_calls")
    with api.chat.completions.stream(model="auto", messages=ASK, tools=[WEATHER]) as events:
        call = events.get_final_completion().choices[0].message.tool_calls[0]
    # A later turn of a tool loop needs tools too, even without `tools` in the request.
    fake.set_default("groq", Reply(chunks=["21C."]))
    loop = ASK + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
                  tool_result(call)]
    for _ in range(2):
        assert api.chat.completions.create(model="auto", messages=loop).choices[0].message.content == "21C."
    assert [r.provider for r in fake.chat_requests()] == ["groq"] * 6
    # Without tools OpenRouter takes its turns as usual.
    answered = {api.chat.completions.with_raw_response.create(model="auto", messages=ASK).headers["X-Provider"]
                for _ in range(2)}
    assert answered == {NAMES["groq"], NAMES["openrouter"]}


def test_naming_a_provider_whose_model_lacks_a_capability_is_a_bad_request_about_model(start_gateway, fake):
    api = client(start_gateway(providers=["openrouter", "groq", "gemini"], **NO_LIMIT))
    cases = [("openrouter", {"tools": [WEATHER]}, "OPENROUTER_TOOLS=true"),
             ("openrouter", {"response_format": {"type": "json_object"}}, "OPENROUTER_JSON=true"),
             (f"groq/{MODELS['groq']}", {"messages": PICTURES}, "GROQ_VISION=true"),
             ("gemini", {"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls")]
    for model, extra, named in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            api.chat.completions.create(**{"model": model, "messages": ASK, **extra})
        assert (caught.value.status_code, caught.value.param) == (400, "model"), model
        assert named in caught.value.message, caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        api.embeddings.create(model="groq", input="hello")
    assert caught.value.param == "model" and "GROQ_EMBEDDING_MODEL" in caught.value.message
    assert fake.chat_requests() == [] and fake.embedding_requests() == []
