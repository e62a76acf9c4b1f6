"""Backup and restore as the README's Operations section tells them: SQLite backed up online while the
gateway has it open (`flask --app app db backup PATH`), PostgreSQL with pg_dump and psql."""
from __future__ import annotations

import sqlite3
import subprocess

from tests.conftest import MASTER
from tests.databases import fresh_postgres, needs_pg_tools, needs_postgres
from utils.keys import KeyStore, hash_key
from utils.schema import head, revision

ADMIN = {"X-API-Key": MASTER}


def add_used_keys(app) -> list[str]:
    client = app.test_client()
    keys = [client.post("/admin/keys", json={"name": name}, headers=ADMIN).json["apiKey"] for name in ("a", "b")]
    store = app.extensions["keys"]
    store.record_use(hash_key(keys[0]), prompt_tokens=3, completion_tokens=30)
    store.flush()
    return keys


def test_an_online_backup_of_the_live_sqlite_database_restores_every_key(make_app, tmp_path):
    app = make_app(model_check_interval=0)
    keys = add_used_keys(app)
    listed = app.extensions["keys"].list()
    # The keys sit in the write-ahead log, not yet in keys.db: a copy of keys.db alone would lose them.
    assert (tmp_path / "keys.db-wal").stat().st_size > 0
    # A writer is mid-transaction while the backup runs: the backup neither waits for it nor takes its change.
    writer = sqlite3.connect(tmp_path / "keys.db")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE api_keys SET request_count = 999")
    result = app.test_cli_runner().invoke(args=["db", "backup", str(tmp_path / "backup" / "keys.db")])
    writer.rollback()
    writer.close()
    assert (result.exit_code, result.stdout) == (0, f"Backed up to {tmp_path / 'backup' / 'keys.db'}.\n")
    # Both hold webhook secrets: readable by their owner alone.
    assert [oct((tmp_path / name).stat().st_mode & 0o777) for name in ("keys.db", "keys.db-wal", "backup/keys.db")] \
        == ["0o600"] * 3

    # Restore into a new file, as `sqlite3 restored.db ".restore backup/keys.db"` does.
    with sqlite3.connect(tmp_path / "backup" / "keys.db") as backup, sqlite3.connect(tmp_path / "restored.db") as new:
        backup.backup(new)
    backup.close()
    new.close()
    restored = KeyStore(f"sqlite:///{tmp_path / 'restored.db'}")
    try:
        assert restored.list() == listed
        assert all(restored.is_valid(hash_key(key)) for key in keys)
        assert revision(restored.engine) == head()
    finally:
        restored.close()


def test_a_backup_never_overwrites_a_file(make_app, tmp_path):
    app = make_app(model_check_interval=0)
    (tmp_path / "taken.db").write_text("something else")
    result = app.test_cli_runner().invoke(args=["db", "backup", str(tmp_path / "taken.db")])
    assert (result.exit_code, result.stderr) == (1, f"Error: {tmp_path / 'taken.db'} exists; choose a new file\n")
    assert (tmp_path / "taken.db").read_text() == "something else"


@needs_postgres
def test_db_backup_on_postgresql_points_to_pg_dump(make_app, postgres_url, tmp_path):
    app = make_app(model_check_interval=0, database_url=postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    result = app.test_cli_runner().invoke(args=["db", "backup", str(tmp_path / "keys.db")])
    assert (result.exit_code, result.stderr) == (
        1, "Error: db backup is for SQLite; back PostgreSQL up with pg_dump (README, Operations)\n")


@needs_postgres
@needs_pg_tools
def test_pg_dump_and_psql_restore_every_key_into_a_new_database(make_app, postgres_url, tmp_path):
    app = make_app(model_check_interval=0, database_url=postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    keys = add_used_keys(app)
    listed = app.extensions["keys"].list()
    dump = tmp_path / "gateway.sql"
    subprocess.run(["pg_dump", "--no-owner", "--dbname", postgres_url, "--file", str(dump)], check=True)
    with fresh_postgres() as new_url:
        subprocess.run(["psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", new_url, "--file", str(dump)],
                       check=True, capture_output=True)
        restored = KeyStore(new_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            assert restored.list() == listed
            assert all(restored.is_valid(hash_key(key)) for key in keys)
            assert revision(restored.engine) == head()  # the migration history came along
        finally:
            restored.close()
