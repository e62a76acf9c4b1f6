"""The key database's tables as the code reads and writes them. Their schema is made by Alembic revisions
(utils/schema.py): a change here needs a new revision in utils/migrations/versions, which
tests/test_migrations.py checks."""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from utils.errors import StateUnavailable

log = logging.getLogger("gateway")

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("masked", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used", sa.Float),
    sa.Column("request_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    # Policy (revision 0002): NULL means no restriction. Lists and limits are JSON text.
    sa.Column("note", sa.Text),
    sa.Column("expires_at", sa.Float),
    sa.Column("allowed_providers", sa.Text),
    sa.Column("allowed_models", sa.Text),
    sa.Column("limits", sa.Text),
    # The key's response cache setting (revision 0004): NULL follows CACHE_MODE.
    sa.Column("cache", sa.Boolean),
)
# Requests, tokens and errors per key, provider and UTC day: the durable record of usage (revision 0002).
key_usage_daily = sa.Table(
    "key_usage_daily", metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Index("ix_key_usage_daily_key_day", "key_hash", "day"),
)
# Webhooks (revision 0003): receivers, the outbox of their deliveries, and each attempt's outcome.
webhooks = sa.Table(
    "webhooks", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("webhook_id", sa.String(32), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("locked_until", sa.Float, nullable=False),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt"),
    sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)
webhook_attempts = sa.Table(
    "webhook_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(40), nullable=False),
    sa.Column("webhook_id", sa.String(32), nullable=False),
    sa.Column("attempted_at", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.String(200)),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_attempts_webhook", "webhook_id", "id"),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id"),
)


@contextmanager
def connected(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection to the key database; the database being unreachable is a clear 503, not a 500."""
    try:
        with engine.connect() as db:
            yield db
    except sa.exc.OperationalError:
        log.error("key database is unreachable")
        raise StateUnavailable("The key database is unavailable; try again shortly") from None


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    with connected(engine) as db, db.begin():
        yield db


def create_private(path: str) -> bool:
    """Create the file `path` readable by its owner alone (a key database holds webhook secrets; SQLite gives its
    -wal and -shm files the database's own mode); False if it was there already, whose mode stays the operator's."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    parsed = sa.engine.make_url(url)
    path = parsed.database  # without the URL's query (?timeout=...)
    if path and path != ":memory:" and not parsed.query.get("uri"):  # uri=true: SQLite reads a file: URI itself
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        create_private(path)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # WAL lets readers and the usage flusher work side by side; FULL sync makes a created key
        # survive a crash or power loss; busy_timeout waits out another writer instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def wal(cursor, tries: int = 100) -> None:
    """Switch the database to WAL. Two workers opening a new database at once: the switch needs a moment alone
    with the file, and SQLite answers "database is locked" at once instead of waiting (busy_timeout does not
    apply to it), which stopped a worker from booting; so it is tried again for a few seconds."""
    for attempt in range(tries):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)


def unopenable(exc: Exception) -> str:
    """One line saying why the key database cannot be opened (the driver's first line, no traceback)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"DATABASE_URL: cannot open the key database: {reason[0] if reason else type(exc).__name__}"
