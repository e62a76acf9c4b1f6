"""What the benchmark runs against: the fake upstream directly, our gateway (as gunicorn, the way
tests/gateway.py starts it), and a peer gateway given by a start command (LiteLLM's proxy by default)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Server, free_port, http

ROOT = Path(__file__).resolve().parent.parent
# One key for every gateway: LiteLLM refuses to start without a strong master key.
KEY = "sk-bench-" + "0123456789abcdef" * 4
REDIS_DB_URL = "redis://127.0.0.1:6379/12"  # a database of its own: the tests use 7
STREAM_SHAPE = "bench:chunks=20,interval_ms=10,ttft_ms=0"
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


def openai_body(content: str, stream: bool, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}


@dataclass
class Target:
    name: str
    server: Server | None
    chat_url: str  # where both scenarios POST
    plain_body: dict  # non-streaming scenario
    stream_body: dict  # streaming scenario
    # The same requests sent straight to the fake: what the gateway itself asks its upstream for.
    direct_plain_body: dict
    direct_stream_body: dict
    note: str = ""
    key: str | None = KEY


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
                redis_url: str | None = None, model: str = "groq") -> Target:
    """Our gateway under gunicorn from `source`, Groq pointed at the fake, auth by master key, limits off."""
    port = free_port()
    env = {**os.environ, **{setting: "" for setting in gateway_settings()},
           "GROQ_API_KEY": "x", "GROQ_BASE_URL": fake_url, "GROQ_MODEL": "bench",
           "MASTER_API_KEY": KEY, "REQUIRE_AUTH": "true", "RATE_LIMIT_ENABLED": "false",
           "DATABASE_URL": f"sqlite:///{work / (name + '-keys.db')}", "REDIS_URL": redis_url or "",
           "WEB_CONCURRENCY": str(workers), "PORT": str(port)}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app", "--bind", f"127.0.0.1:{port}"]
    server = Server(name, command, env, source, work / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    return Target(name, server, f"{base}/v1/chat/completions", openai_body("hi", False, model),
                  openai_body(STREAM_SHAPE, True, model), openai_body("hi", False, "bench"),
                  openai_body(STREAM_SHAPE, True, "bench"))


def choose_endpoint(target: Target) -> None:
    """Use `/v1/chat/completions` when the gateway has it, else `/chat` (which always streams, so its
    upstream call is a stream too, and the direct baseline asks the fake for one)."""
    status, answer = http(target.chat_url, target.plain_body, target.key, timeout=10)
    if status == 200:
        target.note = f"/v1/chat/completions, model {target.plain_body['model']}"
        return
    base = target.chat_url.rsplit("/v1/", 1)[0]
    target.chat_url = f"{base}/chat"
    target.plain_body = {"messages": [{"role": "user", "content": "hi"}]}
    target.stream_body = {"messages": [{"role": "user", "content": STREAM_SHAPE}]}
    target.direct_plain_body = openai_body("hi", True, "bench")
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
    return Target(name, server, f"http://127.0.0.1:{port}{path}", openai_body("hi", False, "groq"),
                  openai_body(STREAM_SHAPE, True, "groq"), openai_body("hi", False, "bench"),
                  openai_body(STREAM_SHAPE, True, "bench"), note=path)


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
