"""The benchmark: `python -m bench [--quick|--full]` (bench/run sets up wrk, the venv and LiteLLM first).

For each configuration (ours on one worker; ours with Redis and two workers; a peer gateway), in one run
and against one fake upstream: non-streaming load at c=1, 16, 64 and concurrent streams at 100 and 500,
each paired with the same load sent to the fake directly, and the gateway's memory during the streams.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from bench import report
from bench.procs import MemorySampler, free_port, http
from bench.report import OURS, OURS_REDIS, PEER, TargetResult
from bench.streams import sequential, streams
from bench.targets import LITELLM_COMMAND, LITELLM_VENV, REDIS_DB_URL, ROOT, Target, choose_endpoint, \
    fake_upstream, our_gateway, peer_gateway, snapshot
from bench.wrk import load, require_wrk

RESULTS = ROOT / "bench" / "results"
SEQUENTIAL = 20  # single streams in a row, for time to first byte with nothing queued


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 s per load point, 1 s warm-up (default)")
    mode.add_argument("--full", action="store_true", help="10 s per load point, 3 s warm-up")
    parser.add_argument("--seconds", type=float, help="seconds per load point (overrides the mode)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--only", nargs="+", choices=[OURS, OURS_REDIS, PEER], default=[OURS, OURS_REDIS, PEER],
                        help="configurations to run")
    parser.add_argument("--model", default="groq", help="model our gateway is asked for: groq names the provider; "
                        "auto goes through the rotation (with Redis: its reads and cursor on every request)")
    parser.add_argument("--redis-url", default=REDIS_DB_URL, help="Redis for the two-worker configuration")
    parser.add_argument("--peer-name", default="LiteLLM")
    parser.add_argument("--peer-cmd", default=LITELLM_COMMAND,
                        help="start command of the peer gateway; {port}, {fake_url} and {config} are filled in")
    parser.add_argument("--peer-path", default="/v1/chat/completions")
    parser.add_argument("--peer-ready-seconds", type=float, default=180)
    parser.add_argument("--commit", default="HEAD", help="the gateway commit to measure (exported to a temporary "
                        "folder, so edits in progress do not matter)")
    parser.add_argument("--working-tree", action="store_true", help="measure the working tree as it is instead")
    parser.add_argument("--source", type=Path, help="measure the gateway files in this folder (an experiment)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="print the report without writing it")
    return parser.parse_args()


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work = args, work
        self.seconds = args.seconds or (10 if args.full else 3)
        self.warmup = 3 if args.full else 1
        if args.source:
            self.source, self.code = args.source.resolve(), f"files in {args.source}"
        elif args.working_tree:
            self.source, self.code = ROOT, "working tree"
        else:
            self.source, commit = snapshot(work, args.commit)
            self.code = f"commit {commit}"

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def run_target(self, target: Target, fake_url: str, label: str) -> TargetResult:
        result = TargetResult(label)
        try:
            self.start(target)
        except RuntimeError as exc:
            target.server.stop()
            result.skipped = str(exc)[:600]
            self.say(f"{label}: SKIPPED: {result.skipped}")
            return result
        result.note = target.note
        direct_url = f"{fake_url}/chat/completions"
        try:
            self.say(f"{label}: up ({len(target.server.pids())} processes), endpoint {target.note}; warming up")
            load(target.chat_url, target.plain_body, 16, self.warmup, target.key)
            self.run_load(target, direct_url, result)
            time.sleep(1)  # let the last load's connections close before measuring idle memory
            pids = target.server.pids()
            result.processes, result.idle_kb = len(pids), target.server.rss_kb(pids)
            if target.name == "ours-redis":
                result.redis_per_request = redis_commands(target, self.args.redis_url)
            self.run_streams(target, direct_url, result)
        except RuntimeError as exc:  # e.g. the server died under load: keep what was measured, go on
            alive = target.server.process.poll() is None
            result.failed = f"{exc}"[:300] + ("" if alive else f"; the server had exited: {target.server.tail()}")
            self.say(f"{label}: FAILED during the run: {result.failed}")
        finally:
            target.server.stop()
            result.problems = target.server.problems()
        return result

    def start(self, target: Target) -> None:
        """Start the gateway and wait until it answers a chat request; RuntimeError says why not."""
        target.server.start()
        if target.name.startswith("ours"):
            target.server.wait_ready(target.chat_url.rsplit("/v1/", 1)[0] + "/health", None, 30)
            choose_endpoint(target)
        else:
            target.server.wait_ready(target.chat_url, target.plain_body, self.args.peer_ready_seconds, target.key)
        status, answer = http(target.chat_url, target.plain_body, target.key, timeout=10)
        if status != 200:
            raise RuntimeError(f"{target.chat_url} answered {status}: {answer[:200]}")

    def run_load(self, target: Target, direct_url: str, result: TargetResult) -> None:
        for c in self.args.concurrency:
            direct = load(direct_url, target.direct_plain_body, c, self.seconds)
            via = load(target.chat_url, target.plain_body, c, self.seconds, target.key)
            result.load[c] = (direct, via)
            self.say(f"{result.label}: c={c}: {via.rps:,.0f} req/s p50 {via.p50_ms:.2f} ms p99 {via.p99_ms:.2f} ms, "
                     f"errors {via.errors} | direct {direct.rps:,.0f} req/s p50 {direct.p50_ms:.2f} ms "
                     f"p99 {direct.p99_ms:.2f} ms")

    def run_streams(self, target: Target, direct_url: str, result: TargetResult) -> None:
        direct = sequential(direct_url, target.direct_stream_body, SEQUENTIAL)
        via = sequential(target.chat_url, target.stream_body, SEQUENTIAL, target.key)
        result.streams[1] = (direct, via)
        self.say(f"{result.label}: 1 stream at a time: TTFB p50 {report.ms(via.ttfb(50))} ms, {via.completed} "
                 f"completed | direct {report.ms(direct.ttfb(50))} ms")
        for n in self.args.streams:
            direct = streams(direct_url, target.direct_stream_body, n)
            with MemorySampler(target.server) as sampler:
                via = streams(target.chat_url, target.stream_body, n, target.key)
            result.streams[n], result.peak_kb[n] = (direct, via), sampler.peak_kb
            self.say(f"{result.label}: {n} streams: TTFB p50 {report.ms(via.ttfb(50))} ms p99 "
                     f"{report.ms(via.ttfb(99))} ms, {via.completed} completed, errors {via.errors or 0}, peak RSS "
                     f"{sampler.peak_kb / 1024:.1f} MB | direct TTFB p50 {report.ms(direct.ttfb(50))} ms")

    def main(self) -> int:
        require_wrk()
        started = datetime.now(timezone.utc)
        mode = "full" if self.args.full else "quick"
        peer_python = str(LITELLM_VENV / "bin" / "python") if PEER in self.args.only and "litellm" in \
            self.args.peer_cmd else None
        facts = report.machine_facts(peer_python, self.code)  # before the run: the load average is the idle one
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        # The fake stops by itself well after any run could end.
        fake = fake_upstream(fake_port, self.work, max_seconds=3600).start()
        results: dict[str, TargetResult] = {}
        ceiling = None
        try:
            fake.wait_ready(f"{fake_url}/models", None, 20)
            ceiling = load(f"{fake_url}/chat/completions", {"model": "bench", "messages": [], "stream": False}, 64,
                           self.seconds)
            self.say(f"fake upstream ceiling: {ceiling.rps:,.0f} req/s at c=64 (p50 {ceiling.p50_ms:.2f} ms)")
            for key, target, label in self.targets(fake_url):
                if key not in self.args.only:
                    continue
                if isinstance(target, str):
                    results[key] = TargetResult(label, skipped=target)
                    self.say(f"{label}: SKIPPED: {target}")
                    continue
                results[key] = self.run_target(target, fake_url, label)
        finally:
            fake.stop()
        text = report.render(results, ceiling, facts, mode, started.strftime("%Y-%m-%d %H:%M UTC"))
        print()
        print(text)
        if not self.args.no_write:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{started:%Y-%m-%d}-{mode}.md"
            path.write_text(text)
            print(f"written to {path.relative_to(ROOT)}")
        return 0

    def targets(self, fake_url: str):
        yield OURS, our_gateway("ours", fake_url, self.work, self.source, model=self.args.model), "ours, 1 worker"
        redis = self.redis_ready() if OURS_REDIS in self.args.only else "not selected"
        redis_target = our_gateway("ours-redis", fake_url, self.work, self.source, workers=2,
                                   redis_url=self.args.redis_url, model=self.args.model) if redis is True else redis
        yield OURS_REDIS, redis_target, "ours, Redis, 2 workers"
        peer_bin = self.args.peer_cmd.split()[0]
        if self.args.peer_cmd == LITELLM_COMMAND and not Path(peer_bin).exists():
            yield PEER, (f"{peer_bin} not found: install LiteLLM with bench/install_litellm.sh (bench/run does), or "
                         f"give another gateway with --peer-cmd"), f"{self.args.peer_name}"
        else:
            yield PEER, peer_gateway("peer", self.args.peer_cmd, fake_url, self.work, self.args.peer_path), \
                f"{self.args.peer_name}, 2 workers" if "--num_workers 2" in self.args.peer_cmd \
                else self.args.peer_name

    def redis_ready(self) -> bool | str:
        """True when Redis answers (its benchmark database emptied first), else why not."""
        url = self.args.redis_url
        db = url.rsplit("/", 1)[1] if url.count("/") >= 3 else "0"
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        if host not in ("127.0.0.1", "localhost"):
            return f"{url} is not on 127.0.0.1"
        try:
            out = subprocess.run(["redis-cli", "-h", host, "-p", port or "6379", "-n", db, "FLUSHDB"],
                                 capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"redis-cli failed: {exc}"
        return True if out.stdout.strip() == "OK" else f"Redis at {url} did not answer: {out.stdout}{out.stderr}"


def redis_commands(target: Target, redis_url: str, requests: int = 100) -> dict[str, float]:
    """Redis commands per request in the gateway's database, by name: MONITOR while `requests` requests
    are sent one at a time (after the load runs, so it slows none of the figures)."""
    parts = urlsplit(redis_url)
    db = parts.path.strip("/") or "0"
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as monitor:
        monitor.sendall(b"MONITOR\r\n")
        sent = sum(http(target.chat_url, target.plain_body, target.key, timeout=10)[0] == 200 for _ in range(requests))
        time.sleep(0.3)  # the last answer records itself after its body is sent
        monitor.settimeout(0.5)
        out = b""
        for _ in range(10_000):  # bounded: read until Redis has nothing more to say
            try:
                data = monitor.recv(1 << 20)
            except TimeoutError:
                break
            if not data:
                break
            out += data
    counts: dict[str, float] = {}
    for line in out.decode(errors="replace").splitlines():
        if f"[{db} " in line:  # `+1732... [12 127.0.0.1:5555] "HINCRBY" ...`
            name = line.split("]", 1)[1].split('"')[1].lower()
            counts[name] = counts.get(name, 0) + 1
    return {name: n / sent for name, n in counts.items()} if sent else {}


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    try:
        return Bench(args, work).main()
    finally:
        if args.keep_logs:
            print(f"servers' logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
