"""The Vercel AI SDK (npm `ai` with `@ai-sdk/openai` and `@ai-sdk/openai-compatible`) against the gateway under
gunicorn + gevent, the fake providers answering: generateText, streamText, tool loops whole and streamed,
generateObject and streamObject, embed and embedMany, and the errors a user's code catches (APICallError with its
status and headers).

The packages (tests/vercel_ai_sdk.package.json) are installed by `make vercel-sdk` into the user's cache
(`$XDG_CACHE_HOME` or ~/.cache, under ai-gateway-tests/), never into the repository, and never by a test: without
them, or without Node.js 18+, these tests skip saying why. Every call runs in one node process
(tests/vercel_ai_sdk.mjs) against one gateway, and each test reads its cases' results."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakeprovider import Reply, embedding_of
from tests.gateway import MASTER_KEY, Gateway, fake_env

SCRIPT = Path(__file__).resolve().parent / "vercel_ai_sdk.mjs"
PACKAGES = json.loads((Path(__file__).resolve().parent / "vercel_ai_sdk.package.json").read_text())["dependencies"]
SDKS = ["openai", "compatible"]  # @ai-sdk/openai's chat models, and @ai-sdk/openai-compatible
PROVIDERS = ["groq", "gemini"]   # an OpenAI-compatible provider, and the one the gateway translates
PARIS_AND_ROME = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
PARIS = {"city": "Paris", "temp": 21}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-gateway-tests" / "vercel"


def installed(directory: Path) -> bool:
    return all((directory / "node_modules" / name / "package.json").is_file() for name in PACKAGES)


@pytest.fixture(scope="session")
def ai_sdk() -> Path:
    """The directory holding node_modules with the SDK (`make vercel-sdk` puts it there)."""
    if not shutil.which("node"):
        pytest.skip("Node.js is needed to run the Vercel AI SDK")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout
    if int(version.lstrip("v").split(".")[0] or 0) < 18:
        pytest.skip(f"the Vercel AI SDK needs Node.js 18 or later; this is {version.strip()}")
    directory = cache_dir()
    if not installed(directory):
        pytest.skip(f"the Vercel AI SDK is not installed in {directory}: `make vercel-sdk` installs it")
    return directory


def case(name: str, call: str, sdk: str, model: str, **extra) -> dict:
    return {"name": name, "call": call, "sdk": sdk, "model": model, **extra}


def plan(fake, limited: dict) -> list[dict]:
    """Every case, each provider's replies queued in the order the cases will ask for them."""
    cases = []
    for sdk in SDKS:
        for provider in PROVIDERS:
            at = f"{sdk}-{provider}"
            fake.enqueue(provider, Reply(chunks=["Hello", " from", f" {provider}"]),
                         Reply(chunks=["Hello", " from", f" {provider}"]),
                         Reply(tool_calls=PARIS_AND_ROME), Reply(chunks=["21C in Paris, ", "25C in Rome."]),
                         Reply(tool_calls=PARIS_AND_ROME), Reply(chunks=["21C in Paris, ", "25C in Rome."]),
                         Reply(json_content=PARIS), Reply(json_content=PARIS))
            cases += [case(f"{at}-{call}", call, sdk, provider) for call in (
                "generateText", "streamText", "toolLoop", "streamToolLoop", "generateObject", "streamObject")]
        # Groq answers withinLimit, then midStream, which it drops after its first chunk; the other cases are
        # refused before any provider is asked.
        fake.enqueue("groq", Reply(), Reply(chunks=["Hello", " world", "!"], drop_after=1))
        cases += [case(f"{sdk}-embed", "embed", sdk, "gemini"),
                  case(f"{sdk}-embedMany", "embedMany", sdk, "openrouter"),
                  case(f"{sdk}-badKey", "generateText", sdk, "groq", key="not-a-key"),
                  case(f"{sdk}-badKeyStream", "streamText", sdk, "groq", key="not-a-key"),
                  case(f"{sdk}-withinLimit", "generateText", sdk, "groq", key=limited[sdk]),
                  case(f"{sdk}-overLimit", "generateText", sdk, "groq", key=limited[sdk]),
                  case(f"{sdk}-overLimitStream", "streamText", sdk, "groq", key=limited[sdk]),
                  case(f"{sdk}-midStream", "streamText", sdk, "groq")]
    fake.enqueue("groq", Reply(reasoning=["Let me ", "think."]), Reply(json_content=PARIS))
    return cases + [
        case("openai-refused", "generateText", "openai", "groq", options={"providerOptions": {"openai": {
            "logprobs": True}}}),
        case("compatible-refused", "generateText", "compatible", "groq", options={"providerOptions": {"gateway": {
            "logit_bias": {"50256": -100}}}}),
        case("compatible-reasoning", "streamText", "compatible", "groq"),
        case("compatible-structured-generateObject", "generateObject", "compatible-structured", "groq"),
        case("openai-responses", "generateText", "openai-responses", "groq")]


