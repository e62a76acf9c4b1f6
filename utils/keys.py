"""API keys: stored as SHA-256 hashes only (the plaintext is shown once, at creation), in any database
SQLAlchemy Core speaks (SQLite in WAL mode by default, PostgreSQL when DATABASE_URL says so).

Per-key usage (requests, tokens, last use) is counted in memory and written in batches by a background
flusher, so a chat request never waits on the database; `close()` writes what is left.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from utils import keyfields, usage
from utils.clock import iso
from utils.errors import StateUnavailable, ValidationError
from utils.keyfields import Policy
from utils.schema import migrate

from utils.tables import api_keys, connected, transaction
from utils.tables import engine as _engine

log = logging.getLogger("gateway")

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
    def __init__(self, database_url: str, retention_days: int = 400):
        self.engine = _engine(database_url)
        migrate(self.engine)
        self._pending: dict[str, _Usage] = {}
        self._daily: dict[tuple[str, str, str], usage.Daily] = {}  # (day, key hash, provider)
        self.retention_days = retention_days  # USAGE_RETENTION_DAYS: days of daily usage kept
        self._pruned = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def create(self, name: str, policy: dict | None = None) -> str:
        """A new key; `policy` holds columns from keyfields.parse."""
        key = f"sk_{secrets.token_hex(24)}"
        with self._begin() as db:
            db.execute(api_keys.insert().values(**{
                "key_hash": hash_key(key), "masked": mask(key), "name": name, "created_at": time.time(),
                "request_count": 0, "prompt_tokens": 0, "completion_tokens": 0, "enabled": True, **(policy or {})}))
        return key

    def update(self, key_hash: str, values: dict) -> bool:
        if not values:
            return True
        with self._begin() as db:
            return db.execute(api_keys.update().where(api_keys.c.key_hash == key_hash).values(**values)).rowcount > 0

    def policy(self, key_hash: str) -> Policy | None:
        """The key's policy, None when there is no such key."""
        with self._connect() as db:
            row = db.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash)).mappings().first()
        return keyfields.policy_of(row) if row else None

    def is_valid(self, key_hash: str) -> bool:
        policy = self.policy(key_hash)
        return bool(policy and policy.enabled and not policy.expired(time.time()))

    def revoke(self, key_hash: str) -> bool:
        with self._begin() as db:
            return db.execute(api_keys.delete().where(api_keys.c.key_hash == key_hash)).rowcount > 0

    def revoke_key(self, *, key: str | None = None, key_id: str | None = None) -> bool:
        """Revoke by the key itself or by the `id` the list shows; False when there is no such key."""
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
        now = time.time()
        today, month = usage.day_of(now), usage.day_of(now)[:7]
        with self._connect() as db:
            rows = db.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).mappings().all()
            days = usage.totals(db, f"{month}-01")
        with self._lock:
            pending, daily = dict(self._pending), dict(self._daily)
        for (day, key_hash, _), counts in daily.items():
            days.setdefault((key_hash, day), usage.Daily()).add(counts)
        return [{**_public(row, pending.get(row["key_hash"])), **keyfields.public(row, now),
                 "usage": usage.summary(days, row["key_hash"], today, month)} for row in rows]

    def usage_report(self, start: str, end: str, key_hash: str | None, provider: str | None) -> list[dict]:
        with self._lock:
            daily = dict(self._daily)
        with self._connect() as db:
            return usage.report(db, start, end, key_hash, provider, daily)

    def record_use(self, key_hash: str, prompt_tokens: int = 0, completion_tokens: int = 0,
                   provider: str | None = None, error: bool = False) -> None:
        """One client request answered (by `provider`, whose call counts in the daily rollup too)."""
        with self._lock:
            use = self._pending.setdefault(key_hash, _Usage())
            use.requests += 1
            use.prompt_tokens += prompt_tokens
            use.completion_tokens += completion_tokens
            use.last_used = time.time()
            if provider:
                self._count_call(key_hash, provider, usage.Daily(1, prompt_tokens, completion_tokens, int(error)))
        self._start_flusher()

    def record_call(self, key_hash: str, provider: str, error: bool = True) -> None:
        """One call to `provider` that did not answer the client (it failed, and another may have taken over)."""
        with self._lock:
            self._count_call(key_hash, provider, usage.Daily(1, 0, 0, int(error)))
        self._start_flusher()

    def _count_call(self, key_hash: str, provider: str, counts: usage.Daily) -> None:
        self._daily.setdefault((usage.day_of(time.time()), key_hash, provider), usage.Daily()).add(counts)

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_forever, name="key-usage-flusher", daemon=True)
            self._flusher.start()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            daily, self._daily = self._daily, {}
        if not pending and not daily:
            return
        try:
            with self.engine.begin() as db:
                usage.write(db, daily)
                if time.time() - self._pruned > 3600:  # the retention bound, hourly
                    usage.prune(db, self.retention_days)
                    self._pruned = time.time()
                for key_hash, u in pending.items():
                    db.execute(api_keys.update().where(api_keys.c.key_hash == key_hash).values(
                        request_count=api_keys.c.request_count + u.requests,
                        prompt_tokens=api_keys.c.prompt_tokens + u.prompt_tokens,
                        completion_tokens=api_keys.c.completion_tokens + u.completion_tokens,
                        last_used=u.last_used))
        except sa.exc.SQLAlchemyError:
            log.exception("could not write key usage; will retry")
            with self._lock:  # put it back so nothing is lost
                for slot, counts in daily.items():
                    self._daily.setdefault(slot, usage.Daily()).add(counts)
                for key_hash, u in pending.items():
                    mine = self._pending.setdefault(key_hash, _Usage())
                    mine.requests += u.requests
                    mine.prompt_tokens += u.prompt_tokens
                    mine.completion_tokens += u.completion_tokens
                    mine.last_used = max(mine.last_used, u.last_used)

    def days_of(self, key_hash: str, since: str) -> dict[str, usage.Daily]:
        """The key's daily counts from `since`, to rebuild its budget counters (503 if the database is away)."""
        with self._connect() as db:
            return usage.key_days(db, key_hash, since)

    def ping(self) -> bool:
        try:
            with self._connect() as db:
                db.execute(sa.text("SELECT 1"))
            return True
        except StateUnavailable:
            return False

    def _connect(self):
        return connected(self.engine)

    def _begin(self):
        return transaction(self.engine)

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
