"""The database servers on this machine: whether they answer (tests skip with a reason when not), a fresh
PostgreSQL database per test, and a Redis database per pytest-xdist worker, so workers running side by side
never flush each other's state."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
# "gw0", "gw1"... under pytest-xdist; unset in a plain run. Redis has databases 0-15; 0 is left to people.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
REDIS_URL = f"redis://127.0.0.1:6379/{1 + int(_WORKER[2:]) % 15 if _WORKER else 9}"


def postgres_answers() -> bool:
    try:
        with sa.create_engine(f"{POSTGRES.replace('postgresql', 'postgresql+psycopg')}/test",
                              connect_args={"connect_timeout": 2}).connect():
            return True
    except sa.exc.OperationalError:
        return False


def redis_answers(url: str = REDIS_URL) -> bool:
    import redis
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
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
