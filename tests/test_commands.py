"""The operator commands (`flask --app app keys|db ...`, routes/commands.py): driven through Flask's test
runner on an app of this process, and once as an operator runs them, from the repository root."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MASTER
from tests.databases import fresh_postgres, needs_postgres
from tests.gateway import ROOT, SETTINGS
from utils.keys import KeyStore, hash_key
from utils.schema import head

ADMIN = {"X-API-Key": MASTER}


@pytest.fixture
def app(make_app):
    return make_app(model_check_interval=0)


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def admin_keys(app) -> list[dict]:
    return app.test_client().get("/admin/keys", headers=ADMIN).json["keys"]


def test_keys_create_prints_the_new_key_once_and_it_opens_the_chat_endpoint(app):
    result = cli(app, "keys", "create", "alice")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("sk_") and len(key) == 51
    assert "shown only once" in result.stderr
    chat = app.test_client().post("/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                                  headers={"Authorization": f"Bearer {key}"})
    assert chat.status_code == 200
    assert [k["name"] for k in admin_keys(app)] == ["alice"]


def test_keys_list_shows_what_the_admin_api_lists(app):
    cli(app, "keys", "create", "alice")
    cli(app, "keys", "create", "bob")
    listed = admin_keys(app)
    table = cli(app, "keys", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "KEY", "NAME", "CREATED", "LAST", "USED", "REQUESTS", "TOKENS", "IN/OUT"]
    assert [line.split()[:3] for line in table[1:]] == [[k["id"], k["key"], k["name"]] for k in listed]
    assert json.loads(cli(app, "keys", "list", "--json").stdout) == listed


def test_keys_revoke_takes_the_id_the_list_shows_or_the_key_itself(app):
    first = cli(app, "keys", "create", "by id").stdout.strip()
    second = cli(app, "keys", "create", "by key").stdout.strip()
    by_id = next(k["id"] for k in admin_keys(app) if k["name"] == "by id")
    assert cli(app, "keys", "revoke", by_id).stdout == "Revoked.\n"
    assert cli(app, "keys", "revoke", second).stdout == "Revoked.\n"
    store = app.extensions["keys"]
    assert (store.is_valid(hash_key(first)), store.is_valid(hash_key(second)), admin_keys(app)) == (False, False, [])


def test_revoking_a_key_that_is_not_there_fails_and_says_so(app):
    by_id = cli(app, "keys", "revoke", "0123456789ab")
    by_key = cli(app, "keys", "revoke", "sk_nope")
    assert (by_id.exit_code, by_id.stderr) == (1, "Error: API key not found\n")
    assert (by_key.exit_code, by_key.stderr) == (1, "Error: API key not found (an id has 12 characters)\n")


@pytest.mark.parametrize("name", ["", "   ", "a\tb", "x" * 201])
def test_a_key_name_the_admin_api_refuses_is_refused_with_its_message(app, name):
    api = app.test_client().post("/admin/keys", json={"name": name}, headers=ADMIN)
    result = cli(app, "keys", "create", name)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: {api.json['error']}\n"
    assert admin_keys(app) == []


def test_db_upgrade_says_the_database_is_at_the_latest_revision(app):
    result = cli(app, "db", "upgrade")
    assert (result.exit_code, result.stdout) == (0, f"Already at revision {head()}.\n")


def used_keys(app) -> list[str]:
    """Two keys, one of them with usage written to the database."""
    keys = [cli(app, "keys", "create", name).stdout.strip() for name in ("alice", "bob")]
    store = app.extensions["keys"]
    store.record_use(hash_key(keys[0]), prompt_tokens=5, completion_tokens=50, provider="groq")
    store.flush()
    return keys


def test_keys_create_and_update_take_the_policy_the_admin_api_takes(app):
    created = cli(app, "keys", "create", "carol", "--policy", '{"note": "trial", "limits": {"requestsPerDay": 2}}')
    assert created.exit_code == 0, created.output
    [shown] = admin_keys(app)
    assert (shown["name"], shown["note"], shown["limits"]) == ("carol", "trial", {"requestsPerDay": 2})
    updated = cli(app, "keys", "update", shown["id"], "--policy", '{"limits": null, "expiresAt": "2099-01-01T00:00:00Z"}')
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout) == admin_keys(app)[0]
    assert (admin_keys(app)[0]["limits"], admin_keys(app)[0]["expiresAt"]) == (None, "2099-01-01T00:00:00.000Z")


@pytest.mark.parametrize("args, status, says", [
    (["keys", "create", "dave", "--policy", "{not json"], 2, "Invalid value for --policy: not JSON"),
    (["keys", "create", "dave", "--policy", "[1]"], 2, "Invalid value for --policy: must be a JSON object"),
    (["keys", "create", "dave", "--policy", '{"requestsPerDay": 3}'], 1, "Error: Unknown field 'requestsPerDay'"),
    (["keys", "update", "000000000000", "--policy", '{"note": "x"}'], 1, "Error: API key not found"),
])
def test_a_wrong_policy_on_the_command_line_is_named_and_nothing_is_made(app, args, status, says):
    result = cli(app, *args)
    assert result.exit_code == status and says in result.output
    assert admin_keys(app) == []


def test_db_copy_copies_every_key_with_its_usage_into_another_database(app, tmp_path):
    keys = used_keys(app)
    result = cli(app, "db", "copy", "--to", str(tmp_path / "copy.db"))  # a bare path, as DATABASE_URL takes
    assert (result.exit_code, result.stdout) == (0, f"Copied 2 keys to sqlite:///{tmp_path / 'copy.db'}.\n")
    target = KeyStore(f"sqlite:///{tmp_path / 'copy.db'}")
    assert target.list() == admin_keys(app)
    assert all(target.is_valid(hash_key(key)) for key in keys)
    # The daily rows too: /admin/usage and the keys' budgets read them.
    daily = app.extensions["keys"].usage_report("2000-01-01", "2999-12-31", None, None)
    assert [(row["keyName"], row["provider"], row["requests"], row["completionTokens"]) for row in daily] == [
        ("alice", "groq", 1, 50)]
    assert target.usage_report("2000-01-01", "2999-12-31", None, None) == daily
    target.close()


def test_db_copy_leaves_the_keys_already_there_as_they_are_and_names_them(app, tmp_path):
    used_keys(app)
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    cli(app, "db", "copy", "--to", url)
    target = KeyStore(url)
    [alice, bob] = target.list()
    target.record_use(target.find(alice["id"]))  # used there since the first copy
    target.close()  # writes that use
    again = cli(app, "db", "copy", "--to", url)
    assert again.exit_code == 0
    assert again.stdout == (f"Copied 0 keys to {url}.\n"
                            f"Skipped 2 already there (left unchanged): {alice['id']}, {bob['id']}\n")
    target = KeyStore(url)
    assert [k["requestCount"] for k in target.list()] == [2, 0]
    target.close()


@needs_postgres
def test_db_copy_moves_the_keys_from_sqlite_to_postgresql(app):
    keys = used_keys(app)
    with fresh_postgres() as url:
        result = cli(app, "db", "copy", "--to", url)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Copied 2 keys to postgresql+psycopg://postgres@127.0.0.1:5432/")
        target = KeyStore(url.replace("postgresql://", "postgresql+psycopg://", 1))
        assert target.list() == admin_keys(app)
        assert all(target.is_valid(hash_key(key)) for key in keys)
        target.close()


@pytest.mark.parametrize("url, message", [
    ("mysql://db/keys", "must be a sqlite:/// path or a postgresql:// URL"),
    ("postgresql://postgres@127.0.0.1:1/none", "connection failed"),
])
def test_db_copy_to_a_database_it_cannot_use_fails_and_says_why(app, url, message):
    result = cli(app, "db", "copy", "--to", url)
    assert result.exit_code in (1, 2) and message in result.stderr


def test_the_flask_command_works_from_the_repository_root_without_a_dotenv(tmp_path):
    # Every setting blank (python-dotenv never overrides a variable already set), so a developer's .env
    # cannot reach this run: what remains is DATABASE_URL.
    env = {**os.environ, **dict.fromkeys(SETTINGS, ""), "FLASK_SKIP_DOTENV": "1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}

    def flask(*args):
        return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)

    created = flask("keys", "create", "from the shell")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]  # after the gateway's own start-up log line
    assert key.startswith("sk_") and created.stdout.count("sk_") == 1
    listed = flask("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout[listed.stdout.index("["):])
    assert (entry["name"], entry["key"]) == ("from the shell", f"{key[:7]}...{key[-4:]}")
