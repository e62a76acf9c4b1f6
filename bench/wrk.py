"""Non-streaming load with wrk: requests per second and latency percentiles at a set concurrency."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")


@dataclass(frozen=True)
class LoadResult:
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write, timeout errors and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (bench/run does it when run as root)")
    return path


def load(url: str, body: dict, connections: int, seconds: float, key: str | None = None) -> LoadResult:
    """Run wrk against `url` (loopback only) for `seconds` with `connections` keep-alive connections."""
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"the benchmark only sends traffic to 127.0.0.1, not {url}")
    threads = min(connections, 2)
    env = {**os.environ, "BENCH_BODY": json.dumps(body), "BENCH_AUTH": key or ""}
    command = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(SCRIPT), url]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures (exit {out.returncode}): {out.stderr.strip() or out.stdout}")
    figures = json.loads(line[len("BENCH "):])
    return LoadResult(connections=connections, requests=figures["requests"],
                      seconds=figures["duration_us"] / 1e6, p50_ms=figures["p50_us"] / 1000,
                      p99_ms=figures["p99_us"] / 1000, errors=sum(figures["errors"].values()))
