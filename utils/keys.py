"""API keys: stored as SHA-256 hashes only (the plaintext is shown once, at creation), in any database
SQLAlchemy Core speaks (SQLite in WAL mode by default, PostgreSQL when DATABASE_URL says so).

Per-key usage (requests, tokens, last use) is counted in memory and written in batches by a background
flusher, so a chat request never waits on the database; `close()` writes what is left.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from utils.clock import iso
from utils.errors import StateUnavailable, ValidationError
from utils.schema import migrate

log = logging.getLogger("gateway")

# The tables as the code reads and writes them. Their schema is made by Alembic revisions (utils/schema.py):
# a change here needs a new revision in utils/migrations/versions, which tests/test_migrations.py checks.
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
)

FLUSH_SECONDS = 2.0
# Length of the `id` the list shows (a hash prefix): revoking by id needs all of it.
ID_CHARS = 12
MAX_NAME = 200


def hash_key(key: str) -> str:
    # Keys are 192 random bits, so a plain digest cannot be reversed; no salt or slow hash is needed.
    return hashlib.sha256(key.encode()).hexdigest()


def mask(key: str) -> str:
    return f"{key[:7]}...{key[-4:]}"


def check_name(name) -> str:
    """The name to store for a new key, or a ValidationError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name must be a non-empty string", param="name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name must be at most {MAX_NAME} characters", param="name")
    if not name.isprintable():  # a NUL byte is refused by PostgreSQL; control characters garble logs and pages
        raise ValidationError("name must not contain control characters", param="name")
    return name.strip()


@dataclass
class _Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_used: float = 0.0


class KeyStore:
    def __init__(self, database_url: str):
        self.engine = _engine(database_url)
        migrate(self.engine)
        self._pending: dict[str, _Usage] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def create(self, name: str) -> str:
        key = f"sk_{secrets.token_hex(24)}"
        with self._begin() as db:
            db.execute(api_keys.insert().values(
                key_hash=hash_key(key), masked=mask(key), name=name, created_at=time.time(),
                request_count=0, prompt_tokens=0, completion_tokens=0, enabled=True))
        return key

    def is_valid(self, key_hash: str) -> bool:
        with self._connect() as db:
            return bool(db.execute(sa.select(api_keys.c.enabled).where(api_keys.c.key_hash == key_hash)).scalar())

    def revoke(self, key_hash: str) -> bool:
        with self._begin() as db:
            return db.execute(api_keys.delete().where(api_keys.c.key_hash == key_hash)).rowcount > 0

    def revoke_key(self, *, key: str | None = None, key_id: str | None = None) -> bool:
        """Revoke by the key itself or by the `id` the list shows (the plaintext is not kept); False when
        no such key."""
        key_hash = hash_key(key) if key else self.find(key_id or "")
        return bool(key_hash) and self.revoke(key_hash)

    def find(self, key_id: str) -> str | None:
        """The hash of the key whose listed `id` (a hash prefix) is `key_id`, if exactly one matches. Only
        the whole id counts: a one-character prefix must not pick a key to revoke."""
        if len(key_id) != ID_CHARS:
            return None
        with self._connect() as db:
            rows = db.execute(sa.select(api_keys.c.key_hash).where(
                api_keys.c.key_hash.startswith(key_id, autoescape=True)).limit(2)).all()
        return rows[0][0] if len(rows) == 1 else None

    def list(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).mappings().all()
        with self._lock:
            pending = dict(self._pending)
        return [_public(row, pending.get(row["key_hash"])) for row in rows]

    def record_use(self, key_hash: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            usage = self._pending.setdefault(key_hash, _Usage())
            usage.requests += 1
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
            usage.last_used = time.time()
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_forever, name="key-usage-flusher", daemon=True)
            self._flusher.start()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            with self.engine.begin() as db:
                for key_hash, u in pending.items():
                    db.execute(api_keys.update().where(api_keys.c.key_hash == key_hash).values(
                        request_count=api_keys.c.request_count + u.requests,
                        prompt_tokens=api_keys.c.prompt_tokens + u.prompt_tokens,
                        completion_tokens=api_keys.c.completion_tokens + u.completion_tokens,
                        last_used=u.last_used))
        except sa.exc.SQLAlchemyError:
            log.exception("could not write key usage; will retry")
            with self._lock:  # put it back so nothing is lost
                for key_hash, u in pending.items():
                    mine = self._pending.setdefault(key_hash, _Usage())
                    mine.requests += u.requests
                    mine.prompt_tokens += u.prompt_tokens
                    mine.completion_tokens += u.completion_tokens
                    mine.last_used = max(mine.last_used, u.last_used)

    def ping(self) -> bool:
        try:
            with self._connect() as db:
                db.execute(sa.text("SELECT 1"))
            return True
        except StateUnavailable:
            return False

    @contextmanager
    def _connect(self):
        """A connection; the database being unreachable is a clear 503, not a 500."""
        try:
            with self.engine.connect() as db:
                yield db
        except sa.exc.OperationalError:
            log.error("key database is unreachable")
            raise StateUnavailable("The key database is unavailable; try again shortly") from None

    @contextmanager
    def _begin(self):
        with self._connect() as db, db.begin():
            yield db

    def close(self) -> None:
        self._stop.set()
        self.flush()
        self.engine.dispose()

    def _flush_forever(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # the flusher must outlive any one bad write, or usage is never written again
                log.exception("key usage flush failed")


def _public(row, pending: _Usage | None) -> dict:
    pending = pending or _Usage()
    last_used = max(row["last_used"] or 0, pending.last_used) or None
    return {
        "id": row["key_hash"][:ID_CHARS],
        "key": row["masked"],
        "name": row["name"],
        "createdAt": iso(row["created_at"]),
        "lastUsed": iso(last_used) if last_used else None,
        "requestCount": row["request_count"] + pending.requests,
        "promptTokens": row["prompt_tokens"] + pending.prompt_tokens,
        "completionTokens": row["completion_tokens"] + pending.completion_tokens,
        "enabled": row["enabled"],
    }


def _engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # WAL lets readers and the usage flusher work side by side; FULL sync makes a created key
        # survive a crash or power loss; busy_timeout waits out another writer instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return engine


def unopenable(exc: Exception) -> str:
    """One line saying why the key database cannot be opened (the driver's first line, no traceback)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"DATABASE_URL: cannot open the key database: {reason[0] if reason else type(exc).__name__}"
