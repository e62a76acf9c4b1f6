"""What the benchmark runs against: the fake upstream directly, our gateway (as gunicorn, the way
tests/gateway.py starts it), a peer gateway given by a start command (LiteLLM's proxy by default), and a
private Redis for the two-worker configuration.

A route is one way in: `/v1/chat/completions` plain or streaming, or `/chat` (which always streams), to an
OpenAI-compatible provider (Groq, pointed at the fake) or to Gemini (its native API, also the fake). Whatever
the client asks, the gateway asks its provider for a stream, so every route's direct baseline is that same
stream request sent straight to the fake."""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Server, free_port, http
from bench.shapes import PLAIN, Shape

ROOT = Path(__file__).resolve().parent.parent
# One key for every gateway: LiteLLM refuses to start without a strong master key.
KEY = "sk-bench-" + "0123456789abcdef" * 4
# Tools the benchmark installs outside the project live in the user's cache, never in the repository.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-gateway-bench"
LITELLM_VENV = Path(os.environ.get("LITELLM_VENV") or CACHE / "litellm-venv")
LITELLM_COMMAND = (f"{LITELLM_VENV}/bin/litellm --config {{config}} --host 127.0.0.1 --port {{port}} "
                   "--num_workers 2")
LITELLM_CONFIG = """model_list:
  - model_name: groq
    litellm_params:
      model: openai/bench
      api_base: {fake_url}
      api_key: x
"""
GROQ, GEMINI = "groq", "gemini"


@dataclass(frozen=True)
class Route:
    endpoint: str  # "v1" or "chat"
    provider: str  # GROQ (OpenAI-compatible) or GEMINI
    stream: bool  # what the client asks (/chat always streams)

    @property
    def label(self) -> str:
        way = "/chat" if self.endpoint == "chat" else f"/v1 {'stream' if self.stream else 'plain'}"
        return f"{way}, {'Gemini' if self.provider == GEMINI else 'OpenAI-compatible'}"


V1_PLAIN = Route("v1", GROQ, False)
V1_STREAM = Route("v1", GROQ, True)
# Every way in, for the matrix (ours only: the peer is configured with the OpenAI-compatible provider alone).
ROUTES = [V1_PLAIN, V1_STREAM, Route("chat", GROQ, True),
          Route("v1", GEMINI, False), Route("v1", GEMINI, True), Route("chat", GEMINI, True)]


def prompt(shape: Shape) -> list[dict]:
    return [{"role": "user", "content": shape.directive}]


@dataclass
class Target:
    name: str
    server: Server | None
    base: str  # http://127.0.0.1:port
    fake_url: str  # the fake's OpenAI-compatible root, http://127.0.0.1:port/v1
    note: str = ""
    key: str | None = KEY
    v1_path: str = "/v1/chat/completions"
    has_v1: bool = True  # False: an old gateway without /v1 is measured on /chat instead
    routes: tuple[Route, ...] = tuple(ROUTES)

    def request(self, route: Route, shape: Shape = PLAIN) -> tuple[str, dict]:
        """Where and what to POST for `route` with the answer shaped `shape`."""
        if route.endpoint == "chat" or not self.has_v1:
            return f"{self.base}/chat", {"messages": prompt(shape), "provider": route.provider}
        return f"{self.base}{self.v1_path}", {"model": route.provider, "messages": prompt(shape),
                                              "stream": route.stream}

    def direct(self, route: Route, shape: Shape = PLAIN) -> tuple[str, dict]:
        """The request the gateway makes for `route`, sent straight to the fake: always a stream."""
        return direct_request(self.fake_url, route.provider, shape)


def direct_request(fake_url: str, provider: str, shape: Shape) -> tuple[str, dict]:
    if provider == GEMINI:
        root = fake_url.rsplit("/v1", 1)[0]
        return (f"{root}/gemini/v1beta/models/bench:streamGenerateContent?alt=sse",
                {"contents": [{"role": "user", "parts": [{"text": shape.directive}]}]})
    return f"{fake_url}/chat/completions", {"model": "bench", "messages": prompt(shape), "stream": True}


