"""The database servers on this machine, for the tests of migrations, commands and backups: whether they
answer (tests skip with a reason when not), and a fresh PostgreSQL database per test."""
from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/9"


def postgres_answers() -> bool:
    try:
        with sa.create_engine(f"{POSTGRES.replace('postgresql', 'postgresql+psycopg')}/test",
                              connect_args={"connect_timeout": 2}).connect():
            return True
    except sa.exc.OperationalError:
        return False


def redis_answers() -> bool:
    import redis
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return False


needs_postgres = pytest.mark.skipif(not postgres_answers(), reason="PostgreSQL is not answering on 127.0.0.1:5432")
needs_redis = pytest.mark.skipif(not redis_answers(), reason="Redis is not answering on 127.0.0.1:6379")
needs_pg_tools = pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("psql")),
                                    reason="pg_dump and psql are not installed")


@contextmanager
def fresh_postgres():
    """A new, empty database, as a libpq URL (`postgresql://...`, what an operator writes and pg_dump reads);
    dropped afterwards."""
    name = f"gateway_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{POSTGRES.replace('postgresql', 'postgresql+psycopg')}/test",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as db:
            db.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def engine_for(url: str) -> sa.Engine:
    """An engine on our driver (psycopg 3) for a URL as an operator writes it."""
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
