"""Webhooks as the key database keeps them: the receivers (`webhooks`), the outbox of deliveries (one row
per event and receiver, written before the event counts as emitted, so a crash or a restart never loses it),
and each attempt's outcome (the last KEEP_ATTEMPTS per receiver). utils/webhook_delivery.py sends the rows.

Several workers or machines share the outbox: a row is claimed by a conditional UPDATE (due, and not locked by
another sender) before it is sent, so one attempt runs at a time; a sender killed mid-attempt leaves a lock
that runs out, and the row is tried again.
"""
from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlsplit

import sqlalchemy as sa

from utils.clock import iso
from utils.errors import ValidationError
from utils.events import TYPES
from utils.tables import api_keys, connected, transaction, webhook_attempts, webhook_deliveries, webhooks


MAX_URL = 2048
MAX_WEBHOOKS = 50
ALL = "*"
KEEP_ATTEMPTS = 50  # attempt outcomes kept per webhook
KEEP_FINISHED = 100  # delivered or failed deliveries kept per webhook (pending ones are all kept)
LISTED = 50  # deliveries GET .../deliveries shows


def check_url(url) -> str:
    """The receiver's URL, or a ValidationError naming what is wrong: http(s), a host, no credentials."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("url must be a non-empty string", param="url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValidationError(f"url must be at most {MAX_URL} characters", param="url")
    if not url.isprintable() or " " in url:
        raise ValidationError("url must not contain spaces or control characters", param="url")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [ or ] in the host, say
        raise ValidationError("url is not a valid URL (its host is malformed)", param="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError("url must start with http:// or https://", param="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("url must not contain credentials (user:password@)", param="url")
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        raise ValidationError("url has a malformed port", param="url") from None
    if not parts.hostname:
        raise ValidationError("url must name a host", param="url")
    return url


def check_events(events) -> list[str]:
    """The event types to subscribe to: a non-empty list of known ones (or `*`), each named once."""
    if not isinstance(events, list) or not events:
        raise ValidationError("events must be a non-empty array of event types", param="events")
    for event in events:
        if not isinstance(event, str):
            raise ValidationError("events must hold strings", param="events")
        if event not in TYPES and event != ALL:
            raise ValidationError(f"Unknown event '{event[:100]}'. Valid events: {', '.join(TYPES)} (or * for all)",
                                  param="events")
    return list(dict.fromkeys(events))


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _public(row) -> dict:
    return {"id": row["id"], "url": row["url"], "events": json.loads(row["events"]), "createdAt": iso(row["created_at"])}


class WebhookStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def create(self, url: str, events: list[str], now: float) -> tuple[dict, str]:
        """A new webhook as the list shows it, and its secret (shown this once)."""
        row = {"id": f"wh_{secrets.token_hex(8)}", "url": url, "events": json.dumps(events),
               "secret": new_secret(), "created_at": now}
        with self._begin() as db:
            if db.execute(sa.select(sa.func.count()).select_from(webhooks)).scalar() >= MAX_WEBHOOKS:
                raise ValidationError(f"At most {MAX_WEBHOOKS} webhooks can be registered; delete one first")
            db.execute(webhooks.insert().values(**row))
        return _public(row), row["secret"]

    def list(self) -> list[dict]:
        with self._connect() as db:
            return [_public(row) for row in db.execute(sa.select(webhooks).order_by(webhooks.c.created_at)).mappings()]

    def any(self) -> bool:
        with self._connect() as db:
            return db.execute(sa.select(webhooks.c.id).limit(1)).first() is not None

    def delete(self, webhook_id: str) -> bool:
        """Remove the webhook with what it has still to send and its history."""
        with self._begin() as db:
            db.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == webhook_id))
            db.execute(webhook_attempts.delete().where(webhook_attempts.c.webhook_id == webhook_id))
            return db.execute(webhooks.delete().where(webhooks.c.id == webhook_id)).rowcount > 0

    def enqueue(self, event: str, data: dict, now: float, webhook_id: str | None = None) -> list[str]:
        """Queue one delivery of the event to every webhook subscribed to it (or to `webhook_id` alone):
        the ids of the deliveries, which are their `webhook-id` headers."""
        body = json.dumps({"type": event, "timestamp": iso(now), "data": data}, separators=(",", ":"))
        query = sa.select(webhooks.c.id, webhooks.c.events)
        with self._begin() as db:
            found = db.execute(query.where(webhooks.c.id == webhook_id) if webhook_id else query).all()
            targets = [row.id for row in found if webhook_id or {event, ALL} & set(json.loads(row.events))]
            rows = [{"id": f"msg_{secrets.token_hex(12)}", "webhook_id": target, "type": event, "payload": body,
                     "created_at": now, "status": "pending", "attempts": 0, "next_attempt": now, "locked_until": 0.0}
                    for target in targets]
            if rows:
                db.execute(webhook_deliveries.insert(), rows)
        return [row["id"] for row in rows]

    def claim(self, now: float, hold: float, limit: int) -> list[dict]:
        """Up to `limit` due deliveries, each locked for `hold` seconds for this sender alone, with their
        webhook's URL and secret and the attempt this is (1 for the first)."""
        d = webhook_deliveries.c
        due = sa.and_(d.status == "pending", d.next_attempt <= now, d.locked_until <= now)
        with self._connect() as db:
            candidates = db.execute(sa.select(d.id).where(due).order_by(d.next_attempt).limit(limit)).scalars().all()
            db.rollback()
            claimed = []
            for delivery_id in candidates:
                with db.begin():  # the WHERE is checked again as the row is written: another sender may have it
                    if db.execute(webhook_deliveries.update().where(d.id == delivery_id, due).values(
                            locked_until=now + hold, attempts=d.attempts + 1)).rowcount:
                        claimed.append(delivery_id)
            if not claimed:
                return []
            query = sa.select(d.id, d.webhook_id, d.type, d.payload, d.created_at, d.attempts, webhooks.c.url,
                              webhooks.c.secret).join(webhooks, webhooks.c.id == d.webhook_id)
            return [dict(row) for row in db.execute(query.where(d.id.in_(claimed))).mappings()]

    def next_due(self) -> float | None:
        """When the next pending delivery may be tried (the end of its lock, if another sender holds it)."""
        d = webhook_deliveries.c
        ready = sa.case((d.locked_until > d.next_attempt, d.locked_until), else_=d.next_attempt)
        with self._connect() as db:
            return db.execute(sa.select(sa.func.min(ready)).where(d.status == "pending")).scalar()

    def record(self, delivery: dict, at: float, duration_ms: int, status_code: int | None, error: str | None,
               outcome: str, retry_at: float = 0.0) -> None:
        """One attempt's outcome; `outcome` is the delivery's status after it (pending: tried again at `retry_at`)."""
        hook = delivery["webhook_id"]
        with self._begin() as db:
            if not db.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == delivery["id"]).values(
                    status=outcome, next_attempt=retry_at or at, locked_until=0.0)).rowcount:
                return  # its webhook was deleted meanwhile, and its history with it
            db.execute(webhook_attempts.insert().values(
                delivery_id=delivery["id"], webhook_id=hook, attempted_at=at, status_code=status_code,
                error=error[:200] if error else None, duration_ms=duration_ms))
            self._prune(db, hook)

    def _prune(self, db: sa.Connection, hook: str) -> None:
        """Keep the history bounded: the last KEEP_ATTEMPTS attempts and KEEP_FINISHED finished deliveries."""
        a, d = webhook_attempts.c, webhook_deliveries.c
        oldest_kept = (sa.select(a.id).where(a.webhook_id == hook).order_by(a.id.desc())
                       .offset(KEEP_ATTEMPTS - 1).limit(1).scalar_subquery())
        db.execute(webhook_attempts.delete().where(a.webhook_id == hook, a.id < oldest_kept))
        finished = sa.and_(d.webhook_id == hook, d.status != "pending")
        oldest_finished = (sa.select(d.created_at).where(finished).order_by(d.created_at.desc())
                           .offset(KEEP_FINISHED - 1).limit(1).scalar_subquery())
        db.execute(webhook_deliveries.delete().where(finished, d.created_at < oldest_finished))

    def deliveries(self, webhook_id: str) -> list[dict] | None:
        """The webhook's last deliveries, newest first, each with its kept attempts; None: no such webhook."""
        d, a = webhook_deliveries.c, webhook_attempts.c
        with self._connect() as db:
            if db.execute(sa.select(webhooks.c.id).where(webhooks.c.id == webhook_id)).first() is None:
                return None
            rows = db.execute(sa.select(webhook_deliveries).where(d.webhook_id == webhook_id)
                              .order_by(d.created_at.desc(), d.id).limit(LISTED)).mappings().all()
            tries = db.execute(sa.select(webhook_attempts).where(a.webhook_id == webhook_id)
                               .order_by(a.id.desc())).mappings().all()
        by_delivery: dict[str, list[dict]] = {}
        for attempt in tries:
            by_delivery.setdefault(attempt["delivery_id"], []).append({
                "at": iso(attempt["attempted_at"]), "statusCode": attempt["status_code"], "error": attempt["error"],
                "durationMs": attempt["duration_ms"]})
        return [{"id": row["id"], "type": row["type"], "status": row["status"], "createdAt": iso(row["created_at"]),
                 "attemptCount": row["attempts"],
                 "nextAttemptAt": iso(row["next_attempt"]) if row["status"] == "pending" else None,
                 "attempts": by_delivery.get(row["id"], [])} for row in rows]

    def key_name(self, key_hash: str) -> str | None:
        with self._connect() as db:
            return db.execute(sa.select(api_keys.c.name).where(api_keys.c.key_hash == key_hash)).scalar()

    def _connect(self):
        return connected(self.engine)

    def _begin(self):
        return transaction(self.engine)