@pytest.fixture(scope="module")
def run(ai_sdk, fake_server, tmp_path_factory):
    """Every case run once: (results by case name, what reached the fake providers)."""
    fake = fake_server
    fake.clear()
    env = {**fake_env(fake, ["groq", "gemini", "openrouter"]), "RATE_LIMIT_MAX": "1000",
           "GEMINI_EMBEDDING_MODEL": "gemini-embedding-001",
           "OPENROUTER_EMBEDDING_MODEL": "openai/text-embedding-3-small"}
    gateway = Gateway(env, tmp_path_factory.mktemp("vercel")).start()
    try:
        limited = {sdk: gateway.admin("POST", json={"name": sdk, "limits": {"rateLimit": {
            "max": 1, "windowMs": 60000}}}).json()["apiKey"] for sdk in SDKS}
        cases = plan(fake, limited)
        done = subprocess.run(["node", "--input-type=module", "--eval", SCRIPT.read_text()], cwd=ai_sdk,
                              input=json.dumps({"url": gateway.url, "key": MASTER_KEY, "cases": cases}),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        yield json.loads(done.stdout), list(fake.requests)
    finally:
        gateway.kill()
        fake.clear()


def ok(run, name: str) -> dict:
    result = run[0][name]
    assert "ok" in result, result
    return result["ok"]


def error(run, name: str) -> dict:
    result = run[0][name]
    assert "error" in result, result
    return result["error"]


def sent(run, name: str) -> list:
    """The bodies of the requests that reached the fake providers for one case, in order."""
    return [r.json for r in run[1] if f"[{name}]" in json.dumps(r.json)]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", SDKS)
def test_generate_text_and_stream_text_give_the_text_usage_and_finish_reason(run, sdk, provider):
    whole = ok(run, f"{sdk}-{provider}-generateText")
    assert (whole["text"], whole["finishReason"]) == (f"Hello from {provider}", "stop")
    assert whole["usage"] == {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
    streamed = ok(run, f"{sdk}-{provider}-streamText")
    assert "".join(streamed["pieces"]) == f"Hello from {provider}" and len(streamed["pieces"]) > 1
    assert (streamed["finishReason"], streamed["errors"]) == ("stop", [])
    assert streamed["usage"] == {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", SDKS)
def test_a_tool_loop_runs_the_tools_and_sends_their_results_back_whole_and_streamed(run, sdk, provider):
    for call in ("toolLoop", "streamToolLoop"):
        loop = ok(run, f"{sdk}-{provider}-{call}")
        assert loop["asked"] == ["Paris", "Rome"], call
        assert loop["steps"] == [
            {"finishReason": "tool-calls", "text": "", "toolCalls": [["get_weather", {"city": "Paris"}],
                                                                     ["get_weather", {"city": "Rome"}]]},
            {"finishReason": "stop", "text": "21C in Paris, 25C in Rome.", "toolCalls": []}], call
        assert (loop["text"], loop["finishReason"]) == ("21C in Paris, 25C in Rome.", "stop")
        assert loop["usage"]["totalTokens"] == 30  # both steps'
        asked, answered = sent(run, f"{sdk}-{provider}-{call}")
        if provider == "gemini":
            assert asked["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
            assert answered["contents"][-1]["parts"] == [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}] * 2
        else:
            assert asked["tools"][0]["function"]["name"] == "get_weather"
            calls = answered["messages"][-3]["tool_calls"]
            assert [(m["role"], m["tool_call_id"], m["content"]) for m in answered["messages"][-2:]] == [
                ("tool", c["id"], '{"temp":21}') for c in calls]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", SDKS)
def test_generate_object_and_stream_object_read_the_json_answer(run, sdk, provider):
    whole = ok(run, f"{sdk}-{provider}-generateObject")
    assert (whole["object"], whole["finishReason"]) == (PARIS, "stop")
    streamed = ok(run, f"{sdk}-{provider}-streamObject")
    assert (streamed["object"], streamed["errors"]) == (PARIS, [])
    assert streamed["usage"]["totalTokens"] == 15
    (body,) = sent(run, f"{sdk}-{provider}-generateObject")
    if provider == "gemini":
        assert body["generationConfig"]["responseMimeType"] == "application/json"
    elif sdk == "openai":  # @ai-sdk/openai asks for the schema; openai-compatible, by default, for JSON
        schema = body["response_format"]["json_schema"]
        assert (schema["name"], schema["strict"], set(schema["schema"]["properties"])) == (
            "response", True, {"city", "temp"})
    else:
        assert body["response_format"] == {"type": "json_object"}


def test_openai_compatible_with_structured_outputs_sends_the_json_schema(run):
    assert ok(run, "compatible-structured-generateObject")["object"] == PARIS
    (body,) = sent(run, "compatible-structured-generateObject")
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["city", "temp"]


@pytest.mark.parametrize("sdk", SDKS)
def test_embed_and_embed_many_give_the_providers_vectors(run, sdk):
    one, many = ok(run, f"{sdk}-embed"), ok(run, f"{sdk}-embedMany")
    assert one["embeddings"] == [embedding_of(f"[{sdk}-embed] Weather in Paris?")]
    assert many["embeddings"] == [embedding_of(text) for text in (f"[{sdk}-embedMany] Weather in Paris?", "bb",
                                                                  "ccc")]
    assert many["usage"]["tokens"] > 0  # OpenRouter counts them; Gemini reports none


@pytest.mark.parametrize("sdk", SDKS)
def test_a_bad_key_is_an_api_call_error_with_status_401_whole_and_streamed(run, sdk):
    whole = error(run, f"{sdk}-badKey")
    (streamed,) = ok(run, f"{sdk}-badKeyStream")["errors"]
    for seen in (whole, streamed):
        assert (seen["name"], seen["statusCode"], seen["isRetryable"]) == ("AI_APICallError", 401, False)
        assert seen["message"] == "Invalid or disabled API key"


@pytest.mark.parametrize("sdk", SDKS)
def test_the_rate_limit_is_a_429_api_call_error_carrying_retry_after_and_the_limit_headers(run, sdk):
    assert ok(run, f"{sdk}-withinLimit")["headers"]["x-ratelimit-remaining"] == "0"
    whole = error(run, f"{sdk}-overLimit")
    (streamed,) = ok(run, f"{sdk}-overLimitStream")["errors"]
    for seen in (whole, streamed):
        assert (seen["name"], seen["statusCode"], seen["isRetryable"]) == ("AI_APICallError", 429, True)
        assert seen["message"] == "Rate limit exceeded"
        headers = seen["responseHeaders"]
        assert 0 < int(headers["retry-after"]) <= 61
        assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("1", "0")
        assert headers["x-ratelimit-reset"].endswith("Z")


@pytest.mark.parametrize("sdk", SDKS)
def test_a_provider_failing_mid_stream_reaches_the_stream_as_an_error_after_the_text_so_far(run, sdk):
    seen = ok(run, f"{sdk}-midStream")
    assert seen["pieces"] == ["Hello"]
    assert seen["finishReason"] == "error"
    assert [e["message"] for e in seen["errors"]] == ["Groq failed mid-stream; the answer is incomplete"]


@pytest.mark.parametrize("sdk, param", [("openai", "logprobs"), ("compatible", "logit_bias")])
def test_a_field_no_provider_can_honour_is_a_400_naming_it(run, sdk, param):
    seen = error(run, f"{sdk}-refused")
    assert (seen["name"], seen["statusCode"]) == ("AI_APICallError", 400)
    assert seen["message"].startswith(f"{param} is not supported")
    assert sent(run, f"{sdk}-refused") == []


def test_reasoning_reaches_openai_compatible_as_reasoning_text_apart_from_the_answer(run):
    seen = ok(run, "compatible-reasoning")
    assert (seen["reasoning"], "".join(seen["pieces"])) == ("Let me think.", "Hello from groq")


def test_the_responses_api_that_openai_model_defaults_to_is_a_404_naming_what_to_use(run):
    seen = error(run, "openai-responses")
    assert (seen["name"], seen["statusCode"]) == ("AI_APICallError", 404)
    assert "POST /v1/chat/completions" in seen["message"] and "openai.chat(model)" in seen["message"]
