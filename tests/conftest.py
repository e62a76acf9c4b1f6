import logging

import pytest

from app import create_app
from tests.databases import REDIS_URL, fresh_postgres
from tests.fakeprovider import FakeProviders
from tests.gateway import Gateway, fake_env
from utils.router import Router
from utils.settings import ProviderSettings, Settings, default_providers
from utils.state import LocalStore

# The keys an in-process gateway built by `make_settings` accepts: the admin's, and one public key.
MASTER = "master-key"
PUBLIC = "public-key"


@pytest.fixture(scope="session")
def fake_server():
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake(fake_server):
    fake_server.clear()
    yield fake_server
    fake_server.clear()


@pytest.fixture
def start_gateway(fake, tmp_path):
    """Start the gateway under gunicorn with the given settings (all five providers on the fake by default)."""
    started = []

    def start(providers=None, workers=1, name="gateway", **settings):
        env = fake_env(fake, providers) if providers is not None else fake_env(fake)
        gateway = Gateway({**env, **{k: str(v) for k, v in settings.items()}}, tmp_path, workers, name).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.kill()


@pytest.fixture
def make_settings(fake, tmp_path):
    """Settings for a gateway in this process: the named providers answer from the fake server (the others
    have no key), MASTER and PUBLIC are accepted, keys live in a SQLite file of this test's own."""
    def make(providers=("groq", "gemini"), **overrides) -> Settings:
        configured = tuple(
            ProviderSettings(p.id, f"{p.id}-secret", fake.base_url(p.id), p.model) if p.id in providers else p
            for p in default_providers())
        # A SECRET_KEY of its own: unset, an app on PostgreSQL would make one in data/ of the working directory.
        defaults = {"master_api_key": MASTER, "public_api_keys": (PUBLIC,), "secret_key": "s" * 32,
                    "database_url": f"sqlite:///{tmp_path / 'keys.db'}"}
        return Settings(providers=configured, **{**defaults, **overrides})
    return make


@pytest.fixture
def make_app(make_settings):
    """Build apps from `make_settings(**overrides)`; each one's key store is closed after the test."""
    apps = []

    def make(**overrides):
        apps.append(create_app(make_settings(**overrides)))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["deliverer"].stop()  # the webhook sender, if a test started it
        # Stops the key-usage flusher thread and lets go of the SQLite file before tmp_path is removed.
        app.extensions["keys"].close()


@pytest.fixture
def make_client(make_app):
    """Flask test clients of apps built from `make_settings(**overrides)`."""
    def make(**overrides):
        return make_app(**overrides).test_client()
    return make


@pytest.fixture
def client(make_client):
    return make_client()


class FakeClock:
    """Time that moves only when a test moves it, so back-offs and resets need no sleeping."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_router(clock):
    """A Router over the given providers on the fake clock, with per-process state of its own unless given a
    store to share (two routers on one store are two workers on one Redis)."""
    def make(providers, *, store=None, failure_threshold=3, failure_cooldown=30.0, probe_seconds=35.0) -> Router:
        return Router(tuple(providers), store or LocalStore(), failure_threshold=failure_threshold,
                      failure_cooldown=failure_cooldown, probe_seconds=probe_seconds, clock=clock)
    return make


@pytest.fixture
def redis_db():
    """This worker's Redis database, empty before and after the test (skip with `needs_redis`)."""
    import redis
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards (skip with `needs_postgres`)."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def gateway_log(caplog):
    """pytest's caplog on the gateway logger, at INFO. Once an app has configured that logger it writes its own
    JSON lines and stops passing records to the root, where caplog listens: here it passes them on again."""
    logger = logging.getLogger("gateway")
    propagate, logger.propagate = logger.propagate, True
    with caplog.at_level(logging.INFO, logger="gateway"):
        yield caplog
    logger.propagate = propagate
