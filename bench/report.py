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
class TargetResult:
    label: str
    skipped: str = ""  # why it did not run
    failed: str = ""  # why it stopped part way (what was measured before is kept)
    note: str = ""
    load: dict[int, tuple[LoadResult, LoadResult]] = field(default_factory=dict)  # concurrency -> (direct, via)
    streams: dict[int, tuple[StreamResult, StreamResult]] = field(default_factory=dict)
    idle_kb: int = 0
    peak_kb: dict[int, int] = field(default_factory=dict)  # streams -> peak RSS during that run
    processes: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (count, warning/error log line)
    redis_per_request: dict[str, float] = field(default_factory=dict)  # Redis commands per request, by name


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
        self.memory_rows()

    def load_rows(self, c: int) -> None:
        results = {key: self.results[key] for key in self.ran if c in self.results[key].load}
        direct = self.direct_column().load[c][0]
        name = f"non-streaming c={c}"

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


def per_stream_kb(result: TargetResult, streams: int) -> float:
    return max(0, result.peak_kb.get(streams, 0) - result.idle_kb) / streams


def targets(results: dict[str, TargetResult]) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, measured value)."""
    ours, peer = results.get(OURS), results.get(PEER)
    out = []
    if ours and not ours.skipped and 1 in ours.load:
        d, v = ours.load[1]
        p50, p99 = v.p50_ms - d.p50_ms, v.p99_ms - d.p99_ms
        out.append(("added latency c=1 p50 < 1 ms (1 worker, non-streaming)", p50 < 1, f"+{p50:.2f} ms"))
        out.append(("added latency c=1 p99 < 3 ms (1 worker, non-streaming)", p99 < 3, f"+{p99:.2f} ms"))
    else:
        out.append(("added latency at c=1", None, "not measured"))
    if ours and not ours.skipped and 100 in ours.streams:
        d, v = ours.streams[100]
        value = added(v.ttfb(50), d.ttfb(50))
        out.append(("added TTFB p50 < 2 ms at 100 streams (1 worker)", value is not None and value < 2,
                    f"+{ms(value)} ms"))
    if ours and not ours.skipped and 500 in ours.streams:
        v = ours.streams[500][1]
        out.append(("500 streams on one worker complete with no errors",
                    v.completed == 500 and not v.error_count, f"{v.completed}/500 completed, {v.error_count} errors"))
        kb = per_stream_kb(ours, 500)
        out.append(("memory per open stream < 100 KB (1 worker)", ours.peak_kb.get(500, 0) > 0 and kb < 100,
                    f"{kb:.1f} KB"))
    if ours and peer and not ours.skipped and not peer.skipped and 64 in ours.load and 64 in peer.load:
        for key in (OURS, OURS_REDIS):
            mine = results.get(key)
            if mine and not mine.skipped and 64 in mine.load:
                r = mine.load[64][1].rps / peer.load[64][1].rps if peer.load[64][1].rps else 0
                out.append((f"throughput c=64 >= 3x {peer.label} ({mine.label})", r >= 3, f"{r:.2f}x"))
    else:
        out.append(("throughput c=64 >= 3x the peer", None, "peer not measured"))
    return out


def render(results: dict[str, TargetResult], fake_ceiling: LoadResult | None, facts: dict[str, str],
           mode: str, started: str) -> str:
    lines = [f"# Benchmark, {started} ({mode})", "", Table(results, fake_ceiling).render(), "",
             "Added = through the gateway minus the fake upstream directly, each pair measured back to back in "
             "this run. TTFB = time from sending the request to the first byte of the answer's body. "
             "N streams: all N connect, then all send at the same moment, so their TTFB includes waiting for the "
             "N - 1 others to be started by the gateway's worker(s); 1 stream at a time has nothing queued. "
             "Ratios: our figure divided by the peer's (for latencies, the added parts).", "",
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
            if r.redis_per_request:
                per = sorted(r.redis_per_request.items(), key=lambda item: -item[1])
                lines.append(f"  - Redis commands per request (MONITOR, one request at a time): "
                             f"{sum(r.redis_per_request.values()):.1f} ("
                             + ", ".join(f"{name} {n:.2f}" for name, n in per if n >= 0.01) + ")")
            lines += [f"  - log, {count} x: `{line}`" for count, line in r.problems]
    if fake_ceiling:
        best = max((r.load[c][1].rps for r in results.values() if not r.skipped for c in r.load), default=0)
        lines.append(f"- fake upstream: {fake_ceiling.rps:,.0f} req/s ceiling at c=64; the fastest run through a "
                     f"gateway used {best / fake_ceiling.rps:.0%} of it")
    lines += ["", "## Machine", ""] + [f"- {name}: {value}" for name, value in facts.items()]
    return "\n".join(lines) + "\n"
