"""Revision 0002 (key policies and the daily usage table) upgrades a database at 0001 with its keys intact:
they keep working with no policy (no expiry, no scopes, no limits), and take a policy and usage after.
On SQLite and, when it answers, PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from tests.test_migrations import LEGACY_KEY, LEGACY_ROW, database_url  # noqa: F401  (a fixture)
from utils.keys import KeyStore, hash_key
from utils.schema import config, head, revision


def at_0001_with_a_key(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as db:
        command.upgrade(config(connection=db), "0001")
        db.execute(sa.text("INSERT INTO api_keys (key_hash, masked, name, created_at, last_used, request_count, "
                           "prompt_tokens, completion_tokens, enabled) VALUES (:key_hash, :masked, :name, "
                           ":created_at, :last_used, :request_count, :prompt_tokens, :completion_tokens, :enabled)"),
                   LEGACY_ROW)
    assert revision(engine) == "0001"
    engine.dispose()


def test_0002_upgrades_a_0001_database_with_its_keys_intact(database_url):  # noqa: F811
    at_0001_with_a_key(database_url)
    store = KeyStore(database_url)  # start-up migrates
    try:
        assert revision(store.engine) == head() == "0002"
        digest = hash_key(LEGACY_KEY)
        assert store.is_valid(digest)
        policy = store.policy(digest)
        assert (policy.expires_at, policy.allowed_providers, policy.allowed_models, policy.limits) == (
            None, None, None, {})
        [listed] = store.list()
        assert (listed["requestCount"], listed["promptTokens"], listed["expired"], listed["limits"]) == (
            7, 70, False, None)
        assert store.update(digest, {"note": "kept", "limits": '{"requestsPerDay": 5}'})
        assert store.policy(digest).limits == {"requestsPerDay": 5}
        store.record_use(digest, 3, 4, provider="groq")
        store.flush()
        rows = store.usage_report("2000-01-01", "2999-12-31", digest, None)
        assert [(r["provider"], r["requests"], r["promptTokens"], r["completionTokens"]) for r in rows] == [
            ("groq", 1, 3, 4)]
    finally:
        store.close()


def test_0002_downgrades_to_0001(database_url):  # noqa: F811
    at_0001_with_a_key(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as db:
        command.upgrade(config(connection=db), "0002")
    with engine.begin() as db:
        command.downgrade(config(connection=db), "0001")
    assert revision(engine) == "0001"
    assert not sa.inspect(engine).has_table("key_usage_daily")
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT name FROM api_keys")).scalars().all() == [LEGACY_ROW["name"]]
    engine.dispose()
