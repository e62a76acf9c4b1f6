"""Two versions of the gateway side by side in one run: `python -m bench.compare --a DIR --b DIR`.

Both run at once (one worker each, against one fake upstream), and every scenario alternates between
them, round after round (A B, then B A, ...), so a noisy shared machine weighs on both alike; the table
gives each one's median over the rounds and the ratio B/A. Figures per scenario: plain requests at c=1
(added latency: through minus direct, direct measured in the same round) and c=64 (req/s); 100 streams
of 20 chunks 10 ms apart (added TTFB); 100 fast streams of 200 chunks 1 ms apart (total time against
direct, chunks relayed per second, the worker's CPU per chunk, every answer checked byte for byte).

    python -m bench.compare --a /tmp/before --b /tmp/after [--rounds 3] [--seconds 3] [--route v1-plain]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import cpu_seconds
from bench.procs import free_port
from bench.shapes import FAST, PLAIN, STREAM
from bench.streams import streams
from bench.targets import GEMINI, GROQ, Route, choose_endpoint, fake_upstream, our_gateway
from bench.wrk import load, require_wrk


def measure(target, route: Route, seconds: float, direct: dict) -> dict[str, float]:
    out = {}
    url, body = target.request(route, PLAIN)
    one = load(url, body, 1, seconds, target.key)
    out["c=1 p50 added ms"] = one.p50_ms - direct["c1"].p50_ms
    out["c=1 p99 added ms"] = one.p99_ms - direct["c1"].p99_ms
    pids = target.server.pids()
    before = cpu_seconds(pids)
    many = load(url, body, 64, seconds, target.key)
    out["c=64 req/s"] = many.rps
    out["CPU us per plain request"] = (cpu_seconds(pids) - before) * 1e6 / max(many.requests, 1)
    stream_route = Route(route.endpoint, route.provider, True)
    url, body = target.request(stream_route, STREAM)
    result = streams(url, body, 100, target.key, chunks=STREAM.chunks)
    out["100 streams added TTFB p50 ms"] = (result.ttfb(50) or 0) - (direct["streams"].ttfb(50) or 0)
    url, body = target.request(stream_route, FAST)
    before = cpu_seconds(pids)
    fast = streams(url, body, 100, target.key, chunks=FAST.chunks)
    out["fast total p50 / direct"] = (fast.total(50) or 0) / (direct["fast"].total(50) or 1)
    out["fast chunks relayed/s"] = fast.chunks_per_second or 0
    out["fast CPU us per chunk"] = (cpu_seconds(pids) - before) * 1e6 / max(fast.completed * FAST.chunks, 1)
    out["fast identical of 100"] = fast.identical
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="gateway files, version A (e.g. the last commit)")
    parser.add_argument("--b", type=Path, required=True, help="gateway files, version B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--route", default="v1-plain", choices=["v1-plain", "chat"])
    parser.add_argument("--provider", default=GROQ, choices=[GROQ, GEMINI])
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    require_wrk()
    endpoint, _, _ = args.route.partition("-")
    route = Route(endpoint, args.provider, False)
    work = Path(tempfile.mkdtemp(prefix="gateway-compare-"))
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/v1"
    fake = fake_upstream(port, work, max_seconds=3600).start()
    targets = {name: our_gateway(f"ours-{name}", fake_url, work, folder.resolve())
               for name, folder in (("A", args.a), ("B", args.b))}
    figures: dict[str, list[dict]] = {"A": [], "B": []}
    try:
        fake.wait_ready(f"{fake_url}/models", None, 20)
        for target in targets.values():
            target.server.start().wait_ready(f"{target.base}/health", None, 30)
            choose_endpoint(target)
            load(*target.request(route, PLAIN), 16, 1, target.key)  # warm up
        for n in range(args.rounds):
            order = ["A", "B"] if n % 2 == 0 else ["B", "A"]
            durl, dbody = targets["A"].direct(route, PLAIN)
            direct = {"c1": load(durl, dbody, 1, args.seconds),
                      "streams": streams(*targets["A"].direct(route, STREAM), 100, chunks=STREAM.chunks),
                      "fast": streams(*targets["A"].direct(route, FAST), 100, chunks=FAST.chunks)}
            for name in order:
                figures[name].append(measure(targets[name], route, args.seconds, direct))
                print(f"[{time.strftime('%H:%M:%S')}] round {n + 1} {name}: " + ", ".join(
                    f"{k} {v:,.2f}" for k, v in figures[name][-1].items()), flush=True)
    finally:
        for target in targets.values():
            target.server.stop()
        fake.stop()
    lines = [f"# {args.b} (B) against {args.a} (A), {route.label}, {args.rounds} rounds of {args.seconds:g} s, "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "", "| figure | A (median) | B (median) | B / A | B, each round |",
             "|---|---|---|---|---|"]
    for key in figures["A"][0]:
        a = statistics.median(f[key] for f in figures["A"])
        b = statistics.median(f[key] for f in figures["B"])
        each = " · ".join(f"{f[key]:,.2f}" for f in figures["B"])
        lines.append(f"| {key} | {a:,.2f} | {b:,.2f} | {b / a:.2f}x | {each} |" if a else
                     f"| {key} | {a:,.2f} | {b:,.2f} | n/a | {each} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
