"""The report: one markdown table (printed, and written to bench/results/), the targets with pass/fail,
and the machine it ran on."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.streams import StreamResult
from bench.wrk import LoadResult

ROOT = Path(__file__).resolve().parent.parent
OURS, OURS_REDIS, PEER = "ours", "ours-redis", "peer"


@dataclass
class FastResult:
    direct: StreamResult
    via: StreamResult
    cpu_us_per_chunk: float | None  # the server's CPU (all its processes) per relayed chunk

    @property
    def ratio(self) -> float | None:
        d, v = self.direct.total(50), self.via.total(50)
        return v / d if d and v is not None else None

    @property
    def capacity(self) -> float | None:
        """Chunks a second one fully busy process would relay at this CPU cost."""
        return 1e6 / self.cpu_us_per_chunk if self.cpu_us_per_chunk else None


@dataclass
class RouteResult:
    label: str
    load: dict[int, tuple[LoadResult, LoadResult]] = field(default_factory=dict)  # c -> (direct, via)
    fast: FastResult | None = None


@dataclass
class TargetResult:
    label: str
    skipped: str = ""  # why it did not run
    failed: str = ""  # why it stopped part way (what was measured before is kept)
    note: str = ""
    load: dict[int, tuple[LoadResult, LoadResult]] = field(default_factory=dict)  # concurrency -> (direct, via)
    streams: dict[int, tuple[StreamResult, StreamResult]] = field(default_factory=dict)
    fast: FastResult | None = None
    slow: tuple[StreamResult, StreamResult, int, int] | None = None  # direct, via, idle KB, peak KB
    matrix: list[RouteResult] = field(default_factory=list)
    idle_kb: int = 0
    peak_kb: dict[int, int] = field(default_factory=dict)  # streams -> peak RSS during that run
    processes: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (count, warning/error log line)
    redis: dict[str, dict] = field(default_factory=dict)  # model -> {"round_trips": x, "commands": {name: x}}


def machine_facts(peer_python: str | None, code: str) -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    commit = _run(["git", "rev-parse", "--short", "HEAD"])
    measured = code.split()[1] if code.startswith("commit ") else "HEAD"
    gateway_commit = _run(["git", "log", "-1", "--format=%h", measured, "--", ".", ":(exclude)bench"])
    dirty = [line for line in _run(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines()
             if not line[3:].startswith("bench/")]
    facts = {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "Python": sys.version.split()[0],
        "gateway measured": f"{code} (gateway files last changed in {gateway_commit})" if code.startswith("commit")
        else code if code != "working tree" else
        f"working tree of {commit}" + (f" + uncommitted changes in {len(dirty)} files" if dirty else ""),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "packages": ", ".join(f"{name} {_version(name)}" for name in ("flask", "gunicorn", "gevent", "requests")),
        "wrk": _run(["wrk", "--version"]).split(" [")[0] or "not found",
    }
    if peer_python:
        facts["LiteLLM"] = _run([peer_python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
    return facts


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def added(via: float | None, direct: float | None) -> float | None:
    return None if via is None or direct is None else via - direct


def ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer <= 0:
        return "n/a"
    return f"{ours / peer:.2f}x"


class Table:
    """Rows of: scenario, metric, direct, then one column per target, then ours/peer ratios."""

    def __init__(self, results: dict[str, TargetResult], fake_ceiling: LoadResult | None):
        self.results, self.fake_ceiling = results, fake_ceiling
        self.ran = [key for key in (OURS, OURS_REDIS, PEER) if key in results and not results[key].skipped]
        self.rows: list[list[str]] = []

    def render(self) -> str:
        self.build()
        peer = self.results.get(PEER)
        head = ["scenario", "metric", "fake direct"] + [self.results[key].label for key in self.ran]
        if peer and not peer.skipped:
            ours = " · ".join(self.results[key].label for key in (OURS, OURS_REDIS) if key in self.ran)
            head += [f"ratio to {peer.label} ({ours})"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def direct_column(self) -> TargetResult | None:
        return self.results[self.ran[0]] if self.ran else None

    def row(self, scenario: str, metric: str, direct: str, values: dict[str, str], ratios: str = "") -> None:
        row = [scenario, metric, direct] + [values.get(key, "") for key in self.ran]
        if PEER in self.ran:
            row.append(ratios)
        self.rows.append(row)

    def ratios(self, figure) -> str:
        """ours / peer for each of our configurations; `figure(result)` gives the number or None."""
        if PEER not in self.ran:
            return ""
        peer_value = figure(self.results[PEER])
        return " · ".join(ratio(figure(self.results[key]), peer_value) for key in (OURS, OURS_REDIS)
                          if key in self.ran)

    def build(self) -> None:
        first = self.direct_column()
        if self.fake_ceiling:
            self.row("fake upstream ceiling", "req/s at c=64", f"{self.fake_ceiling.rps:,.0f}", {})
        if first is None:
            return
        for c in sorted(first.load):
            self.load_rows(c)
        for n in sorted(first.streams):
            self.stream_rows(n)
        self.fast_rows()
        self.slow_rows()
        self.memory_rows()
        self.redis_rows()

    def load_rows(self, c: int) -> None:
        results = {key: self.results[key] for key in self.ran if c in self.results[key].load}
        direct = self.direct_column().load[c][0]
        name = f"plain c={c} (20 chunks upstream)"

        def via(key, attr):
            return getattr(results[key].load[c][1], attr) if key in results else None

        def add(key, attr):
            if key not in results:
                return None
            d, v = results[key].load[c]
            return getattr(v, attr) - getattr(d, attr)

        self.row(name, "req/s", f"{direct.rps:,.0f}", {k: f"{via(k, 'rps'):,.0f}" for k in results},
                 self.ratios(lambda r: r.load[c][1].rps if c in r.load else None))
        for attr, label in (("p50_ms", "p50 ms (added)"), ("p99_ms", "p99 ms (added)")):
            self.row(name, label, ms(getattr(direct, attr)),
                     {k: f"{ms(via(k, attr))} (+{ms(add(k, attr))})" for k in results},
                     self.ratios(lambda r, a=attr: (getattr(r.load[c][1], a) - getattr(r.load[c][0], a))
                                 if c in r.load else None))
        self.row(name, "errors", str(direct.errors), {k: str(results[k].load[c][1].errors) for k in results})

    def stream_rows(self, n: int) -> None:
        results = {key: self.results[key] for key in self.ran if n in self.results[key].streams}
        direct = self.direct_column().streams[n][0]
        name = f"{n} streams (20 chunks, 10 ms)" if n > 1 else \
            f"1 stream at a time ({direct.count} in a row, 20 chunks, 10 ms)"
        for q in (50, 99):
            self.row(name, f"TTFB p{q} ms (added)", ms(direct.ttfb(q)),
                     {k: f"{ms(results[k].streams[n][1].ttfb(q))} "
                         f"(+{ms(added(results[k].streams[n][1].ttfb(q), results[k].streams[n][0].ttfb(q)))})"
                      for k in results},
                     self.ratios(lambda r, q=q: added(r.streams[n][1].ttfb(q), r.streams[n][0].ttfb(q))
                                 if n in r.streams else None))
        self.row(name, "completed / errors", f"{direct.completed} / {direct.error_count}",
                 {k: f"{results[k].streams[n][1].completed} / {results[k].streams[n][1].error_count}"
                  + (f" {results[k].streams[n][1].errors}" if results[k].streams[n][1].errors else "")
                  for k in results})
        self.row(name, "wall time s", f"{direct.seconds:.2f}",
                 {k: f"{results[k].streams[n][1].seconds:.2f}" for k in results})

    def fast_rows(self) -> None:
        results = {key: self.results[key] for key in self.ran if self.results[key].fast}
        if not results:
            return
        direct = next(iter(results.values())).fast.direct
        name = f"{direct.count} fast streams (200 chunks, 1 ms)"
        self.row(name, "total p50 ms (x direct)", ms(direct.total(50)),
                 {k: f"{ms(r.fast.via.total(50))} ({times(r.fast.ratio)})" for k, r in results.items()},
                 self.ratios(lambda r: r.fast.via.total(50) if r.fast else None))
        self.row(name, "total p99 ms", ms(direct.total(99)), {k: ms(r.fast.via.total(99)) for k, r in results.items()})
        self.row(name, "chunks relayed/s (wall)", rate(direct.chunks_per_second),
                 {k: rate(r.fast.via.chunks_per_second) for k, r in results.items()},
                 self.ratios(lambda r: r.fast.via.chunks_per_second if r.fast else None))
        self.row(name, "server CPU us per chunk (chunks/s one busy process)", "",
                 {k: f"{ms(r.fast.cpu_us_per_chunk)} ({rate(r.fast.capacity)})" for k, r in results.items()},
                 self.ratios(lambda r: r.fast.cpu_us_per_chunk if r.fast else None))
        self.row(name, "completed / identical / errors", f"{direct.completed} / {direct.identical} / "
                 f"{direct.error_count}",
                 {k: f"{r.fast.via.completed} / {r.fast.via.identical} / {r.fast.via.error_count}"
                  + (f" {r.fast.via.errors}" if r.fast.via.errors else "") for k, r in results.items()})

    def slow_rows(self) -> None:
        results = {key: self.results[key] for key in self.ran if self.results[key].slow}
        if not results:
            return
        direct = next(iter(results.values())).slow[0]
        name = f"{direct.count} slow streams (1 chunk/s, 5 chunks)"
        self.row(name, "completed / identical / errors", f"{direct.completed} / {direct.identical} / "
                 f"{direct.error_count}",
                 {k: f"{r.slow[1].completed} / {r.slow[1].identical} / {r.slow[1].error_count}"
                  + (f" {r.slow[1].errors}" if r.slow[1].errors else "") for k, r in results.items()})
        self.row(name, "TTFB p50 / p99 ms", f"{ms(direct.ttfb(50))} / {ms(direct.ttfb(99))}",
                 {k: f"{ms(r.slow[1].ttfb(50))} / {ms(r.slow[1].ttfb(99))}" for k, r in results.items()})
        self.row(name, "total p50 / p99 s", f"{ms(sec(direct.total(50)))} / {ms(sec(direct.total(99)))}",
                 {k: f"{ms(sec(r.slow[1].total(50)))} / {ms(sec(r.slow[1].total(99)))}" for k, r in results.items()})
        self.row(name, "peak RSS MB (idle) / KB per stream", "",
                 {k: f"{r.slow[3] / 1024:.1f} ({r.slow[2] / 1024:.1f}) / {slow_kb(r):.1f}" for k, r in results.items()})

    def redis_rows(self) -> None:
        for key in self.ran:
            for model, figures in self.results[key].redis.items():
                commands = figures["commands"]
                self.row(f"Redis, model {model}", "round trips / commands per request", "",
                         {key: f"{figures['round_trips']:.2f} / {sum(commands.values()):.2f}"})

    def memory_rows(self) -> None:
        results = {key: self.results[key] for key in self.ran if self.results[key].peak_kb}
        if not results:
            return
        self.row("memory", "processes", "", {k: str(r.processes) for k, r in results.items()})
        self.row("memory", "idle RSS MB", "", {k: f"{r.idle_kb / 1024:.1f}" for k, r in results.items()},
                 self.ratios(lambda r: r.idle_kb or None))
        top = max(max(r.peak_kb) for r in results.values())  # the most streams: memory per stream is clearest
        self.row("memory", f"peak RSS MB ({top} streams)", "",
                 {k: f"{r.peak_kb.get(top, 0) / 1024:.1f}" for k, r in results.items()},
                 self.ratios(lambda r: r.peak_kb.get(top) or None))
        self.row("memory", "KB per open stream", "",
                 {k: f"{per_stream_kb(r, top):.1f}" for k, r in results.items()},
                 self.ratios(lambda r: per_stream_kb(r, top) or None))


def sec(value: float | None) -> float | None:
    return None if value is None else value / 1000


def slow_kb(result: TargetResult) -> float:
    """Memory per stream the server held: over the streams it completed (those it refused held nothing)."""
    direct, via, idle, peak = result.slow
    return max(0, peak - idle) / via.completed if via.completed else 0.0


def matrix(result: TargetResult) -> str:
    """Every way in, ours on one worker: plain answers at c=1 and c=64, and fast streams."""
    head = ["way in", "c=1 p50 ms (added)", "c=1 p99 ms (added)", "c=64 req/s (direct)", "fast streams total p50 ms "
            "(x direct)", "chunks relayed/s", "CPU us per chunk", "completed / identical / errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rr in result.matrix:
        row = [rr.label]
        if 1 in rr.load:
            d, v = rr.load[1]
            row += [f"{ms(v.p50_ms)} (+{ms(v.p50_ms - d.p50_ms)})", f"{ms(v.p99_ms)} (+{ms(v.p99_ms - d.p99_ms)})"]
        else:
            row += ["", ""]
        row.append(f"{rate(rr.load[64][1].rps)} ({rate(rr.load[64][0].rps)})" if 64 in rr.load else "")
        f = rr.fast
        if f:
            row += [f"{ms(f.via.total(50))} ({times(f.ratio)})", rate(f.via.chunks_per_second), ms(f.cpu_us_per_chunk),
                    f"{f.via.completed} / {f.via.identical} / {f.via.error_count}"]
        else:
            row += ["", "", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_stream_kb(result: TargetResult, streams: int) -> float:
    return max(0, result.peak_kb.get(streams, 0) - result.idle_kb) / streams


def targets(results: dict[str, TargetResult]) -> list[tuple[str, bool | None, str]]:
    """Issue 17's targets: (target, passed or None when not measured, measured value)."""
    ran = {k: r for k, r in results.items() if r and not r.skipped}
    ours, redis, peer = ran.get(OURS), ran.get(OURS_REDIS), ran.get(PEER)
    out = []
    if ours and 1 in ours.load:
        d, v = ours.load[1]
        p50, p99 = v.p50_ms - d.p50_ms, v.p99_ms - d.p99_ms
        out.append(("plain c=1, 20-chunk upstream: added p50 < 1 ms (1 worker)", p50 < 1, f"+{p50:.2f} ms"))
        out.append(("plain c=1, 20-chunk upstream: added p99 < 2 ms (1 worker)", p99 < 2, f"+{p99:.2f} ms"))
    else:
        out.append(("added latency at c=1", None, "not measured"))
    if ours and peer and 64 in ours.load and 64 in peer.load and peer.load[64][1].rps:
        r = ours.load[64][1].rps / peer.load[64][1].rps
        out.append((f"plain c=64 >= 8x {peer.label} (ours, 1 worker)", r >= 8, f"{r:.2f}x"))
    else:
        out.append(("plain c=64 >= 8x the peer", None, "peer not measured"))
    if ours and ours.fast:
        f = ours.fast
        out.append(("fast streams: total p50 <= 1.3x direct (1 worker)", f.ratio is not None and f.ratio <= 1.3,
                    f"{times(f.ratio)} ({ms(f.via.total(50))} ms against {ms(f.direct.total(50))} ms)"))
        cps = f.via.chunks_per_second
        out.append(("fast streams: >= 60,000 chunks relayed/s (1 worker)", cps is not None and cps >= 60_000,
                    f"{rate(cps)} chunks/s; {ms(f.cpu_us_per_chunk)} us CPU per chunk, so {rate(f.capacity)} "
                    "chunks/s for a fully busy worker"))
        n = f.via.count
        out.append(("fast streams: every stream complete and byte-identical", f.via.identical == n,
                    f"{f.via.completed}/{n} completed, {f.via.identical}/{n} identical, {f.via.error_count} errors"))
    if ours and 100 in ours.streams:
        d, v = ours.streams[100]
        value = added(v.ttfb(50), d.ttfb(50))
        out.append(("100 streams (20 chunks, 10 ms): added TTFB p50 < 30 ms (1 worker)",
                    value is not None and value < 30, f"+{ms(value)} ms"))
    if redis and redis.redis:
        worst = max(figures["round_trips"] for figures in redis.redis.values())
        out.append(("Redis: at most 2 round trips per request", worst <= 2,
                    ", ".join(f"model {m}: {f['round_trips']:.2f}" for m, f in redis.redis.items())))
    else:
        out.append(("Redis: at most 2 round trips per request", None, "not measured"))
    if ours and redis and 64 in ours.load and 64 in redis.load and ours.load[64][1].rps:
        r = redis.load[64][1].rps / ours.load[64][1].rps
        out.append(("2 workers + Redis >= 1.7x one worker (plain c=64)", r >= 1.7, f"{r:.2f}x"))
    if ours and ours.slow:
        via = ours.slow[1]
        out.append((f"{via.count} slow streams on one worker: no errors", via.completed == via.count
                    and not via.error_count and via.identical == via.count,
                    f"{via.completed}/{via.count} completed, {via.identical} identical, {via.error_count} errors "
                    f"{via.errors or ''}, at most {via.max_open} open at once"))
        kb = slow_kb(ours)
        out.append((f"{via.count} slow streams: < 50 KB each", ours.slow[3] > 0 and kb < 50, f"{kb:.1f} KB"))
    if ours and ours.matrix:
        measured = [rr.label for rr in ours.matrix if rr.load and rr.fast]
        out.append(("/chat and /v1, streaming and not, OpenAI-compatible and Gemini: each measured",
                    len(measured) == len(ours.matrix) == 6, f"{len(measured)} of 6 ways in"))
    return out


