"""Schemathesis against the real gateway (gunicorn + gevent, every provider on the local fake), driven by the
document the gateway serves at /openapi.json: no answer may be a 5xx (the fake providers answer fine, so a 5xx
is the gateway's own bug), and every answer must be one the document lists, with its content type, headers and
schema.

Schemathesis' pytest integration does not work under pytest 9.2 (`from_fixture` fails on the removed
`Function._nodeid`; `schema.parametrize` loses its items' names), so each operation is a plain parametrized
test driving Hypothesis with schemathesis' `APIOperation.as_strategy`."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import responses
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import MASTER
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY, Gateway, fake_env

SPEC = json.loads((Path(__file__).resolve().parent.parent / "routes" / "openapi.json").read_text(encoding="utf-8"))
# Listed from the file at collection time; tests/test_openapi.py checks the gateway serves this very file.
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items()
              for method in item if method in {"get", "put", "post", "delete", "patch"}]
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance,
               response_headers_conformance]
CHECKS = [not_a_server_error, *CONFORMANCE]
# Bounded so the whole file runs in seconds, not minutes.
MAX_EXAMPLES = 50
KEYLESS_EXAMPLES = 10


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,  # a request's time is the server's, not the generator's
        # Bodies of up to 50 messages of 10,000 characters can be slow to generate on a busy machine.
        suppress_health_check=[HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def gateway(fake_server, tmp_path_factory):
    """One gateway for the whole module: starting gunicorn for each operation would cost more than fuzzing it."""
    # Limits off, or most answers would be 429s. The webhooks the fuzzer registers point anywhere: their deliveries
    # go through a "proxy" on a closed local port, so none reaches the internet (the fake is reached directly).
    offline = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"}
    # The response cache is on, so its headers and hits (X-Attempts: 0) are checked against the document too.
    gateway = Gateway({**fake_env(fake_server), "RATE_LIMIT_ENABLED": "false", "CACHE_TTL": "60", **offline},
                      tmp_path_factory.mktemp("fuzz")).start()
    yield gateway
    gateway.kill()


@pytest.fixture(scope="module")
def schema(gateway):
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


def strategy(operation, *modes):
    return st.one_of(*(operation.as_strategy(mode) for mode in modes))


def negatable(method: str, path: str) -> bool:
    # Only a body or a path parameter can be made invalid: headers are strings whatever they hold.
    return "requestBody" in SPEC["paths"][path][method.lower()] or "{" in path


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_with_the_master_key(schema, gateway, method, path):
    operation = schema[path][method]
    modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * negatable(method, path)

    @fuzz_settings(MAX_EXAMPLES)
    @given(case=strategy(operation, *modes))
    def fuzz(case):
        # The master key is a setting, not a stored key: no DELETE /admin/keys the fuzzer sends can revoke it.
        case.call_and_validate(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                               checks=CHECKS, timeout=30)

    fuzz()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_without_the_key(schema, gateway, method, path):
    """The credentials are the generator's own: none at all, or a random bearer token or X-API-Key."""
    operation = schema[path][method]

    @fuzz_settings(KEYLESS_EXAMPLES)
    @given(case=strategy(operation, GenerationMode.POSITIVE))
    def fuzz(case):
        case.call_and_validate(base_url=gateway.url, checks=CHECKS, timeout=30)

    fuzz()


def test_answers_the_fuzzer_cannot_provoke_are_documented_too(schema, start_gateway, fake):
    """502, 503, 429 and a closed /metrics take a failing provider, a spent budget or settings the fuzzed
    gateway does not have."""
    gateway = start_gateway(providers=["groq"], RATE_LIMIT_MAX=2, FAILURE_THRESHOLD=1, METRICS_REQUIRE_KEY="true")
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    fake.enqueue("groq", Reply(status=500))
    expected = [
        (schema["/chat"]["POST"].Case(body=chat, media_type="application/json"), master, 502),  # groq failed
        # One failure was the threshold: groq is cooling down, and nothing else is configured.
        (schema["/v1/chat/completions"]["POST"].Case(body=chat, media_type="application/json"), master, 503),
        (schema["/chat"]["POST"].Case(body=chat, media_type="application/json"), master, 429),  # a budget of 2
        (schema["/metrics"]["GET"].Case(), {}, 401),
    ]
    for case, headers, status in expected:
        # Documented 5xx: conformance only.
        response = case.call_and_validate(base_url=gateway.url, headers=headers, checks=CONFORMANCE, timeout=30)
        assert response.status_code == status


TOOL_CALL_EVENT = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                       {"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}]}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def test_answers_that_only_call_tools_are_documented(schema, start_gateway, fake):
    """The fake providers answer with text, so the fuzzer never sees a tool call: `content: null`,
    `tool_calls` and finish reason `tool_calls`, whole and streamed."""
    gateway = start_gateway(providers=["groq"])
    fake.set_default("groq", Reply(chunks=[], raw_events=[json.dumps(TOOL_CALL_EVENT)], finish_reason="tool_calls"))
    body = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]}
    operation = schema["/v1/chat/completions"]["POST"]
    master = {"Authorization": f"Bearer {MASTER_KEY}"}

    whole = operation.Case(body=body, media_type="application/json").call_and_validate(
        base_url=gateway.url, headers=master, checks=CHECKS, timeout=30)
    choice = whole.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (None, "tool_calls")
    assert choice["message"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]

    streamed = operation.Case(body={**body, "stream": True, "stream_options": {"include_usage": True}},
                              media_type="application/json").call_and_validate(
        base_url=gateway.url, headers=master, checks=CHECKS, timeout=30)
    assert streamed.status_code == 200
    assert '"tool_calls":[{"index":0,"id":"call_1","type":"function"' in streamed.text
    assert '"finish_reason":"tool_calls"' in streamed.text


EMBEDDING_EXAMPLES = 30


@responses.activate
def test_embeddings_with_an_embedding_model(make_app, fake):
    """The fuzzed gateway has no embedding model (the fake providers serve no /embeddings), so there
    /v1/embeddings answers 400 or 404. Here the gateway runs in process, Groq has an embedding model
    answered by `responses` and Gemini none: the same checks, on answers with vectors too."""
    def embed(request):
        texts = json.loads(request.body)["input"]
        return 200, {}, json.dumps({"object": "list", "model": "embed-1", "usage": {"prompt_tokens": len(texts)},
                                    "data": [{"object": "embedding", "index": n, "embedding": [0.5, -1, 2e-3]}
                                             for n in range(len(texts))]})
    responses.add_callback(responses.POST, f"{fake.base_url('groq')}/embeddings", callback=embed)
    app = make_app(providers=("groq", "gemini"), rate_limit_enabled=False, model_check_interval=0)
    groq = app.extensions["router"].by_id("groq")
    groq.settings = replace(groq.settings, embedding_model="embed-1")
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)["/v1/embeddings"]["POST"]

    @fuzz_settings(EMBEDDING_EXAMPLES)
    @given(case=strategy(operation, GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    def fuzz(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {MASTER}"}, checks=CHECKS)

    fuzz()
    for encoding in ("float", "base64"):  # the two shapes of a vector, whatever the fuzzer drew
        case = operation.Case(body={"input": ["a", "b"], "encoding_format": encoding}, media_type="application/json")
        response = case.call_and_validate(headers={"Authorization": f"Bearer {MASTER}"}, checks=CHECKS)
        assert response.status_code == 200
