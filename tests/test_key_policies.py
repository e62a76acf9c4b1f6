"""Per-key policy through Flask's test client: fields set, shown, patched and cleared; scopes; expiry;
budgets (requests and tokens per day, streams counted, the day boundary) and the daily usage report."""
import csv
import io
import time

import pytest
import sqlalchemy as sa

from tests.conftest import MASTER
from tests.fakeprovider import Reply
from tests.gateway import free_port
from utils import budgets, counters
from utils.errors import StateUnavailable
from utils.keyfields import Policy
from utils.keys import KeyStore
from utils.state import LocalStore

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
MASTER_HEADERS = {"Authorization": f"Bearer {MASTER}"}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def new_key(client, **fields):
    response = client.post("/admin/keys", json={"name": "k", **fields}, headers=MASTER_HEADERS)
    assert response.status_code == 200, response.json
    assert set(response.json) == {"success", "apiKey", "id"}
    return response.json["apiKey"], response.json["id"]


def listed(client, key_id):
    return next(k for k in client.get("/admin/keys", headers=MASTER_HEADERS).json["keys"] if k["id"] == key_id)


@pytest.fixture
def app(make_app):
    return make_app(rate_limit_enabled=False)


@pytest.fixture
def client(app):
    return app.test_client()


def test_fields_are_stored_shown_patched_and_cleared(client):
    _, key_id = new_key(client, note="team a", expiresAt="2099-01-01T00:00:00Z", allowedProviders=["gemini"],
                          allowedModels=["gemini/gemini-3-flash-preview"],
                          limits={"requestsPerDay": 3, "rateLimit": {"max": 5, "windowMs": 1000}})
    shown = listed(client, key_id)
    assert shown["note"] == "team a" and shown["expiresAt"] == "2099-01-01T00:00:00.000Z"
    assert shown["expired"] is False and shown["allowedProviders"] == ["gemini"]
    assert shown["limits"] == {"requestsPerDay": 3, "rateLimit": {"max": 5, "windowMs": 1000}}
    assert shown["usage"]["today"] == {"requests": 0, "promptTokens": 0, "completionTokens": 0}
    patched = client.patch(f"/admin/keys/{key_id}", json={"limits": None, "allowedProviders": None, "note": "b"},
                           headers=MASTER_HEADERS)
    assert patched.status_code == 200
    shown = listed(client, key_id)
    assert shown["limits"] is None and shown["allowedProviders"] is None and shown["note"] == "b"
    assert shown["allowedModels"] == ["gemini/gemini-3-flash-preview"]  # left out: unchanged
    assert client.patch("/admin/keys/000000000000", json={"note": "x"}, headers=MASTER_HEADERS).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"expiresAt": "tomorrow"}, "expiresAt"), ({"allowedProviders": ["nope"]}, "allowedProviders"),
    ({"allowedModels": ["groq"]}, "allowedModels"), ({"limits": {"requestsPerDay": 0}}, "limits.requestsPerDay"),
    ({"limits": {"rateLimit": {"max": 1}}}, "limits.rateLimit"), ({"limits": {"bogus": 1}}, "limits"),
    ({"enabled": "yes"}, "enabled"), ({"note": 5}, "note"), ({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
    ({"requestsPerDay": 3}, "requestsPerDay"),
])
def test_a_wrong_field_is_a_400_naming_it(client, body, field):
    response = client.post("/admin/keys", json={"name": "k", **body}, headers=MASTER_HEADERS)
    assert response.status_code == 400
    assert field in response.json["error"]
    assert client.get("/admin/keys", headers=MASTER_HEADERS).json["keys"] == []  # nothing made by half


def test_a_disabled_or_expired_key_is_refused(client):
    key, key_id = new_key(client, expiresAt="2000-01-01T00:00:00Z")
    assert listed(client, key_id)["expired"] is True
    chat = client.post("/chat", json=CHAT, headers=bearer(key))
    assert (chat.status_code, chat.json["error"]) == (403, "API key expired")
    v1 = client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    assert (v1.status_code, v1.json["error"]["message"]) == (401, "API key expired")
    client.patch(f"/admin/keys/{key_id}", json={"expiresAt": None, "enabled": False}, headers=MASTER_HEADERS)
    assert client.post("/chat", json=CHAT, headers=bearer(key)).json["error"] == "Invalid or disabled API key"
    client.patch(f"/admin/keys/{key_id}", json={"enabled": True}, headers=MASTER_HEADERS)
    assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200


