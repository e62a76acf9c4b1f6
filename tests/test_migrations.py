"""Schema migrations (utils/schema.py, Alembic): a fresh database, and one made before migrations with keys
in it, both reach the latest revision at start-up with every key intact; doing it again, or from several
instances at once, changes nothing; revision 0002 (key policies, daily usage) upgrades a database at 0001 with
its keys intact and downgrades again. Each test runs on SQLite and, when it answers, on PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.databases import fresh_postgres, needs_postgres
from tests.gateway import ROOT
from utils.keys import KeyStore, hash_key
from utils.schema import HEAD, config, head, migrate, revision
from utils.tables import metadata

# The table exactly as the gateway created it before it had migrations (CreateTable of utils/keys.py then,
# the same text on SQLite and PostgreSQL). Frozen here: the code's own table will change, this must not.
LEGACY_DDL = """CREATE TABLE IF NOT EXISTS api_keys (
    key_hash VARCHAR(64) NOT NULL,
    masked VARCHAR(32) NOT NULL,
    name VARCHAR(200) NOT NULL,
    created_at FLOAT NOT NULL,
    last_used FLOAT,
    request_count BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    PRIMARY KEY (key_hash)
)"""
INSTANCES = 3
# One instance starting: says it is ready, waits for the signal (a byte on stdin), then builds its key store.
RACER = """
import sys
from utils.keys import KeyStore
from utils.schema import revision
print("ready", flush=True)
sys.stdin.read(1)
store = KeyStore(sys.argv[1])
print(revision(store.engine))
store.close()
"""
LEGACY_KEY = "sk_" + "5a" * 24
# A row as the code before migrations wrote it: created, then used 7 times.
LEGACY_ROW = {"key_hash": hash_key(LEGACY_KEY), "masked": "sk_5a5a...5a5a", "name": "made before migrations",
              "created_at": 1_700_000_000.0, "last_used": 1_700_000_500.0, "request_count": 7,
              "prompt_tokens": 70, "completion_tokens": 700, "enabled": True}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def database_url(request, tmp_path):
    """An empty database, as a SQLAlchemy URL on our drivers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        with fresh_postgres() as url:
            yield url.replace("postgresql://", "postgresql+psycopg://", 1)


def make_legacy(url: str) -> None:
    """The database as the gateway before migrations left it: its table, one key in it, no alembic_version."""
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text(LEGACY_DDL))
        db.execute(sa.text("INSERT INTO api_keys (key_hash, masked, name, created_at, last_used, request_count, "
                           "prompt_tokens, completion_tokens, enabled) VALUES (:key_hash, :masked, :name, "
                           ":created_at, :last_used, :request_count, :prompt_tokens, :completion_tokens, :enabled)"),
                   LEGACY_ROW)
    engine.dispose()