def fake_upstream(port: int, log_dir: Path, max_seconds: float) -> Server:
    command = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port), "--max-seconds", str(int(max_seconds))]
    return Server("fake upstream", command, {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT, log_dir / "fake.log")


def snapshot(work: Path, commit: str = "HEAD") -> tuple[Path, str]:
    """The gateway's files at `commit`, exported to `work`, so a run measures one known commit even while
    the working tree is being edited. Returns the folder and the commit's short id."""
    folder = work / "gateway-src"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    short = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    return folder, short


def our_gateway(name: str, fake_url: str, work: Path, source: Path, workers: int = 1,
                redis_url: str | None = None, model: str = GROQ, env: dict | None = None) -> Target:
    """Our gateway under gunicorn from `source`, Groq and Gemini pointed at the fake, auth by master key,
    limits off. `model` is what the main rows ask for: a provider id, or `auto` (the rotation)."""
    port = free_port()
    root = fake_url.rsplit("/v1", 1)[0]
    env = {**os.environ, **{setting: "" for setting in gateway_settings()},
           "GROQ_API_KEY": "x", "GROQ_BASE_URL": fake_url, "GROQ_MODEL": "bench",
           "GEMINI_API_KEY": "x", "GEMINI_BASE_URL": f"{root}/gemini/v1beta", "GEMINI_MODEL": "bench",
           "MASTER_API_KEY": KEY, "REQUIRE_AUTH": "true", "RATE_LIMIT_ENABLED": "false",
           "DATABASE_URL": f"sqlite:///{work / (name + '-keys.db')}", "REDIS_URL": redis_url or "",
           "WEB_CONCURRENCY": str(workers), "PORT": str(port), **(env or {})}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app", "--bind", f"127.0.0.1:{port}"]
    server = Server(name, command, env, source, work / f"{name}.log")
    target = Target(name, server, f"http://127.0.0.1:{port}", fake_url)
    if model != GROQ:  # the main rows go through the rotation (or another provider) instead
        target.routes = (Route("v1", model, False), Route("v1", model, True)) + target.routes[2:]
    return target


def choose_endpoint(target: Target) -> None:
    """Use `/v1/chat/completions` when the gateway has it, else `/chat` (which always streams)."""
    url, body = target.request(target.routes[0])
    status, answer = http(url, body, target.key, timeout=10)
    if status == 200:
        target.note = f"/v1/chat/completions, model {body['model']}"
        return
    target.has_v1 = False
    target.note = f"/chat (/v1/chat/completions answered {status}: {answer[:80]!r})"


def peer_gateway(name: str, command_template: str, fake_url: str, work: Path, path: str) -> Target:
    """Another gateway from a start command with `{port}`, `{fake_url}` and `{config}` (a LiteLLM config
    routing model `groq` to the fake) filled in."""
    port = free_port()
    config = work / f"{name}-config.yaml"
    config.write_text(LITELLM_CONFIG.format(fake_url=fake_url))
    command = shlex.split(command_template.format(port=port, fake_url=fake_url, config=config))
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(LITELLM_MASTER_KEY=KEY, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MODE="PRODUCTION",
               LITELLM_LOG="ERROR")
    server = Server(name, command, env, work, work / f"{name}.log")
    return Target(name, server, f"http://127.0.0.1:{port}", fake_url, note=path, v1_path=path,
                  routes=(V1_PLAIN, V1_STREAM))


class RedisServer:
    """A private redis-server on a free loopback port, so the counts read from it (INFO) are this run's
    alone, whatever else uses the machine's Redis. Stops with the benchmark."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.server = Server("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--maxclients", "20000"],
                             dict(os.environ), work, work / "redis.log")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.server.tail()}")
            try:
                redis_info(self.port)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        self.server.stop()


def redis_info(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """`INFO all` of a Redis, as name -> value (a raw RESP call: the benchmark needs no Redis client)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
        data = b""
        while b"\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                raise OSError("Redis closed the connection")
            data += more
        head, _, data = data.partition(b"\r\n")
        if not head.startswith(b"$"):
            raise OSError(f"Redis answered {head[:100]!r}")
        size = int(head[1:])
        while len(data) < size:
            more = sock.recv(65536)
            if not more:
                raise OSError("Redis closed the connection")
            data += more
    info = {}
    for line in data[:size].decode().splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            info[name] = value
    return info


def gateway_settings() -> list[str]:
    """Every setting the gateway reads, blanked so a developer's .env cannot leak into a run
    (python-dotenv never overrides a variable that is already set)."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.gateway import SETTINGS
        return list(SETTINGS)
    except ImportError:
        from providers import PROVIDER_CLASSES
        return [name for cls in PROVIDER_CLASSES for name in cls.setting_names()] + ["REDIS_URL", "DATABASE_URL"]
