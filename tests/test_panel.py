"""The admin panel (/admin/) through Flask's test client: signing in and out, the session cookie, form tokens,
wrong master keys throttled, security headers, escaping, and each page showing what the admin API answers.
tests/test_panel_browser.py drives the same pages in a real browser against gunicorn."""
import base64
import json
import logging
import re
import secrets
import stat

import pytest
import requests
from werkzeug.http import parse_cookie

from tests.conftest import MASTER
from tests.databases import REDIS_URL, redis_answers
from tests.gateway import MASTER_KEY, wait_until
from utils import panel_auth, secretfile
from utils.panel_auth import secret_path
from utils.settings import SettingsError, load_settings

CHAT = {"messages": [{"role": "user", "content": "the secret words"}]}
MASTER_HEADERS = {"Authorization": f"Bearer {MASTER}"}
XSS = "<img src=x onerror=alert(1)>"


def token(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def sign_in(client, key=MASTER):
    return client.post("/admin/panel/sign-in", data={"csrf_token": token(client.get("/admin/")), "master_key": key})


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def admin(app):
    """A test client signed in to the panel."""
    client = app.test_client()
    assert sign_in(client).status_code == 303
    return client


def create(admin, name="alice"):
    """A key made through the panel: the page that shows it, the key, and its listed id."""
    page = admin.post("/admin/panel/keys", data={"csrf_token": token(admin.get("/admin/panel/keys")), "name": name},
                      follow_redirects=True)
    key = re.search(r'id="new-key"[^>]*>(sk_[0-9a-f]+)</textarea>', text(page)).group(1)
    key_id = admin.application.extensions["keys"].list()[-1]["id"]
    return page, key, key_id


def chat(client, key):
    response = client.post("/chat", json=CHAT, headers={"Authorization": f"Bearer {key}"})
    response.get_data()
    response.close()  # the request log (and the panel's list of requests) is written when the answer closes
    return response


def test_admin_shows_the_sign_in_form_until_signed_in_and_every_other_page_sends_there(app):
    client = app.test_client()
    page = client.get("/admin/")
    assert page.status_code == 200
    assert '<label for="master_key">Master key</label>' in text(page)
    assert '<button type="submit">Sign in</button>' in text(page)
    for path in ("/admin/panel/keys", "/admin/panel/usage", "/admin/panel/requests", "/admin/panel/usage.csv"):
        response = client.get(path)
        assert (response.status_code, response.headers["Location"]) == (303, "/admin/"), path
    live = client.get("/admin/panel/live")
    assert (live.status_code, live.json) == (401, {"error": "Sign in to the admin panel first", "status": 401})


def test_signing_in_opens_the_panel_with_a_cookie_that_holds_no_key(app):
    client = app.test_client()
    response = sign_in(client)
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    value = parse_cookie(cookie)["gateway_admin"].split(".")[0]
    assert MASTER not in base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    overview = text(client.get("/admin/"))
    for label in ("Overview", "Keys", "Usage", "Requests"):
        assert f">{label}</a>" in overview
    assert ">Sign out</button>" in overview


def test_over_https_the_session_cookie_is_secure(make_app):
    app = make_app(trusted_proxies=1)
    page = app.test_client().get("/admin/", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["Set-Cookie"]
    assert "Secure" in app.test_client().get("/admin/", base_url="https://localhost").headers["Set-Cookie"]


def test_wrong_master_keys_are_refused_and_logged_without_the_key_and_the_fifth_is_throttled(app, caplog):
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        for attempt in range(4):
            refused = sign_in(client, key=f"guess-{attempt}")
            assert refused.status_code == 401
            assert "Wrong master key." in text(refused)
        throttled = sign_in(client, key=MASTER)  # even the right key: it is not checked
    assert throttled.status_code == 429
    assert "Too many wrong master keys from your address: try again in" in text(throttled)
    assert client.get("/admin/panel/keys").status_code == 303
    failures = [r for r in caplog.records if r.getMessage() == "admin panel sign-in failed: wrong master key"]
    assert len(failures) == 4 and all(r.client == "127.0.0.1" for r in failures)
    assert "guess-" not in caplog.text and MASTER not in caplog.text
    other = app.test_client()  # another address is not held back by this one's guesses
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert sign_in(other).status_code == 303


def test_a_try_that_arrives_while_another_is_checked_is_counted_before_its_key_is(app, monkeypatch):
    first, second = app.test_client(), app.test_client()
    for attempt in range(3):
        assert sign_in(first, key=f"guess-{attempt}").status_code == 401
    fifth = {"csrf_token": token(second.get("/admin/")), "master_key": "guess-5"}
    answers, check = [], panel_auth.right_master_key

    def slow_check(given):  # the fifth try comes in while the fourth is being checked (Redis yields there)
        if given == "guess-4":
            answers.append(second.post("/admin/panel/sign-in", data=fifth).status_code)
        return check(given)
    monkeypatch.setattr(panel_auth, "right_master_key", slow_check)
    assert sign_in(first, key="guess-4").status_code == 401
    assert answers == [429]


def test_the_right_master_key_starts_the_count_of_tries_again(app):
    client = app.test_client()
    for attempt in range(3):
        assert sign_in(client, key=f"guess-{attempt}").status_code == 401
    assert sign_in(client).status_code == 303
    assert [sign_in(client, key=f"again-{n}").status_code for n in range(5)] == [401, 401, 401, 401, 429]


def test_a_form_without_its_token_or_with_another_is_refused(admin, app):
    for data in ({"name": "sneaky"}, {"name": "sneaky", "csrf_token": "forged"}):
        refused = admin.post("/admin/panel/keys", data=data)
        assert refused.status_code == 403
        assert "security token is missing or out of date" in text(refused)
    assert app.extensions["keys"].list() == []
    assert app.test_client().post("/admin/panel/sign-in", data={"master_key": MASTER}).status_code == 403


def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(admin, app):
    copy = app.test_client()
    copy.set_cookie("gateway_admin", admin.get_cookie("gateway_admin", path="/admin").value, path="/admin")
    assert copy.get("/admin/panel/keys").status_code == 200
    out = admin.post("/admin/panel/sign-out", data={"csrf_token": token(admin.get("/admin/"))})
    assert out.status_code == 303
    assert admin.get("/admin/panel/keys").status_code == 303
    assert copy.get("/admin/panel/keys").status_code == 303


def test_a_new_master_key_ends_every_session(admin, app):
    app.extensions["settings"] = type(app.extensions["settings"])(
        **{**app.extensions["settings"].__dict__, "master_api_key": "another-master-key"})
    assert admin.get("/admin/panel/keys").status_code == 303


def test_every_page_carries_a_strict_content_security_policy_and_refuses_frames(admin):
    _, _, key_id = create(admin)
    for path in ("/admin/", "/admin/panel/keys", f"/admin/panel/keys/{key_id}/edit", f"/admin/panel/keys/{key_id}/revoke",
                 "/admin/panel/usage", "/admin/panel/requests", "/admin/panel/live"):
        response = admin.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in text(response) and " style=" not in text(response) and "onclick" not in text(response)


def test_the_panels_own_files_are_small(admin):
    sizes = {name: len(admin.get(f"/admin/panel/static/{name}").data) for name in ("panel.css", "panel.js", "icon.svg")}
    assert all(sizes.values()) and sum(sizes.values()) < 200_000


def test_a_key_named_like_markup_is_shown_as_text_on_every_page(admin):
    page, key, key_id = create(admin, XSS)
    admin.patch(f"/admin/keys/{key_id}", json={"note": XSS}, headers=MASTER_HEADERS)
    chat(admin, key)
    admin.application.extensions["keys"].flush()
    for path in ("/admin/panel/keys", f"/admin/panel/keys/{key_id}/edit", f"/admin/panel/keys/{key_id}/revoke",
                 "/admin/panel/usage", "/admin/panel/requests"):
        shown = text(admin.get(path))
        assert "&lt;img src=x onerror=alert(1)&gt;" in shown, path
        assert "<img" not in shown, path
    assert "<img" not in text(page)


def test_a_new_key_is_shown_once_with_a_copy_button_then_only_masked(admin):
    page, key, _ = create(admin)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert '<label for="new-key">New API key</label>' in text(page)
    assert ">Copy</button>" in text(page) and "only time it is shown" in text(page)
    listed = text(admin.get("/admin/panel/keys"))
    assert key not in listed and f"{key[:7]}...{key[-4:]}" in listed
    assert chat(admin, key).status_code == 200


def test_creating_a_key_redirects_so_a_reload_neither_posts_again_nor_shows_it_again(admin, app):
    made = admin.post("/admin/panel/keys", data={"csrf_token": token(admin.get("/admin/panel/keys")), "name": "al"})
    assert (made.status_code, made.headers["Location"]) == (303, "/admin/panel/keys")
    # Until that page shows it, the browser's cookie holds the key only masked (the pad is in the state store).
    held = json.dumps(app.session_interface.get_signing_serializer(app).loads(
        admin.get_cookie("gateway_admin", path="/admin").value))
    shown = admin.get("/admin/panel/keys")
    key = re.search(r'id="new-key"[^>]*>(sk_[0-9a-f]+)</textarea>', text(shown)).group(1)
    assert "new_key" in held and key not in held and key.encode().hex() not in held
    assert "Key created for “al”" in text(shown)
    assert [k["name"] for k in app.extensions["keys"].list()] == ["al"]
    again = text(admin.get("/admin/panel/keys"))
    assert key not in again and 'id="new-key"' not in again


def test_a_name_the_api_refuses_is_refused_here_with_its_words(admin, app):
    refused = admin.post("/admin/panel/keys", data={"csrf_token": token(admin.get("/admin/panel/keys")), "name": " "})
    assert refused.status_code == 400
    assert "Name: name must be a non-empty string" in text(refused)
    assert app.extensions["keys"].list() == []


def test_the_edit_form_saves_through_the_api_and_its_checks(admin):
    _, key, key_id = create(admin)
    form = {"csrf_token": token(admin.get(f"/admin/panel/keys/{key_id}/edit")), "name": "alice",
            "requests_per_day": "1", "tokens_per_day": "", "tokens_per_month": "900", "max_concurrent": "2",
            "expires": "2099-01-01T00:00:00Z", "providers": ["groq"], "note": "team a"}
    saved = admin.post(f"/admin/panel/keys/{key_id}/edit", data=form)
    assert (saved.status_code, saved.headers["Location"]) == (303, "/admin/panel/keys")
    shown = admin.get("/admin/keys", headers=MASTER_HEADERS).json["keys"][0]
    assert shown["limits"] == {"requestsPerDay": 1, "tokensPerMonth": 900, "maxConcurrent": 2}
    assert (shown["expiresAt"], shown["allowedProviders"], shown["note"]) == ("2099-01-01T00:00:00.000Z", ["groq"],
                                                                             "team a")
    assert chat(admin, key).status_code == 200
    beyond = chat(admin, key)
    assert (beyond.status_code, beyond.json["error"]) == (429, "Daily request budget exhausted")
    for field, value, message in (("requests_per_day", "ten", "Requests per day must be a whole number"),
                                  ("max_concurrent", "0", "Max concurrent: limits.maxConcurrent must be a positive"),
                                  ("expires", "soon", "Expires: expiresAt must be an ISO 8601 date-time")):
        refused = admin.post(f"/admin/panel/keys/{key_id}/edit", data={**form, field: value})
        assert refused.status_code == 400 and message in text(refused), field
        assert f'value="{value}"' in text(refused)  # the form comes back as typed
    assert admin.get("/admin/keys", headers=MASTER_HEADERS).json["keys"][0]["limits"]["requestsPerDay"] == 1


def test_disable_enable_and_revoke_after_confirming(admin):
    _, key, key_id = create(admin)
    csrf = token(admin.get("/admin/panel/keys"))
    admin.post(f"/admin/panel/keys/{key_id}/enabled", data={"csrf_token": csrf, "enabled": "false"})
    assert chat(admin, key).status_code == 403
    assert ">Enable</button>" in text(admin.get("/admin/panel/keys"))
    admin.post(f"/admin/panel/keys/{key_id}/enabled", data={"csrf_token": csrf, "enabled": "true"})
    assert chat(admin, key).status_code == 200
    odd = admin.post(f"/admin/panel/keys/{key_id}/enabled", data={"csrf_token": csrf, "enabled": "maybe"})
    assert odd.status_code == 400 and chat(admin, key).status_code == 200  # not read as "disable"
    confirm = admin.get(f"/admin/panel/keys/{key_id}/revoke")
    assert ">Revoke</button>" in text(confirm) and admin.application.extensions["keys"].list() != []
    revoked = admin.post(f"/admin/panel/keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert admin.get("/admin/keys", headers=MASTER_HEADERS).json["keys"] == []
    assert chat(admin, key).status_code == 403
    assert admin.post(f"/admin/panel/keys/{key_id}/revoke", data={"csrf_token": csrf}).status_code == 404


def test_the_usage_page_and_its_csv_are_what_the_admin_api_answers(admin):
    _, key, key_id = create(admin)
    chat(admin, key)
    admin.application.extensions["keys"].flush()
    api_csv = admin.get("/admin/usage", headers={**MASTER_HEADERS, "Accept": "text/csv"}).data
    download = admin.get("/admin/panel/usage.csv")
    assert download.data == api_csv and b"alice" in api_csv
    assert download.headers["Content-Disposition"].startswith('attachment; filename="usage-')
    assert admin.get(f"/admin/panel/usage.csv?key={key_id}&provider=gemini").data.count(b"\r\n") == 1
    page = text(admin.get("/admin/panel/usage"))
    chart = json.loads(re.search(r'id="usage-data">(.*?)</script>', page).group(1))
    assert len(chart["days"]) == 30 and chart["groups"][0]["name"] == f"alice ({key_id})"
    assert sum(chart["groups"][0]["requests"]) == 1 and sum(chart["groups"][0]["tokens"]) == 15
    assert admin.get("/admin/panel/usage?from=2020-01-01&to=2026-01-01").status_code == 400
    assert "from must be a date" in text(admin.get("/admin/panel/usage?from=soon"))


def test_the_requests_page_lists_api_requests_without_their_content_and_filters_them(admin):
    _, key, key_id = create(admin)
    chat(admin, key)
    chat(admin, "sk_not_a_key")
    page = text(admin.get("/admin/panel/requests"))
    assert "the secret words" not in page and "sk_not_a_key" not in page
    rows = re.findall(r'<tr data-outcome="([a-z_]+)">', page)
    assert rows == ["denied", "ok"]
    assert "alice" in page and "POST /chat" in page and "10 / 5" in page
    only_ok = text(admin.get("/admin/panel/requests?outcome=ok"))
    assert re.findall(r'<tr data-outcome="([a-z_]+)">', only_ok) == ["ok"]
    by_key = text(admin.get(f"/admin/panel/requests?key={key_id}"))
    assert re.findall(r'<tr data-outcome="([a-z_]+)">', by_key) == ["ok"]


def test_the_overview_shows_what_metrics_and_health_show(admin):
    _, key, _ = create(admin)
    chat(admin, key)
    live = admin.get("/admin/panel/live").json
    metrics = admin.get("/metrics").json["services"]
    health = {p["id"]: p for p in admin.get("/health").json["providers"]}
    assert live["status"] == admin.get("/health").json["status"]
    for card in live["providers"]:
        figures = metrics[card["name"]]
        assert card["show"]["requests"] == str(figures["requests"]) and card["state"] == health[card["id"]]["state"]
        assert sum(card["series"]["requests"]) == figures["requests"] and len(card["series"]["requests"]) == 60
    assert sum(int(c["show"]["requests"]) for c in live["providers"]) == 1
    assert "Time to first token" in text(admin.get("/admin/"))


def test_a_provider_whose_model_is_gone_says_which_setting_to_change(admin, app):
    router = app.extensions["router"]
    groq = router.by_id("groq")
    router.model_missing(groq, [])
    card = next(c for c in admin.get("/admin/panel/live").json["providers"] if c["id"] == "groq")
    assert card["state"] == "cooling_down"
    assert card["show"]["stateText"] == f"model retired: set GROQ_MODEL (now '{groq.model}')"
    admin.post("/admin/panel/providers/groq/reset", data={"csrf_token": token(admin.get("/admin/"))})
    assert router.status()["groq"]["state"] == "ok"


def test_an_unset_secret_key_is_made_once_kept_private_and_shared(tmp_path):
    path = secret_path(f"sqlite:///{tmp_path / 'keys.db'}")
    assert path == tmp_path / "secret_key"
    first = secretfile.load_or_create(path)
    assert len(first) == 64 and secretfile.load_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no candidate file left behind
    assert secret_path("sqlite:///:memory:") is None


def test_a_short_secret_key_stops_start_up_without_echoing_it():
    with pytest.raises(SettingsError) as caught:
        load_settings({"SECRET_KEY": "hunter2"})
    assert "SECRET_KEY must be at least 32 characters" in str(caught.value) and "hunter2" not in str(caught.value)
    assert load_settings({"SECRET_KEY": "k" * 32}).secret_key == "k" * 32


def test_without_a_master_key_the_panel_is_closed(make_app):
    client = make_app(master_api_key=None).test_client()
    assert "The panel is closed" in text(client.get("/admin/"))
    with client.session_transaction("/admin/") as session:
        session["csrf"] = "token"
    refused = client.post("/admin/panel/sign-in", data={"csrf_token": "token", "master_key": ""})
    assert refused.status_code == 403 and "The panel is closed" in text(refused)


def test_two_workers_on_one_redis_share_sessions_and_the_count_of_wrong_master_keys(make_app):
    if not redis_answers():
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    one, two = (make_app(redis_url=REDIS_URL, secret_key="s" * 32) for _ in range(2))
    client = one.test_client()
    client.environ_base["REMOTE_ADDR"] = address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7"
    for attempt in range(4):
        assert sign_in(client, key=f"guess-{attempt}").status_code == 401
    other = two.test_client()
    other.environ_base["REMOTE_ADDR"] = address
    assert sign_in(other).status_code == 429
    other.environ_base["REMOTE_ADDR"] = "10.255.255.1"
    assert sign_in(other).status_code == 303
    client.set_cookie("gateway_admin", other.get_cookie("gateway_admin", path="/admin").value, path="/admin")
    assert client.get("/admin/panel/keys").status_code == 200  # the session opened on the other worker


def test_under_gunicorn_every_worker_signs_with_the_one_secret_made_on_first_start(start_gateway, tmp_path):
    if not redis_answers():
        pytest.skip("Redis is not answering on 127.0.0.1:6379 (two workers need it)")
    gateway = start_gateway(providers=["groq"], workers=2, REDIS_URL=REDIS_URL, SECRET_KEY="")
    browser = requests.Session()
    form = browser.get(f"{gateway.url}/admin/", timeout=10).text
    signed = browser.post(f"{gateway.url}/admin/panel/sign-in", timeout=10, allow_redirects=False, data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', form).group(1), "master_key": MASTER_KEY})
    assert signed.status_code == 303
    # Both workers built the app, each reading the secret (the second may boot after the first answers).
    assert wait_until(lambda: gateway.log().count('"gateway ready"') == 2)
    # A new connection each time, so both workers answer some of them: each must accept the session.
    for _ in range(20):
        page = requests.get(f"{gateway.url}/admin/panel/keys", cookies=browser.cookies, timeout=10,
                            allow_redirects=False, headers={"Connection": "close"})
        assert page.status_code == 200
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
