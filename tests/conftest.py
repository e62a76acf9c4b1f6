import pytest

from tests.fakeprovider import FakeProviders
from tests.gateway import Gateway, fake_env


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
