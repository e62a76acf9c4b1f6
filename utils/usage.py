"""The daily usage rollup: requests, tokens and errors per key, provider and UTC day, counted in memory on
the request path and added to `key_usage_daily` by the key store's flusher (utils/keys.py), never by a
request. Also the queries /admin/usage and the key list read, and the retention that bounds the table."""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from utils.errors import NotFound, ValidationError
from utils.tables import api_keys, key_usage_daily

ID_CHARS = 12


def day_of(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%d")


@dataclass
class Daily:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0

    def add(self, other: Daily) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.errors += other.errors


def write(db: sa.Connection, pending: dict[tuple[str, str, str], Daily]) -> None:
    """Add `pending` ((day, key hash, provider) -> counts) to the table, in the caller's transaction."""
    t = key_usage_daily
    for (day, key_hash, provider), u in sorted(pending.items()):
        where = (t.c.day == day) & (t.c.key_hash == key_hash) & (t.c.provider == provider)
        updated = db.execute(t.update().where(where).values(
            requests=t.c.requests + u.requests, prompt_tokens=t.c.prompt_tokens + u.prompt_tokens,
            completion_tokens=t.c.completion_tokens + u.completion_tokens, errors=t.c.errors + u.errors)).rowcount
        if not updated:
            db.execute(t.insert().values(day=day, key_hash=key_hash, provider=provider, requests=u.requests,
                                         prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                                         errors=u.errors))


def prune(db: sa.Connection, retention_days: int, now: float | None = None) -> int:
    """Drop rows older than `retention_days` days; how many went."""
    oldest = day_of((now or time.time()) - retention_days * 86400)
    return db.execute(key_usage_daily.delete().where(key_usage_daily.c.day < oldest)).rowcount


def totals(db: sa.Connection, since: str) -> dict[tuple[str, str], Daily]:
    """(key hash, day) -> counts summed over providers, for every day from `since`."""
    t = key_usage_daily
    rows = db.execute(sa.select(t.c.key_hash, t.c.day, sa.func.sum(t.c.requests), sa.func.sum(t.c.prompt_tokens),
                                sa.func.sum(t.c.completion_tokens), sa.func.sum(t.c.errors))
                      .where(t.c.day >= since).group_by(t.c.key_hash, t.c.day)).all()
    return {(r[0], r[1]): Daily(int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def report(db: sa.Connection, start: str, end: str, key_hash: str | None, provider: str | None,
           pending: dict[tuple[str, str, str], Daily]) -> list[dict]:
    """The rows /admin/usage answers: stored counts plus those not yet written, from `start` to `end`."""
    t = key_usage_daily
    query = (sa.select(t, api_keys.c.name).select_from(t.outerjoin(api_keys, api_keys.c.key_hash == t.c.key_hash))
             .where(t.c.day >= start, t.c.day <= end))
    if key_hash:
        query = query.where(t.c.key_hash == key_hash)
    if provider:
        query = query.where(t.c.provider == provider)
    merged: dict[tuple[str, str, str], Daily] = {}
    names: dict[str, str | None] = {}
    for r in db.execute(query).mappings():
        merged[(r["day"], r["key_hash"], r["provider"])] = Daily(r["requests"], r["prompt_tokens"],
                                                                 r["completion_tokens"], r["errors"])
        names[r["key_hash"]] = r["name"]
    for (day, kh, prov), u in pending.items():
        if start <= day <= end and (not key_hash or kh == key_hash) and (not provider or prov == provider):
            merged.setdefault((day, kh, prov), Daily()).add(u)
    missing = {kh for _, kh, _ in merged} - set(names)
    if missing:
        names.update(db.execute(sa.select(api_keys.c.key_hash, api_keys.c.name)
                                .where(api_keys.c.key_hash.in_(missing))).all())
    return [{"date": day, "keyId": kh[:ID_CHARS], "keyName": names.get(kh), "provider": prov,
             "requests": u.requests, "promptTokens": u.prompt_tokens, "completionTokens": u.completion_tokens,
             "errors": u.errors} for (day, kh, prov), u in sorted(merged.items())]


COLUMNS = ("date", "keyId", "keyName", "provider", "requests", "promptTokens", "completionTokens", "errors")


def query(store, args) -> tuple[str, str, list[dict]]:
    """The first and last day asked for and the rows: `from` to `to` (inclusive, UTC days; the last 30 by
    default), of one key (`key`, its listed id) and one provider (`provider`) when named. What /admin/usage
    and the admin panel's usage page both answer; `store` is the KeyStore, `args` the query string."""
    first, last = default_range(time.time())
    start = parse_day(args.get("from"), "from", first)
    end = parse_day(args.get("to"), "to", last)
    if start > end:
        raise ValidationError("from must not be after to", param="from")
    key_hash = None
    if args.get("key"):
        key_hash = store.find(args["key"])
        if key_hash is None:
            raise NotFound("API key not found")
    return start, end, store.usage_report(start, end, key_hash, (args.get("provider") or "").strip().lower() or None)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({**row, "keyName": _cell(row["keyName"])} for row in rows)
    return out.getvalue()


def _cell(text: str | None) -> str | None:
    """A name as a CSV cell a spreadsheet will not run as a formula."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def parse_day(value: str | None, name: str, default: date) -> str:
    if value is None or value == "":
        return default.isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValidationError(f"{name} must be a date, YYYY-MM-DD", param=name) from None


def default_range(now: float) -> tuple[date, date]:
    today = datetime.fromtimestamp(now, timezone.utc).date()
    return today - timedelta(days=29), today


def summary(days: dict, key_hash: str, today: str, month: str) -> dict:
    def shown(counts: Daily) -> dict:
        # Client requests: calls less the failed ones another provider took over (or that failed outright).
        return {"requests": counts.requests - counts.errors, "promptTokens": counts.prompt_tokens,
                "completionTokens": counts.completion_tokens}
    month_total = Daily()
    for (kh, day), counts in days.items():
        if kh == key_hash and day.startswith(month):
            month_total.add(counts)
    return {"today": shown(days.get((key_hash, today), Daily())), "month": shown(month_total)}


def key_days(db: sa.Connection, key_hash: str, since: str) -> dict[str, Daily]:
    """day -> counts (all providers) of one key from `since`: what rebuilds its budget counters."""
    t = key_usage_daily
    rows = db.execute(sa.select(t.c.day, sa.func.sum(t.c.requests), sa.func.sum(t.c.prompt_tokens),
                                sa.func.sum(t.c.completion_tokens), sa.func.sum(t.c.errors))
                      .where(t.c.key_hash == key_hash, t.c.day >= since).group_by(t.c.day)).all()
    return {r[0]: Daily(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}
