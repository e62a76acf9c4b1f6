"""The HTTP contract through Flask's test client: auth, validation, limits, admin, error bodies."""
import pytest

from tests.conftest import MASTER, PUBLIC
from tests.fakeprovider import Reply
from tests.gateway import PROVIDER_IDS

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def auth(key=MASTER):
    return {"Authorization": f"Bearer {key}"}


def test_chat_without_a_key_gets_the_exact_401(client):
    response = client.post("/chat", json=CHAT)
    assert response.status_code == 401
    assert response.json == {"error": "API key required. Use Authorization: Bearer YOUR_KEY or X-API-Key header",
                             "status": 401}


def test_chat_with_an_unknown_key_gets_the_exact_403(client):
    response = client.post("/chat", json=CHAT, headers=auth("nope"))
    assert response.status_code == 403
    assert response.json == {"error": "Invalid or disabled API key", "status": 403}


@pytest.mark.parametrize("headers", [auth(MASTER), auth(PUBLIC), {"X-API-Key": PUBLIC},
                                     {"Authorization": f"bearer {MASTER}"}])
def test_master_and_public_keys_are_accepted_either_way(client, headers):
    response = client.post("/chat", json=CHAT, headers=headers)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Hello from groq"
    assert response.headers["X-Provider"] == "Groq"


def test_auth_off_lets_anyone_chat(make_client):
    assert make_client(require_auth=False).post("/chat", json=CHAT).status_code == 200


def test_created_key_works_until_revoked_and_is_listed_masked(client):
    key = client.post("/admin/keys", json={"name": "alice"}, headers=auth()).json["apiKey"]
    assert key.startswith("sk_")
    assert client.post("/chat", json=CHAT, headers=auth(key)).status_code == 200
    listed = client.get("/admin/keys", headers=auth()).json
    assert listed["success"] is True
    [entry] = listed["keys"]
    assert entry["name"] == "alice" and entry["enabled"] is True and entry["requestCount"] == 1
    assert entry["lastUsed"] and entry["createdAt"]
    assert key not in str(listed) and entry["key"].startswith("sk_") and "..." in entry["key"]
    assert client.delete("/admin/keys", json={"key": key}, headers=auth()).json == {"success": True}
    assert client.post("/chat", json=CHAT, headers=auth(key)).status_code == 403
    assert client.delete("/admin/keys", json={"key": key}, headers=auth()).status_code == 404


def test_key_can_be_revoked_by_its_listed_id(client):
    key = client.post("/admin/keys", json={"name": "bob"}, headers=auth()).json["apiKey"]
    key_id = client.get("/admin/keys", headers=auth()).json["keys"][0]["id"]
    assert client.delete("/admin/keys", json={"id": key_id}, headers=auth()).status_code == 200
    assert client.post("/chat", json=CHAT, headers=auth(key)).status_code == 403


@pytest.mark.parametrize("headers,status", [({}, 401), (auth(PUBLIC), 403), (auth("wrong"), 403)])
def test_admin_needs_the_master_key(client, headers, status):
    for method in ("get", "post", "delete"):
        assert getattr(client, method)("/admin/keys", json={"name": "x"}, headers=headers).status_code == status


def test_admin_is_closed_without_a_master_key(make_client):
    client = make_client(master_api_key=None)
    assert client.get("/admin/keys", headers=auth(MASTER)).status_code == 403


@pytest.mark.parametrize("body,message", [
    ({}, "messages must be an array"),
    ({"messages": "hi"}, "messages must be an array"),
    ({"messages": []}, "messages must not be empty"),
    ({"messages": [{"role": "user", "content": "x"}] * 51}, "messages must contain at most 50 items"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role must be one of user, assistant, system"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string"),
    ({"messages": [{"role": "user", "content": "x" * 10_001}]}, "messages[0].content must be at most 10000 characters"),
    ({"messages": ["hi"]}, "messages[0] must be an object with role and content"),
])
def test_invalid_bodies_get_a_specific_400(client, body, message):
    response = client.post("/chat", json=body, headers=auth())
    assert response.status_code == 400
    assert response.json == {"error": message, "status": 400}


def test_bodies_that_are_not_json_get_clear_errors(client):
    broken = client.post("/chat", data="{nope", headers={**auth(), "Content-Type": "application/json"})
    assert (broken.status_code, broken.json["error"]) == (400, "Request body must be valid JSON")
    array = client.post("/chat", json=[1], headers=auth())
    assert (array.status_code, array.json["error"]) == (400, "Request body must be a JSON object")
    form = client.post("/chat", data="messages=hi", headers=auth())
    assert (form.status_code, form.json["status"]) == (415, 415)
    huge = client.post("/chat", data=b"x" * (9 * 1024 * 1024), headers={**auth(), "Content-Type": "application/json"})
    assert (huge.status_code, huge.json) == (413, {"error": "Request body too large", "status": 413})


