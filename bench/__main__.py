"""The benchmark: `python -m bench [--quick|--full]` (bench/run sets up wrk, the venv and LiteLLM first).

For each configuration (ours on one worker; ours with Redis and two workers; a peer gateway), in one run
and against one fake upstream that streams realistic answers (bench/shapes.py: 20 chunks for a short answer,
200 for a long one): plain requests at c=1, 16, 64; concurrent streams at 100 and 500 (20 chunks 10 ms apart);
100 fast streams (200 chunks 1 ms apart) with chunks relayed per second, CPU per chunk and a byte-for-byte
check of every answer's text; thousands of slow streams (1 chunk a second) with memory per stream; Redis round
trips per request; and, for ours on one worker, every way in (/v1 plain and streaming, /chat) to an
OpenAI-compatible provider and to Gemini. Each figure is paired with the same load sent to the fake directly.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import report
from bench.procs import MemorySampler, free_port, http
from bench.report import OURS, OURS_REDIS, PEER, FastResult, RouteResult, TargetResult
from bench.shapes import FAST, PLAIN, SLOW, STREAM
from bench.streams import sequential, streams
from bench.targets import GROQ, LITELLM_COMMAND, LITELLM_VENV, ROOT, V1_PLAIN, RedisServer, Target, choose_endpoint, \
    direct_request, fake_upstream, our_gateway, peer_gateway, redis_info, snapshot
from bench.wrk import load, require_wrk

RESULTS = ROOT / "bench" / "results"
SEQUENTIAL = 20  # single streams in a row, for time to first byte with nothing queued
REDIS_SAMPLE = 100  # requests, one at a time, over which Redis round trips are counted


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 s per load point, 1 s warm-up (default)")
    mode.add_argument("--full", action="store_true", help="10 s per load point, 3 s warm-up")
    parser.add_argument("--seconds", type=float, help="seconds per load point (overrides the mode)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--fast-streams", type=int, default=100, help="concurrent fast streams (0: skip)")
    parser.add_argument("--slow-streams", type=int, default=5000,
                        help="concurrent slow streams, ours on one worker (0: skip)")
    parser.add_argument("--no-matrix", action="store_true", help="skip every-way-in rows (/chat, Gemini)")
    parser.add_argument("--worker-connections", type=int, help="an experiment: our gunicorn's worker_connections "
                        "(GUNICORN_CMD_ARGS) instead of gunicorn.conf.py's")
    parser.add_argument("--only", nargs="+", choices=[OURS, OURS_REDIS, PEER], default=[OURS, OURS_REDIS, PEER],
                        help="configurations to run")
    parser.add_argument("--model", default=GROQ, help="model our gateway is asked for: groq names the provider; "
                        "auto goes through the rotation (with Redis: its reads and cursor on every request)")
    parser.add_argument("--redis-url", help="an existing Redis for the two-worker configuration (its database is "
                        "emptied first); by default the benchmark starts a private redis-server, so the round "
                        "trips it counts are the gateway's alone")
    parser.add_argument("--peer-name", default="LiteLLM")
    parser.add_argument("--peer-cmd", default=LITELLM_COMMAND,
                        help="start command of the peer gateway; {port}, {fake_url} and {config} are filled in")
    parser.add_argument("--peer-path", default="/v1/chat/completions")
    parser.add_argument("--peer-ready-seconds", type=float, default=180)
    parser.add_argument("--commit", default="HEAD", help="the gateway commit to measure (exported to a temporary "
                        "folder, so edits in progress do not matter)")
    parser.add_argument("--working-tree", action="store_true", help="measure the working tree as it is instead")
    parser.add_argument("--source", type=Path, help="measure the gateway files in this folder (an experiment)")
    parser.add_argument("--tag", default="", help="added to the result file's name")
    parser.add_argument("--describe", help="what --source holds, as the report should name it")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="print the report without writing it")
    return parser.parse_args()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (from /proc; a process gone counts 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work = args, work
        self.seconds = args.seconds or (10 if args.full else 3)
        self.warmup = 3 if args.full else 1
        if args.source:
            self.source, self.code = args.source.resolve(), args.describe or f"files in {args.source}"
        elif args.working_tree:
            self.source, self.code = ROOT, "working tree"
        else:
            self.source, commit = snapshot(work, args.commit)
            self.code = f"commit {commit}"
        self.direct_loads: dict[tuple, object] = {}  # (provider, c) -> LoadResult, shared by the routes

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def run_target(self, target: Target, label: str, redis: RedisServer | None = None) -> TargetResult:
        result = TargetResult(label)
        try:
            self.start(target)
        except RuntimeError as exc:
            target.server.stop()
            result.skipped = str(exc)[:600]
            self.say(f"{label}: SKIPPED: {result.skipped}")
            return result
        result.note = target.note
        try:
            self.say(f"{label}: up ({len(target.server.pids())} processes), endpoint {target.note}; warming up")
            url, body = target.request(target.routes[0])
            load(url, body, 16, self.warmup, target.key)
            self.run_load(target, result)
            time.sleep(1)  # let the last load's connections close before measuring idle memory
            pids = target.server.pids()
            result.processes, result.idle_kb = len(pids), target.server.rss_kb(pids)
            if redis is not None:
                result.redis = self.redis_round_trips(target, redis)
            self.run_streams(target, result)
            if self.args.fast_streams:
                result.fast = self.fast(target, target.routes[1], result.label)
            if self.args.slow_streams and target.name == OURS:
                self.run_slow(target, result)
            if target.name == OURS and not self.args.no_matrix:
                self.run_matrix(target, result)
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
        url, body = target.request(target.routes[0])
        if target.name.startswith("ours"):
            target.server.wait_ready(f"{target.base}/health", None, 30)
            choose_endpoint(target)
            url, body = target.request(target.routes[0])
        else:
            target.server.wait_ready(url, body, self.args.peer_ready_seconds, target.key)
        status, answer = http(url, body, target.key, timeout=10)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}: {answer[:200]}")

    def direct_load(self, target: Target, provider: str, c: int):
        """The fake's own figures for the stream the gateway asks it for, measured once per run."""
        if (provider, c) not in self.direct_loads:
            url, body = direct_request(target.fake_url, provider, PLAIN)
            self.direct_loads[provider, c] = load(url, body, c, self.seconds)
        return self.direct_loads[provider, c]

    def run_load(self, target: Target, result: TargetResult) -> None:
        route = target.routes[0]
        url, body = target.request(route)
        for c in self.args.concurrency:
            # Direct is measured again next to every target's run (not shared), so each pair is back to back.
            durl, dbody = target.direct(route)
            direct = load(durl, dbody, c, self.seconds)
            via = load(url, body, c, self.seconds, target.key)
            result.load[c] = (direct, via)
            self.say(f"{result.label}: c={c}: {via.rps:,.0f} req/s p50 {via.p50_ms:.2f} ms p99 {via.p99_ms:.2f} ms, "
                     f"errors {via.errors} | direct {direct.rps:,.0f} req/s p50 {direct.p50_ms:.2f} ms "
                     f"p99 {direct.p99_ms:.2f} ms")
            if route.provider == GROQ:
                self.direct_loads[GROQ, c] = direct

    def run_streams(self, target: Target, result: TargetResult) -> None:
        route = target.routes[1]
        durl, dbody = target.direct(route, STREAM)
        url, body = target.request(route, STREAM)
        direct = sequential(durl, dbody, SEQUENTIAL, chunks=STREAM.chunks)
        via = sequential(url, body, SEQUENTIAL, target.key, chunks=STREAM.chunks)
        result.streams[1] = (direct, via)
        self.say(f"{result.label}: 1 stream at a time: TTFB p50 {report.ms(via.ttfb(50))} ms, {via.completed} "
                 f"completed | direct {report.ms(direct.ttfb(50))} ms")
        for n in self.args.streams:
            direct = streams(durl, dbody, n, chunks=STREAM.chunks)
            with MemorySampler(target.server) as sampler:
                via = streams(url, body, n, target.key, chunks=STREAM.chunks)
            result.streams[n], result.peak_kb[n] = (direct, via), sampler.peak_kb
            self.say(f"{result.label}: {n} streams: TTFB p50 {report.ms(via.ttfb(50))} ms p99 "
                     f"{report.ms(via.ttfb(99))} ms, {via.completed} completed, {via.identical} identical, errors "
                     f"{via.errors or 0}, peak RSS {sampler.peak_kb / 1024:.1f} MB | direct TTFB p50 "
                     f"{report.ms(direct.ttfb(50))} ms")

    def fast(self, target: Target, route, label: str) -> FastResult:
        """`fast_streams` concurrent streams of 200 chunks 1 ms apart: total time against direct, chunks
        relayed per second, the server's CPU per chunk, and every answer checked byte for byte."""
        n = self.args.fast_streams
        direct = streams(*target.direct(route, FAST), n, chunks=FAST.chunks)  # measured next to each, as a pair
        url, body = target.request(route, FAST)
        pids = target.server.pids()
        before = cpu_seconds(pids)
        via = streams(url, body, n, target.key, chunks=FAST.chunks)
        cpu = cpu_seconds(pids) - before
        relayed = via.completed * FAST.chunks
        fast = FastResult(direct, via, cpu * 1e6 / relayed if relayed else None)
        self.say(f"{label} {route.label}: {n} fast streams: total p50 {report.ms(via.total(50))} ms "
                 f"({report.ms(direct.total(50))} direct), {report.rate(via.chunks_per_second)} chunks/s, "
                 f"{report.ms(fast.cpu_us_per_chunk)} us CPU per chunk, {via.completed} completed, {via.identical} "
                 f"identical, errors {via.errors or 0}")
        return fast

    def run_slow(self, target: Target, result: TargetResult) -> None:
        n = self.args.slow_streams
        route = target.routes[1]
        durl, dbody = target.direct(route, SLOW)
        url, body = target.request(route, SLOW)
        time.sleep(1)
        idle = target.server.rss_kb()
        direct = streams(durl, dbody, n, chunks=SLOW.chunks, deadline=120)
        with MemorySampler(target.server) as sampler:
            via = streams(url, body, n, target.key, chunks=SLOW.chunks, deadline=120)
        result.slow = (direct, via, idle, sampler.peak_kb)
        self.say(f"{result.label}: {n} slow streams: {via.completed} completed, {via.identical} identical, errors "
                 f"{via.errors or 0}, most open at once {via.max_open}, TTFB p50 {report.ms(via.ttfb(50))} ms p99 "
                 f"{report.ms(via.ttfb(99))} ms, peak RSS {sampler.peak_kb / 1024:.1f} MB (idle {idle / 1024:.1f}) "
                 f"| direct {direct.completed} completed")

    def run_matrix(self, target: Target, result: TargetResult) -> None:
        """Every way in at c=1 and c=64 (a plain answer of 20 chunks, all at once) and as fast streams."""
        for route in target.routes:
            rr = RouteResult(route.label)
            url, body = target.request(route)
            for c in (1, 64):
                if route == target.routes[0] and c in result.load:
                    rr.load[c] = result.load[c]
                    continue
                direct = self.direct_load(target, route.provider, c)
                rr.load[c] = (direct, load(url, body, c, self.seconds, target.key))
            if self.args.fast_streams:
                rr.fast = result.fast if route == target.routes[1] and result.fast else \
                    self.fast(target, route, result.label)
            result.matrix.append(rr)
            v1, v64 = rr.load[1][1], rr.load[64][1]
            self.say(f"{result.label} {route.label}: c=1 p50 +{v1.p50_ms - rr.load[1][0].p50_ms:.2f} ms, c=64 "
                     f"{v64.rps:,.0f} req/s, errors {v1.errors + v64.errors}")

    def redis_with_limits(self, fake_url: str, redis: RedisServer, result: TargetResult) -> None:
        """The round trips again with per-key rate limiting on (as deployed; the load runs have it off), on
        a second instance started just for this count."""
        target = our_gateway("ours-redis-limits", fake_url, self.work, self.source, workers=2, redis_url=redis.url,
                             model=self.args.model, env={"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_MAX": "1000000"})
        try:
            self.start(target)
            counts = self.redis_round_trips(target, redis)
            result.redis.update({f"{model}, rate limit on": figures for model, figures in counts.items()})
        except RuntimeError as exc:
            self.say(f"Redis count with rate limiting on: SKIPPED: {exc}")
        finally:
            target.server.stop()

    def redis_round_trips(self, target: Target, redis: RedisServer) -> dict:
        """Redis round trips and commands per request, by model asked (`groq` names a provider, `auto` is the
        rotation): `INFO` of the private Redis before and after REDIS_SAMPLE requests sent one at a time.
        A round trip is one read Redis processed (`total_reads_processed`: a pipeline arrives in one read)."""
        out = {}
        for model in dict.fromkeys([target.routes[0].provider, "auto"]):
            url, body = target.request(V1_PLAIN)
            body = {**body, "model": model}
            for _ in range(4):  # warm: every worker has its Redis connections open
                http(url, body, target.key, timeout=10)
            time.sleep(0.3)
            before = redis_info(redis.port)
            sent = sum(http(url, body, target.key, timeout=10)[0] == 200 for _ in range(REDIS_SAMPLE))
            time.sleep(0.3)  # an answer records itself after its body is sent
            after = redis_info(redis.port)
            if not sent:
                continue
            reads = int(after["total_reads_processed"]) - int(before["total_reads_processed"]) - 1  # the INFO
            commands = {}
            for name, value in after.items():
                if name.startswith("cmdstat_") and name != "cmdstat_info":
                    calls = int(value.split(",")[0].split("=")[1])
                    was = before.get(name)
                    calls -= int(was.split(",")[0].split("=")[1]) if was else 0
                    if calls:
                        commands[name.removeprefix("cmdstat_")] = calls / sent
            out[model] = {"round_trips": reads / sent, "commands": commands}
            self.say(f"{target.name}: model {model}: {reads / sent:.2f} Redis round trips and "
                     f"{sum(commands.values()):.2f} commands per request: {commands}")
        return out

    def main(self) -> int:
        require_wrk()
        started = datetime.now(timezone.utc)
        mode = "full" if self.args.full else "quick"
        peer_python = str(LITELLM_VENV / "bin" / "python") if PEER in self.args.only and "litellm" in \
            self.args.peer_cmd else None
        facts = report.machine_facts(peer_python, self.code)  # before the run: the load average is the idle one
        facts["peer"] = self.peer_fact()
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        # The fake stops by itself well after any run could end.
        fake = fake_upstream(fake_port, self.work, max_seconds=3600).start()
        results: dict[str, TargetResult] = {}
        ceiling = None
        try:
            fake.wait_ready(f"{fake_url}/models", None, 20)
            url, body = direct_request(fake_url, GROQ, PLAIN)
            ceiling = load(url, body, 64, self.seconds)
            self.say(f"fake upstream ceiling: {ceiling.rps:,.0f} req/s at c=64 (p50 {ceiling.p50_ms:.2f} ms), "
                     f"a {PLAIN.describe()} stream")
            for key, label in ((OURS, "ours, 1 worker"), (OURS_REDIS, "ours, Redis, 2 workers"), (PEER, None)):
                if key in self.args.only:
                    results[key] = self.run_one(key, label, fake_url)
        finally:
            fake.stop()
        text = report.render(results, ceiling, facts, mode, started.strftime("%Y-%m-%d %H:%M UTC"),
                             self.args.fast_streams, self.args.slow_streams)
        print()
        print(text)
        if not self.args.no_write:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{started:%Y-%m-%d}-{mode}{'-' + self.args.tag if self.args.tag else ''}.md"
            path.write_text(text)
            print(f"written to {path.relative_to(ROOT)}")
        return 0

    def peer_fact(self) -> str:
        if PEER not in self.args.only:
            return "not run (--only)"
        if self.args.peer_cmd == LITELLM_COMMAND and not Path(self.args.peer_cmd.split()[0]).exists():
            return "LiteLLM not installed (BENCH_NO_LITELLM=1, or bench/install_litellm.sh failed)"
        return self.args.peer_name

    def run_one(self, key: str, label: str | None, fake_url: str) -> TargetResult:
        env = {"GUNICORN_CMD_ARGS": f"--worker-connections {self.args.worker_connections}"} \
            if self.args.worker_connections else None
        if key == OURS:
            target = our_gateway(OURS, fake_url, self.work, self.source, model=self.args.model, env=env)
            if env:
                label += f" (worker_connections {self.args.worker_connections})"
            return self.run_target(target, label)
        if key == OURS_REDIS:
            redis, url = None, self.args.redis_url
            if url is None:
                if not shutil.which("redis-server"):
                    return self.skip(label, "redis-server is not installed (apt-get install redis-server)")
                try:
                    redis = RedisServer(self.work).start()
                except RuntimeError as exc:
                    return self.skip(label, str(exc))
                url = redis.url
            try:
                target = our_gateway(OURS_REDIS, fake_url, self.work, self.source, workers=2, redis_url=url,
                                     model=self.args.model)
                result = self.run_target(target, label, redis)
                if redis is not None and not result.skipped:
                    self.redis_with_limits(fake_url, redis, result)
                return result
            finally:
                if redis is not None:
                    redis.stop()
        peer_bin = self.args.peer_cmd.split()[0]
        name = f"{self.args.peer_name}, 2 workers" if "--num_workers 2" in self.args.peer_cmd else self.args.peer_name
        if self.args.peer_cmd == LITELLM_COMMAND and not Path(peer_bin).exists():
            return self.skip(name, f"{peer_bin} not found: install LiteLLM with bench/install_litellm.sh (bench/run "
                                   f"does), or give another gateway with --peer-cmd")
        return self.run_target(peer_gateway(PEER, self.args.peer_cmd, fake_url, self.work, self.args.peer_path), name)

    def skip(self, label: str, why: str) -> TargetResult:
        self.say(f"{label}: SKIPPED: {why}")
        return TargetResult(label, skipped=why)


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
