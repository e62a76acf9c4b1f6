"""The database schema, kept by Alembic: revisions in utils/migrations/versions, applied at start-up and by
`flask --app app db upgrade`.

`migrate` brings any database to the latest revision: a fresh one, one at an older revision, and one made
before there were migrations (its `api_keys` table is today's first revision, so it is stamped, not built).
Several instances starting at once is safe: the whole step runs in one transaction that first takes a
lock (a PostgreSQL advisory lock; on SQLite the database's write lock), so the others wait, then find
the work done.

Alembic itself is imported only when there is work to do: a worker starting on a database already at the
latest revision (every start but the first after an upgrade) reads one row and goes on, a fifth of a second
sooner and without the megabytes Alembic's modules would keep in every worker.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The latest revision in utils/migrations/versions; tests/test_migrations.py holds it to Alembic's own answer.
HEAD = "0004"
# Any number: the PostgreSQL advisory lock that serialises the schema step between instances starting at once.
SCHEMA_LOCK = 727_001
# The revision a database made before migrations is at: its tables are exactly what this revision creates.
BASELINE = "0001"
# The table present in every database made before migrations.
BASELINE_TABLE = "api_keys"
# How long (ms) an instance starting on SQLite waits for another one's migration before giving up.
MIGRATION_WAIT_MS = 600_000
# Alembic's `context` and `op` are module globals: two migrations in one process at once would share them.
_ONE_AT_A_TIME = threading.Lock()


def config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, built in code so no alembic.ini has to sit beside the deployment."""
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", "utils:migrations")
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(config())  # read once: the scripts do not change while the code runs


def head() -> str:
    """The latest revision this code knows."""
    return _script().get_current_head()


def revision(engine: sa.Engine) -> str | None:
    """The revision the database is at; None before any migration (or before the baseline was stamped). Read
    as Alembic keeps it, one row of `alembic_version`, without Alembic."""
    with engine.connect() as db:
        if not sa.inspect(db).has_table("alembic_version"):
            return None
        return db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring the database to the latest revision; returns the revisions before and after. Running it
    again, or from several instances at once, changes nothing more."""
    if revision(engine) == HEAD:  # the usual start-up; a migration running elsewhere only ever moves towards HEAD
        return HEAD, HEAD
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    with _ONE_AT_A_TIME, engine.connect() as db, _locked(db):
        before = MigrationContext.configure(db).get_current_revision()
        if before == head():  # the usual start-up: nothing to do
            db.commit()
            return before, before
        if before not in {None, *(script.revision for script in _script().walk_revisions())}:
            # Older code after a newer one migrated: say so, rather than Alembic's "Can't locate revision".
            raise RuntimeError(f"The database is at schema revision {before}, which this code does not know (its "
                               f"latest is {head()}): run the version that migrated it, or a newer one")
        if before is None and sa.inspect(db).has_table(BASELINE_TABLE):
            command.stamp(config(connection=db), BASELINE)
        command.upgrade(config(connection=db), "head")
        db.commit()
        return before, head()


@contextmanager
def _locked(db: sa.Connection):
    """A transaction holding the lock that makes the schema step one instance's at a time."""
    if db.dialect.name == "postgresql":
        # Held until the transaction ends, so a crash mid-migration releases it too.
        db.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
    if db.dialect.name != "sqlite":
        yield
        return
    usual = db.exec_driver_sql("PRAGMA busy_timeout").scalar()
    # Another worker may be running a long revision: wait for it, where a request would give up sooner.
    db.exec_driver_sql(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
    try:
        # Python's sqlite3 does not begin a transaction before DDL, so the revisions would each commit on
        # their own. BEGIN IMMEDIATE takes the write lock now: a second process waits, and the DDL and the
        # version row commit together.
        db.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    finally:
        db.rollback()  # whatever was not committed (nothing, after a success), and the write lock with it
        db.exec_driver_sql(f"PRAGMA busy_timeout={usual}")  # the connection goes back to the pool