def test_a_key_scoped_to_gemini_reaches_only_gemini(client, fake):
    key, _ = new_key(client, allowedProviders=["gemini"])
    named = client.post("/chat", json={**CHAT, "provider": "groq"}, headers=bearer(key))
    assert (named.status_code, named.json["error"]) == (403, "This key may not use provider 'groq'")
    v1 = client.post("/v1/chat/completions", json={**CHAT, "model": "groq"}, headers=bearer(key))
    assert v1.status_code == 403 and "provider 'groq'" in v1.json["error"]["message"]
    for _ in range(3):
        answer = client.post("/chat", json=CHAT, headers=bearer(key))
        assert answer.headers["X-Provider"].startswith("Gemini")
    assert {r.provider for r in fake.chat_requests()} == {"gemini"}
    models = [m["id"] for m in client.get("/v1/models", headers=bearer(key)).json["data"]]
    assert models == ["auto", "gemini/gemini-3-flash-preview"]


def test_allowed_models_restrict_named_and_default_models(client):
    key, _ = new_key(client, allowedModels=["groq/llama-3.3-70b-versatile"])
    ok = client.post("/v1/chat/completions", json={**CHAT, "model": "groq/llama-3.3-70b-versatile"},
                     headers=bearer(key))
    assert ok.status_code == 200
    refused = client.post("/v1/chat/completions", json={**CHAT, "model": "groq"}, headers=bearer(key))
    assert refused.status_code == 403 and "model 'groq/" in refused.json["error"]["message"]
    auto = client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    assert auto.status_code == 403  # no provider's own model is allowed


def test_the_fourth_request_of_a_three_a_day_key_is_refused(client):
    key, _ = new_key(client, limits={"requestsPerDay": 3})
    for _ in range(3):
        assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200
    refused = client.post("/chat", json=CHAT, headers=bearer(key))
    assert refused.status_code == 429
    assert refused.json["error"] == "Daily request budget exhausted" and refused.json["status"] == 429
    assert refused.json["resetAt"].endswith("T00:00:00.000Z") and int(refused.headers["Retry-After"]) >= 1
    v1 = client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    assert v1.status_code == 429 and v1.json["error"]["message"] == "Daily request budget exhausted"


def test_a_token_budget_counts_streamed_usage_and_resets_the_next_day(client, fake, monkeypatch):
    clock = [time.time()]
    monkeypatch.setattr(budgets, "now", lambda: clock[0])
    key, _ = new_key(client, limits={"tokensPerDay": 40})
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    for _ in range(3):  # 15 tokens each (10 prompt + 5 completion, as the fake reports): 45 > 40 after the third
        response = client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert response.status_code == 200
        response.get_data()  # the stream ends: its usage is counted
    refused = client.post("/chat", json=CHAT, headers=bearer(key))
    assert (refused.status_code, refused.json["error"]) == (429, "Daily token budget exhausted")
    clock[0] += 86400
    assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200


def test_a_prompt_larger_than_the_tokens_left_is_refused_up_front(client, fake):
    key, _ = new_key(client, limits={"tokensPerMonth": 100})
    big = {"messages": [{"role": "user", "content": "x" * 800}]}  # about 200 tokens
    refused = client.post("/chat", json=big, headers=bearer(key))
    assert (refused.status_code, refused.json["error"]) == (429, "Monthly token budget exhausted")
    assert fake.chat_requests() == []


