"""The gateway as a user runs it: real gunicorn with gevent workers, in a subprocess, on a free port."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from providers import PROVIDER_CLASSES

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_IDS = [cls.id for cls in PROVIDER_CLASSES]
# Every setting the gateway reads, so a developer's .env cannot leak into a test run
# (python-dotenv never overrides a variable that is already set, even to "").
SETTINGS = [name for cls in PROVIDER_CLASSES for name in cls.setting_names()] + [
    "PORT", "DEBUG", "CORS_ORIGINS", "REQUIRE_AUTH", "MASTER_API_KEY", "PUBLIC_API_KEYS", "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_MS", "DATABASE_URL", "REDIS_URL", "CONNECT_TIMEOUT",
    "FIRST_TOKEN_TIMEOUT", "IDLE_TIMEOUT", "MAX_ATTEMPTS", "FAILURE_THRESHOLD", "FAILURE_COOLDOWN",
    "WEB_CONCURRENCY", "REDIS_FAIL_OPEN", "MODEL_CHECK_INTERVAL", "HOST", "BODY_TIMEOUT", "MAX_ANSWER_BYTES",
    "ANSWER_TIMEOUT", "METRICS_REQUIRE_KEY", "TRUSTED_PROXIES", "USAGE_RETENTION_DAYS", "CACHE_TTL", "CACHE_MODE",
    "CACHE_SCOPE", "CACHE_MAX_ENTRIES", "CACHE_MAX_BYTES", "CACHE_MAX_ENTRY_BYTES", "CACHE_HITS_RATE_LIMITED",
    "WEBHOOK_TIMEOUT", "WEBHOOK_RETRY_DELAY", "SECRET_KEY"]
MASTER_KEY = "master-test-key"


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Wait for a state change that the gateway only reports when asked (there is no event to subscribe to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def health_state(gateway: Gateway, provider_id: str) -> dict:
    providers = requests.get(f"{gateway.url}/health", timeout=5).json()["providers"]
    return next(p for p in providers if p["id"] == provider_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_env(fake, providers=PROVIDER_IDS) -> dict:
    """Settings pointing the chosen providers at the fake provider server."""
    env = {}
    for cls in PROVIDER_CLASSES:
        if cls.id in providers:
            env[cls.key_setting] = f"{cls.id}-secret-key"
            env[f"{cls.env_prefix}_BASE_URL"] = fake.base_url(cls.id)
    return env


class Forked:
    """A gunicorn master started by tests/forkserver.py: what the tests use of a `Popen`. It is the fork
    server's child, not ours, so its end is seen through a pidfd (the kernel reaps it)."""

    def __init__(self, pid: int):
        self.pid = pid
        self._ended = os.pidfd_open(pid)

    def poll(self) -> int | None:
        """0 once the process has ended (its exit status goes to the fork server, which does not keep it)."""
        return 0 if select.select([self._ended], [], [], 0)[0] else None

    def wait(self, timeout: float) -> int:
        if not select.select([self._ended], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(f"gunicorn {self.pid}", timeout)
        os.close(self._ended)
        self._ended = os.open(os.devnull, os.O_RDONLY)  # always readable: ended
        return 0

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


_server: list[subprocess.Popen] = []


def forked_gunicorn(args: list[str], env: dict, log_path: Path) -> Forked | subprocess.Popen:
    """`python -m gunicorn <args>` in the repository with `env`, its output to `log_path`, forked from this test
    process's fork server (started on first use; it stops when its stdin closes, with this process). Where the
    system cannot watch another process's child (no pidfd: not Linux), a new interpreter as before."""
    if not hasattr(os, "pidfd_open"):
        return subprocess.Popen([sys.executable, "-m", "gunicorn", *args], cwd=ROOT, env=env,
                                stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    if not _server or _server[0].poll() is not None:
        _server[:] = [subprocess.Popen([sys.executable, "-m", "tests.forkserver"], cwd=ROOT, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)]
    server = _server[0]
    server.stdin.write(json.dumps({"args": args, "env": env, "cwd": str(ROOT), "log": str(log_path)}) + "\n")
    server.stdin.flush()
    return Forked(int(server.stdout.readline()))


class Gateway:
    def __init__(self, env: dict, tmp_path: Path, workers: int = 1, name: str = "gateway"):
        # SECRET_KEY set: unset, a gateway on PostgreSQL would keep one in data/ of the repository.
        self.env = {**{name: "" for name in SETTINGS}, "MASTER_API_KEY": MASTER_KEY, "SECRET_KEY": "g" * 32,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}", **env}
        self.workers = workers
        self.log_path = tmp_path / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Gateway:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **self.env, "PORT": str(port), "WEB_CONCURRENCY": str(self.workers)}
        self.process = forked_gunicorn(["-c", "gunicorn.conf.py", "app:app", "--bind", f"127.0.0.1:{port}"], env,
                                       self.log_path)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log()}")
            try:
                if requests.get(f"{self.url}/health/live", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.02)  # the port is not open yet: nothing to wait on but the clock
        raise RuntimeError(f"gateway did not start: {self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the master and its workers, as a crash would."""
        if self.process and self.process.poll() is None:
            if sig == signal.SIGKILL:
                subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post_chat(self, content="hi", key=MASTER_KEY, stream=False, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        body = kwargs.pop("json", {"messages": [{"role": "user", "content": content}]})
        return requests.post(f"{self.url}/chat", json=body, headers=headers, stream=stream, timeout=30, **kwargs)

    def admin(self, method: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/admin/keys", headers={"X-API-Key": MASTER_KEY},
                                timeout=10, **kwargs)