def test_unknown_routes_and_methods_get_json(client):
    assert client.get("/nope").json == {"error": "Not found", "status": 404}
    assert client.get("/chat", headers=auth()).json == {"error": "Method not allowed", "status": 405}


def test_an_unknown_v1_route_is_an_openai_404_naming_the_api_the_gateway_offers(client):
    # The Vercel AI SDK's `openai(model)` posts to OpenAI's Responses API: the answer says what to use instead.
    response = client.post("/v1/responses", json={"model": "auto", "input": "hi"}, headers=auth())
    assert response.status_code == 404
    error = response.json["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "not_found")
    assert "POST /v1/chat/completions" in error["message"] and "openai.chat(model)" in error["message"]


def test_rate_limit_is_per_key_with_headers_on_every_limited_response(make_client):
    client = make_client(rate_limit_max=2)
    for remaining in ("1", "0"):
        response = client.post("/chat", json=CHAT, headers=auth())
        assert response.headers["X-RateLimit-Remaining"] == remaining
        assert response.headers["X-RateLimit-Reset"].endswith("Z")
    limited = client.post("/chat", json=CHAT, headers=auth())
    assert limited.status_code == 429
    assert set(limited.json) == {"error", "status", "resetAt"}
    assert limited.headers["Retry-After"].isdigit()
    # Another caller has its own budget.
    assert client.post("/chat", json=CHAT, headers=auth(PUBLIC)).status_code == 200


def test_rate_limit_can_be_turned_off(make_client):
    client = make_client(rate_limit_max=1, rate_limit_enabled=False)
    assert [client.post("/chat", json=CHAT, headers=auth()).status_code for _ in range(3)] == [200] * 3


def test_health_lists_configured_services_and_every_provider_state(client):
    body = client.get("/health").json
    assert body["status"] == "ok"
    assert body["services"] == ["Groq", "Gemini 3 Flash"]
    assert body["authEnabled"] is True and body["rateLimitEnabled"] is True
    states = {p["id"]: p["state"] for p in body["providers"]}
    assert states == {pid: "ok" if pid in ("groq", "gemini") else "not_configured" for pid in PROVIDER_IDS}


def test_no_configured_provider_answers_503(make_client):
    client = make_client(providers=())
    response = client.post("/chat", json=CHAT, headers=auth())
    assert response.status_code == 503 and response.json["status"] == 503


def test_cors_exposes_the_gateway_headers(client):
    response = client.options("/chat", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")
    exposed = client.post("/chat", json=CHAT, headers={**auth(), "Origin": "https://app.example"})
    assert "X-Provider" in exposed.headers["Access-Control-Expose-Headers"]
    assert "X-RateLimit-Remaining" in exposed.headers["Access-Control-Expose-Headers"]


def test_provider_secrets_never_reach_the_client(client, fake):
    fake.enqueue("groq", Reply(status=401))
    fake.enqueue("gemini", Reply(status=500))
    response = client.post("/chat", json=CHAT, headers=auth())
    assert response.status_code == 502
    assert "secret" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions", "/admin/keys"])
def test_absurdly_nested_json_is_a_400_not_a_500(client, path):
    body = '{"messages":' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post(path, data=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("depth", [400, 900])
def test_a_tool_schema_nested_deeper_than_the_bound_is_a_400_naming_it(client, depth):
    """Deep enough to parse, too deep to encode again further down the stack for a provider (was a 500)."""
    schema = '{"type":"object","properties":{"x":' * depth + '{"type":"object"}' + "}}" * depth  # too deep for json
    body = ('{"model":"groq","messages":[{"role":"user","content":"hi"}],'
            '"tools":[{"type":"function","function":{"name":"f","parameters":' + schema + "}}]}")
    response = client.post("/v1/chat/completions", data=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested too deeply (more than 100 levels)" in response.json["error"]["message"]


def test_a_tool_schema_nested_a_realistic_depth_is_carried(client, fake):
    schema = {"type": "string"}
    for _ in range(30):
        schema = {"type": "object", "properties": {"x": schema}}
    body = {"model": "groq", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
    response = client.post("/v1/chat/completions", json=body, headers=auth())
    assert response.status_code == 200
    assert fake.chat_requests("groq")[-1].json["tools"][0]["function"]["parameters"] == schema


def test_a_null_body_is_valid_json_but_not_an_object(client):
    response = client.post("/chat", data="null", headers={**auth(), "Content-Type": "application/json"})
    assert response.json == {"error": "Request body must be a JSON object", "status": 400}


def test_prometheus_exposition_has_one_well_formed_content_type(client):
    response = client.get("/metrics/prometheus")
    assert response.headers["Content-Type"].count("charset") == 1
    assert response.headers["Content-Type"].startswith("text/plain; version=")