def schema_of(url: str) -> dict:
    """Tables (Alembic's own aside) with their columns' names, types, nullability and primary key."""
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    schema = {table: ([(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                       for c in inspector.get_columns(table)],
                      inspector.get_pk_constraint(table)["constrained_columns"])
              for table in inspector.get_table_names() if table != "alembic_version"}
    engine.dispose()
    return schema


def test_a_database_made_before_migrations_keeps_its_keys_usable_at_the_latest_revision(database_url):
    make_legacy(database_url)
    store = KeyStore(database_url)  # what the gateway does at start-up
    try:
        assert revision(store.engine) == head()
        assert store.is_valid(hash_key(LEGACY_KEY))
        [listed] = store.list()
        assert (listed["id"], listed["name"], listed["requestCount"], listed["promptTokens"],
                listed["completionTokens"], listed["lastUsed"]) == (
            LEGACY_ROW["key_hash"][:12], "made before migrations", 7, 70, 700, "2023-11-14T22:21:40.000Z")
        store.record_use(hash_key(LEGACY_KEY), prompt_tokens=1, completion_tokens=2)
        store.flush()
        assert store.list()[0]["requestCount"] == 8
        assert store.is_valid(hash_key(store.create("made after")))
        assert store.revoke_key(key=LEGACY_KEY) and not store.is_valid(hash_key(LEGACY_KEY))
    finally:
        store.close()


def test_a_database_made_before_migrations_is_stamped_at_the_first_revision_not_rebuilt(database_url):
    make_legacy(database_url)
    engine = sa.create_engine(database_url)
    assert migrate(engine) == (None, head())  # building api_keys again would fail: it is there
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
        assert db.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all() == [LEGACY_ROW["key_hash"]]
    engine.dispose()


def test_a_fresh_database_reaches_the_latest_revision(database_url):
    engine = sa.create_engine(database_url)
    assert revision(engine) is None
    assert migrate(engine) == (None, head())
    assert revision(engine) == head()
    engine.dispose()


def test_migrating_twice_changes_nothing(database_url):
    engine = sa.create_engine(database_url)
    migrate(engine)
    schema = schema_of(database_url)
    assert migrate(engine) == (head(), head())
    assert schema_of(database_url) == schema
    engine.dispose()


def test_the_first_revision_builds_the_very_table_made_before_migrations(database_url, tmp_path):
    from alembic import command

    from utils.schema import config
    engine = sa.create_engine(database_url)
    with engine.begin() as db:  # only the first revision: later ones change the table
        command.upgrade(config(connection=db), "0001")
    engine.dispose()
    if database_url.startswith("sqlite"):
        legacy_url = f"sqlite:///{tmp_path / 'legacy.db'}"
        make_legacy(legacy_url)
        assert schema_of(legacy_url) == schema_of(database_url)
    else:
        with fresh_postgres() as legacy:
            legacy_url = legacy.replace("postgresql://", "postgresql+psycopg://", 1)
            make_legacy(legacy_url)
            assert schema_of(legacy_url) == schema_of(database_url)


def test_the_tables_the_code_uses_are_the_ones_the_migrations_build(database_url):
    """A change to utils/keys.py's tables without a revision (or the reverse) fails here."""
    engine = sa.create_engine(database_url)
    migrate(engine)
    with engine.connect() as db:
        assert compare_metadata(MigrationContext.configure(db), metadata) == []
    engine.dispose()


@pytest.mark.parametrize("made_before_migrations", [False, True], ids=["fresh", "made-before-migrations"])
def test_several_instances_migrating_one_database_at_once_all_succeed(database_url, made_before_migrations):
    """Each process is an instance starting (one migration per process, as in production). They import
    first, then all start the schema step on one signal, so they really race for it."""
    if made_before_migrations:
        make_legacy(database_url)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, database_url], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(INSTANCES)]
    assert [racer.stdout.readline() for racer in racers] == ["ready\n"] * INSTANCES  # all imported
    for racer in racers:  # the signal: every one starts its schema step now
        racer.stdin.write("g")
        racer.stdin.flush()
    outcomes = [(*racer.communicate(), racer.returncode) for racer in racers]
    assert outcomes == [(f"{head()}\n", "", 0)] * INSTANCES
    engine = sa.create_engine(database_url)
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
        assert db.execute(sa.text("SELECT count(*) FROM api_keys")).scalar() == (1 if made_before_migrations else 0)
    engine.dispose()


def test_a_database_migrated_by_newer_code_is_refused_with_what_to_do(database_url):
    engine = sa.create_engine(database_url)
    migrate(engine)
    with engine.begin() as db:  # as a later version of the gateway would leave it
        db.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RuntimeError, match="schema revision 9999, which this code does not know .its latest is "
                                           f"{head()}.: run the version that migrated it, or a newer one"):
        KeyStore(database_url)
    engine.dispose()


def test_head_names_the_latest_revision_alembic_knows():
    assert HEAD == head()


def test_a_start_on_a_database_at_the_latest_revision_does_not_import_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    KeyStore(url).close()  # the first start migrates
    probe = ("import sys; from utils.keys import KeyStore; KeyStore(sys.argv[1]).close(); "
             "print(sorted(m for m in sys.modules if m.startswith('alembic')))")
    result = subprocess.run([sys.executable, "-c", probe, url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.stdout, result.stderr) == ("[]\n", "")


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


def test_0002_upgrades_a_0001_database_with_its_keys_intact(database_url):
    at_0001_with_a_key(database_url)
    store = KeyStore(database_url)  # start-up migrates
    try:
        assert revision(store.engine) == head()
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


def test_0002_downgrades_to_0001(database_url):
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


# Opens the key database's engine at a given moment (spinning until then, so the openers start together).
OPENER = """
import sys, time
from utils.tables import engine
print("ready", flush=True)
moment = float(sys.stdin.readline())
while time.time() < moment:
    pass
with engine(sys.argv[1]).begin() as db:  # and write, as a worker's migration does
    db.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
    print(db.exec_driver_sql("PRAGMA journal_mode").scalar())
"""


def test_workers_opening_a_new_sqlite_database_at_the_same_moment_all_get_it_in_wal_mode(tmp_path):
    """Switching a new file to WAL needs it alone for a moment, and SQLite says "database is locked" at once
    rather than wait: without a retry, one of two workers starting together failed to boot now and then."""
    for round_ in range(8):
        url = f"sqlite:///{tmp_path / f'new-{round_}.db'}"
        openers = [subprocess.Popen([sys.executable, "-c", OPENER, url], cwd=ROOT, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for opener in openers:
            assert opener.stdout.readline() == "ready\n"
        moment = time.time() + 0.2
        for opener in openers:
            opener.stdin.write(f"{moment}\n")
            opener.stdin.flush()
        outcomes = [opener.communicate(timeout=60) for opener in openers]
        assert [(out, err.strip().splitlines()[-1:]) for out, err in outcomes] == [("wal\n", [])] * 2
