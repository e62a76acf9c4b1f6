"""Database chores an operator runs (routes/commands.py): copying the keys to another database, and backing
a live SQLite database up."""
from __future__ import annotations

import os
import sqlite3

import sqlalchemy as sa

from utils.keys import ID_CHARS, KeyStore
from utils.tables import api_keys, create_private, key_usage_daily, webhook_deliveries, webhooks


def copy_keys(source: sa.Engine, target_url: str) -> tuple[int, list[str]]:
    """Copy every key, with its usage (totals and the daily rows that reports and budgets read), from `source`
    into the database at `target_url`, migrating that one first. A key already there is left as it is, its
    daily usage too (there it may be newer): returns how many keys were copied and the ids of those skipped. The webhooks not there yet come too, with what they have still to
    send. One transaction on the target: all of them or none."""
    with source.connect() as db:
        rows = [dict(row) for row in db.execute(sa.select(api_keys)).mappings()]
        daily = [dict(row) for row in db.execute(sa.select(key_usage_daily)).mappings()]
        hooks = [dict(row) for row in db.execute(sa.select(webhooks)).mappings()]
        pending = [{**row, "locked_until": 0.0} for row in db.execute(
            sa.select(webhook_deliveries).where(webhook_deliveries.c.status == "pending")).mappings()]
    target = KeyStore(target_url)  # builds or upgrades its schema
    try:
        with target.engine.begin() as db:
            present = set(db.execute(sa.select(api_keys.c.key_hash)).scalars())
            new = [row for row in rows if row["key_hash"] not in present]
            if new:
                db.execute(api_keys.insert(), new)
            days = [row for row in daily if row["key_hash"] not in present]
            if days:
                db.execute(key_usage_daily.insert(), days)
            there = set(db.execute(sa.select(webhooks.c.id)).scalars())
            hooks = [hook for hook in hooks if hook["id"] not in there]
            pending = [row for row in pending if row["webhook_id"] not in there]
            if hooks:
                db.execute(webhooks.insert(), hooks)
            if pending:
                db.execute(webhook_deliveries.insert(), pending)
    finally:
        target.close()
    return len(new), [row["key_hash"][:ID_CHARS] for row in rows if row["key_hash"] in present]


def backup_sqlite(engine: sa.Engine, path: str) -> None:
    """A consistent copy of a SQLite database in use, through SQLite's online backup: copying the file could
    miss what still sits in its -wal file, or catch a page half written. Writers go on meanwhile (WAL)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not create_private(path):  # a backup holds what the database does: readable by its owner alone
        raise FileExistsError(path)
    source = engine.raw_connection()
    target = sqlite3.connect(path)
    try:
        source.driver_connection.backup(target)
    finally:
        target.close()
        source.close()