def test_usage_report_sums_what_the_provider_reported(app, client, fake):
    key, key_id = new_key(client)
    other, other_id = new_key(client)
    fake.enqueue("groq", Reply(status=500))  # one failed call, then gemini answers
    for _ in range(2):
        client.post("/chat", json=CHAT, headers=bearer(key)).get_data()
    client.post("/chat", json=CHAT, headers=bearer(other)).get_data()
    app.extensions["keys"].flush()
    rows = client.get("/admin/usage", headers=MASTER_HEADERS).json["usage"]
    mine = [r for r in rows if r["keyId"] == key_id]
    assert sum(r["requests"] for r in mine) == 3 and sum(r["errors"] for r in mine) == 1
    assert sum(r["promptTokens"] for r in mine) == 20 and sum(r["completionTokens"] for r in mine) == 10
    assert {r["keyName"] for r in rows} == {"k"}
    assert listed(client, key_id)["usage"]["today"] == {"requests": 2, "promptTokens": 20, "completionTokens": 10}
    only = client.get(f"/admin/usage?key={other_id}&provider=gemini", headers=MASTER_HEADERS).json["usage"]
    assert [(r["keyId"], r["provider"], r["requests"]) for r in only] == [(other_id, "gemini", 1)]
    assert client.get(f"/admin/usage?key={other_id}&provider=groq", headers=MASTER_HEADERS).json["usage"] == []
    text = client.get("/admin/usage", headers={**MASTER_HEADERS, "Accept": "text/csv"})
    assert text.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(text.get_data(as_text=True))))
    assert list(table[0]) == ["date", "keyId", "keyName", "provider", "requests", "promptTokens",
                              "completionTokens", "errors"] and len(table) == len(rows)
    assert client.get("/admin/usage?from=2026-13-01", headers=MASTER_HEADERS).status_code == 400
    assert client.get("/admin/usage?from=2000-01-01&to=2000-01-02", headers=MASTER_HEADERS).json["usage"] == []


def test_a_request_that_failed_over_counts_once(client, fake):
    key, key_id = new_key(client, limits={"requestsPerDay": 2})
    fake.enqueue("groq", Reply(status=500))  # groq fails, gemini answers: one client request
    assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200
    assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200
    assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 429
    assert listed(client, key_id)["usage"]["today"]["requests"] == 2


def test_budgets_outlive_a_restart_through_the_daily_usage_table(make_app):
    first = make_app(rate_limit_enabled=False)
    client = first.test_client()
    key, _ = new_key(client, limits={"requestsPerDay": 2, "tokensPerMonth": 1000})
    for _ in range(2):
        assert client.post("/chat", json=CHAT, headers=bearer(key)).status_code == 200
    first.extensions["keys"].close()  # a clean stop writes what is pending
    again = make_app(rate_limit_enabled=False).test_client()  # a new process: empty per-process counters
    refused = again.post("/chat", json=CHAT, headers=bearer(key))
    assert (refused.status_code, refused.json["error"]) == (429, "Daily request budget exhausted")


def test_a_keys_own_rate_limit_replaces_the_global_one(make_app):
    client = make_app(rate_limit_max=100).test_client()
    key, _ = new_key(client, limits={"rateLimit": {"max": 2, "windowMs": 60000}})
    answers = [client.post("/chat", json=CHAT, headers=bearer(key)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert client.post("/chat", json=CHAT, headers=MASTER_HEADERS).headers["X-RateLimit-Limit"] == "100"


def test_the_daily_table_keeps_only_the_retention_days(app):
    from utils import usage
    store = app.extensions["keys"]
    now = time.time()
    with store.engine.begin() as db:
        usage.write(db, {(usage.day_of(now - 10 * 86400), "a" * 64, "groq"): usage.Daily(1, 2, 3, 0),
                         (usage.day_of(now - 2 * 86400), "a" * 64, "groq"): usage.Daily(4, 5, 6, 1)})
        assert usage.prune(db, 5, now) == 1
    rows = store.usage_report("2000-01-01", "2999-12-31", None, None)
    assert [(r["requests"], r["errors"], r["keyName"]) for r in rows] == [(4, 1, None)]


def test_a_slot_a_killed_worker_never_released_stops_counting_after_the_longest_answer():
    store = LocalStore()
    assert counters.claim(store, "k:running", "a", now=1000.0, hold=700.0, limit=2)
    assert counters.claim(store, "k:running", "b", now=1001.0, hold=700.0, limit=2)
    assert not counters.claim(store, "k:running", "c", now=1002.0, hold=700.0, limit=2)
    counters.release(store, "k:running", "b")
    assert counters.claim(store, "k:running", "c", now=1003.0, hold=700.0, limit=2)
    # "a" was never released (its worker died): once older than the longest answer it no longer counts.
    assert not counters.claim(store, "k:running", "d", now=1699.0, hold=700.0, limit=2)
    assert counters.claim(store, "k:running", "d", now=1701.0, hold=700.0, limit=2)


def test_a_budget_rebuilt_while_the_key_database_is_away_is_a_503_not_a_500(tmp_path):
    keys = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    keys.engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone")  # refused at once
    policy = Policy(key_hash="0" * 64, limits={"requestsPerDay": 3})
    with pytest.raises(StateUnavailable):
        budgets.admit(policy, LocalStore(), keys, estimated_tokens=0, hold=60)