def render(results: dict[str, TargetResult], fake_ceiling: LoadResult | None, facts: dict[str, str],
           mode: str, started: str, fast: int = 0, slow: int = 0) -> str:
    lines = [f"# Benchmark, {started} ({mode})", "", Table(results, fake_ceiling).render(), ""]
    ours = results.get(OURS)
    if ours and ours.matrix:
        lines += ["## Every way in (ours, 1 worker)", "", matrix(ours), "",
                  "Plain: the client asks for a whole answer, the provider streams 20 chunks at once. Fast streams: "
                  f"{fast} concurrent streams of 200 chunks 1 ms apart. CPU per chunk: the server's processes' CPU "
                  "during the run divided by the chunks relayed.", ""]
    lines += [
             "Added = through the gateway minus the fake upstream directly, each pair measured back to back in "
             "this run. TTFB = time from sending the request to the first byte of the answer's body. "
             "N streams: all N connect, then all send at the same moment, so their TTFB includes waiting for the "
             "N - 1 others to be started by the gateway's worker(s); 1 stream at a time has nothing queued. "
             "Ratios: our figure divided by the peer's (for latencies, the added parts). "
             "Plain requests: the client asks for a whole answer, and the gateway (as every gateway here) asks its "
             "provider for a stream of 20 chunks, sent at once; the direct figures are that stream asked of the fake "
             "directly. Fast streams: 200 chunks 1 ms apart; total = request sent to the body's end; identical = the "
             "text read back (SSE deltas joined, or /chat's text) equals, byte for byte, what the fake sent. "
             "Chunks relayed/s = completed streams x 200 / the run's wall time; CPU per chunk = the server's "
             "processes' CPU during the run / chunks relayed. Slow streams: all open at once, 1 chunk a second.", "",
             "## Targets", ""]
    for name, passed, value in targets(results):
        verdict = "not measured" if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"- **{verdict}** {name}: {value}")
    lines += ["", "## Configurations", ""]
    for key in (OURS, OURS_REDIS, PEER):
        if key in results:
            r = results[key]
            lines.append(f"- {r.label}: " + (f"SKIPPED: {r.skipped}" if r.skipped else f"endpoint {r.note}")
                         + (f"; FAILED part way: {r.failed}" if r.failed else ""))
            for model, figures in r.redis.items():
                per = sorted(figures["commands"].items(), key=lambda item: -item[1])
                lines.append(f"  - Redis per request, model {model} (a private redis-server's INFO, 100 requests one "
                             f"at a time): {figures['round_trips']:.2f} round trips (reads Redis processed), "
                             f"{sum(figures['commands'].values()):.2f} commands ("
                             + ", ".join(f"{name} {n:.2f}" for name, n in per if n >= 0.01) + ")")
            lines += [f"  - log, {count} x: `{line}`" for count, line in r.problems]
    if fake_ceiling:
        best = max((r.load[c][1].rps for r in results.values() if not r.skipped for c in r.load), default=0)
        lines.append(f"- fake upstream: {fake_ceiling.rps:,.0f} req/s ceiling at c=64; the fastest run through a "
                     f"gateway used {best / fake_ceiling.rps:.0%} of it")
    lines += ["", "## Machine", ""] + [f"- {name}: {value}" for name, value in facts.items()]
    return "\n".join(lines) + "\n"
