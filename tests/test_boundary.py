"""The trust boundary in process: what a client sends and what a provider answers is validated and
bounded where it enters (issue 10). The same findings run end to end against a hostile fake in
tests/test_hostile.py."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import responses

from app import create_app
from providers.errors import public_message
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from tests.gateway import PROVIDER_IDS
from utils.chat import ChatRequest, Message
from utils.errors import ProviderError
from utils.keys import KeyStore
from utils.openai_request import parse_completion_request
from utils.settings import ProviderSettings, Settings, SettingsError, load_settings
from utils.upstream import Upstream
from utils.validation import MODEL_ID

GROQ_KEY = "gsk_boundary_test_key_0123456789"
GROQ_URL = "https://api.groq.test/openai/v1"
GEMINI_URL = "https://generativelanguage.test/v1beta"
HI = (Message("user", "hi"),)
DONE = b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def groq(**upstream) -> GroqProvider:
    return GroqProvider(ProviderSettings("groq", GROQ_KEY, GROQ_URL, "moonshotai/kimi-k2-instruct-0905"),
                        Upstream(1, 1, 1, **upstream))


def gemini() -> GeminiProvider:
    return GeminiProvider(ProviderSettings("gemini", "AIza-boundary-0123456789", GEMINI_URL, "gemini-3-flash-preview"),
                          Upstream(1, 1, 1))


def failure(provider, request=ChatRequest(HI)) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        list(provider.stream(request))
    return caught.value


@pytest.fixture
def client(tmp_path):
    providers = tuple(replace(p, api_key=GROQ_KEY, base_url=GROQ_URL) if p.id == "groq" else p
                      for p in Settings().providers)
    settings = Settings(master_api_key="master", database_url=f"sqlite:///{tmp_path / 'keys.db'}",
                        model_check_interval=0, rate_limit_enabled=False, providers=providers)
    return create_app(settings).test_client()


AUTH = {"Authorization": "Bearer master"}


@pytest.mark.parametrize("model", ["groq/llama-3.3-70b-versatile", "deepseek/deepseek-r1-0528:free",
                                   "meta-llama/Llama-3.1-8B-Instruct:cerebras", "auto", "gemini-2.5-flash"])
def test_real_model_ids_are_accepted(model):
    assert MODEL_ID.fullmatch(model)


@pytest.mark.parametrize("model", ["gemini/../../../admin/secret?x=", "..", "a/./b", "a b", "x#y", "", "a" * 201,
                                   "groq/mod%2Fel", "é"])
def test_model_ids_that_could_reach_another_path_are_refused(model):
    assert not MODEL_ID.fullmatch(model)


def test_a_path_traversing_model_is_a_400_naming_the_model(client):
    response = client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "gemini/../../../admin/secret?x=", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "model"


@responses.activate(assert_all_requests_are_fired=True)
def test_gemini_gets_the_model_id_as_one_escaped_path_segment():
    responses.post(f"{GEMINI_URL}/models/tuned%2Fa%3Ab:streamGenerateContent?alt=sse",
                   body=b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}\r\n\r\n')
    assert [c.text for c in gemini().stream(ChatRequest(HI, model="tuned/a:b"))] == ["hi"]


@pytest.mark.parametrize("path, body, param", [
    ("/chat", '{"messages":[{"role":"user","content":"\\ud800"}]}', "messages[0].content"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"ok \\udfff"}]}', "messages[0].content"),
    ("/admin/keys", '{"name":"\\ud83d"}', "name"),
])
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_naming_where(client, path, body, param):
    response = client.post(path, headers={**AUTH, "Content-Type": "application/json"}, data=body)
    assert response.status_code == 400
    message = response.json["error"]["message"] if path.startswith("/v1") else response.json["error"]
    assert param in message


@pytest.mark.parametrize("name", ["a\x00b", "tab\tname", "bell\x07"])
def test_key_names_with_control_characters_are_refused(client, name):
    response = client.post("/admin/keys", headers=AUTH, json={"name": name})
    assert response.status_code == 400


def test_a_new_key_is_never_cached_and_every_answer_says_nosniff(client):
    created = client.post("/admin/keys", headers=AUTH, json={"name": "alice"})
    assert created.headers["Cache-Control"] == "no-store"
    for response in (created, client.get("/health"), client.get("/nope"), client.post("/chat", json={})):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_revoking_by_id_needs_the_whole_id(client):
    client.post("/admin/keys", headers=AUTH, json={"name": "alice"})
    [key] = client.get("/admin/keys", headers=AUTH).json["keys"]
    for prefix in (key["id"][:1], key["id"][:11]):
        assert client.delete("/admin/keys", headers=AUTH, json={"id": prefix}).status_code == 404
    assert client.delete("/admin/keys", headers=AUTH, json={"id": key["id"]}).status_code == 200


def test_only_offered_models_can_be_retrieved(client):
    assert client.get("/v1/models/auto", headers=AUTH).status_code == 200
    assert client.get("/v1/models/groq/moonshotai/kimi-k2-instruct-0905", headers=AUTH).status_code == 200
    response = client.get("/v1/models/anything", headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "model_not_found"


def test_metrics_can_require_the_master_key(tmp_path):
    app = create_app(Settings(master_api_key="master", metrics_require_key=True, model_check_interval=0,
                              database_url=f"sqlite:///{tmp_path / 'keys.db'}"))
    client = app.test_client()
    for path in ("/metrics", "/metrics/prometheus"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 403
        assert client.get(path, headers={"X-API-Key": "master"}).status_code == 200
    assert client.get("/health").json["status"] == "down"  # answered without a key (down: no provider here)


def test_cors_wildcards_match_whole_labels_and_are_anchored():
    [pattern] = load_settings({"CORS_ORIGINS": "https://*.example.com"}).cors_patterns
    assert pattern.match("https://app.example.com") and pattern.match("https://a.b.example.com")
    for origin in ("https://xexample.com.evil.net", "https://example.com", "https://evil.net/.example.com",
                   "http://app.example.com"):
        assert not pattern.match(origin)


@pytest.mark.parametrize("value", ["https://example.com/path", "example.com", "https://*", "https://a.*.com"])
def test_a_cors_origin_that_is_not_an_origin_stops_start_up(value):
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load_settings({"CORS_ORIGINS": value})


def test_a_provider_message_loses_its_key_markup_and_length():
    message = public_message(f"<html><body>bad key {GROQ_KEY} at /srv/app.py; Bearer abc.def</body></html>"
                             + "x" * 500, GROQ_KEY)
    assert GROQ_KEY not in message and "<" not in message and "abc.def" not in message
    assert len(message) <= 200


@responses.activate
def test_a_400_echoing_the_provider_key_reaches_the_client_without_it():
    responses.post(f"{GROQ_URL}/chat/completions", status=400,
                   json={"error": {"message": f"<b>Invalid</b> request for key {GROQ_KEY}", "code": "bad"}})
    error = failure(groq())
    assert not error.retryable and error.status == 400
    assert GROQ_KEY not in error.message and "<b>" not in error.message


@responses.activate
def test_a_model_the_client_chose_that_is_missing_is_the_clients_404():
    responses.post(f"{GROQ_URL}/chat/completions", status=404, json={"error": {
        "message": "The model `nope` does not exist", "type": "invalid_request_error", "code": "model_not_found"}})
    error = failure(groq(), ChatRequest(HI, model="nope"))
    assert (error.status, error.code, error.param, error.retryable) == (404, "model_not_found", "model", False)
    assert not error.model_gone


@responses.activate
def test_the_configured_model_missing_is_still_the_operators_problem():
    responses.post(f"{GROQ_URL}/chat/completions", status=404, json={"error": {
        "message": "The model does not exist", "code": "model_not_found"}})
    error = failure(groq())
    assert error.model_gone and error.retryable


@responses.activate(assert_all_requests_are_fired=True)
def test_a_redirect_is_the_providers_failure_and_is_never_followed():
    responses.post(f"{GROQ_URL}/chat/completions", status=307, headers={"Location": "https://evil.test/steal"})
    error = failure(groq())
    assert error.retryable and error.upstream_status == 307
    assert len(responses.calls) == 1


@pytest.mark.parametrize("body, content_type", [
    (b"<html><body>Welcome to nginx</body></html>", "text/html"),
    (b"", "text/event-stream"),
    (b'{"choices": [{"message": {"content": "not a stream"}}]}', "application/json"),
])
@responses.activate
def test_a_200_that_is_not_an_event_stream_is_malformed(body, content_type):
    responses.post(f"{GROQ_URL}/chat/completions", body=body, content_type=content_type)
    assert failure(groq()).kind == "malformed"


@responses.activate
def test_an_answer_past_its_byte_bound_is_the_providers_failure():
    event = b'data: {"choices":[{"delta":{"content":"' + b"a" * 1000 + b'"}}]}\n\n'
    responses.post(f"{GROQ_URL}/chat/completions", body=event * 100, content_type="text/event-stream")
    assert failure(groq(max_bytes=20_000)).kind == "too_large"


@responses.activate
def test_an_error_body_is_read_only_as_far_as_its_bound():
    huge = b'{"error": {"message": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    responses.post(f"{GROQ_URL}/chat/completions", status=500, body=huge)
    error = failure(groq())
    assert error.retryable and len(error.message) <= 200


@responses.activate
def test_a_shape_no_parser_foresaw_is_malformed_not_a_crash(monkeypatch):
    responses.post(f"{GROQ_URL}/chat/completions", body=DONE, content_type="text/event-stream")
    provider = groq()
    monkeypatch.setattr(provider, "parse_event", lambda event: {}["missing"])
    assert failure(provider).kind == "malformed"


def test_the_usage_flusher_outlives_a_write_that_fails(tmp_path, monkeypatch):
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    key = store.create("alice")
    calls = []

    def flaky_flush():
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        store._stop.set()

    monkeypatch.setattr(store, "flush", flaky_flush)
    monkeypatch.setattr("utils.keys.FLUSH_SECONDS", 0.01)
    store._flush_forever()
    assert len(calls) == 2
    assert json.dumps(store.list()) and key


def test_the_largest_valid_request_fits_even_with_every_character_escaped(client):
    body = json.dumps({"provider": "nope", "messages": [{"role": "user", "content": "\U0001F600" * 10_000}] * 50})
    assert len(body) > 6_000_000  # json.dumps writes each emoji as a 12-byte surrogate-pair escape
    response = client.post("/chat", data=body, headers={**AUTH, "Content-Type": "application/json"})
    # Read, parsed and validated whole: only the unknown provider named on purpose is refused.
    assert (response.status_code, response.json["error"]) == (
        400, "Unknown provider 'nope'. Valid providers: " + ", ".join(PROVIDER_IDS))


@pytest.mark.parametrize("field, value", [("max_tokens", 5.0), ("max_completion_tokens", 1e3), ("seed", 7.0)])
def test_whole_numbers_written_as_floats_are_integers(field, value):
    parsed = parse_completion_request({"messages": [{"role": "user", "content": "hi"}], field: value})
    option = "max_tokens" if field == "max_completion_tokens" else field
    assert parsed.chat.options[option] == int(value) and isinstance(parsed.chat.options[option], int)


def test_a_405_names_the_methods_the_path_takes(client):
    response = client.put("/chat", headers=AUTH)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
