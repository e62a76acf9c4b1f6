"""Where the gateway's worker spends its CPU: py-spy samples the one worker of our gateway (embedded
default) while the benchmark's load runs, and this prints the functions with the most samples, by own
time and by inclusive time, grouped by module.

    python -m bench.profile [--scenario plain|stream|fast] [--route v1-plain|v1-stream|chat] [--provider
        groq|gemini] [--seconds 10] [--py-spy PATH] [--working-tree]

`plain`: wrk at c=16 with the plain request (the provider streams 20 chunks at once). `stream`: bursts of
100 streams (20 chunks 10 ms apart) back to back. `fast`: bursts of 100 fast streams (200 chunks 1 ms
apart), where the cost per relayed chunk is all there is; the CPU is then also given per chunk. The raw stacks (py-spy's collapsed format, for flame graph tools) are kept in
bench/results/profiles/.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import free_port
from bench.shapes import FAST, PLAIN, STREAM
from bench.streams import streams
from bench.targets import CACHE, GEMINI, GROQ, ROOT, RedisServer, Route, choose_endpoint, fake_upstream, \
    our_gateway, snapshot
from bench.wrk import load

PROFILES = ROOT / "bench" / "results" / "profiles"
TOOLS_VENV = CACHE / "tools-venv"


def find_py_spy(given: str | None) -> str:
    path = given or shutil.which("py-spy") or str(TOOLS_VENV / "bin" / "py-spy")
    if not Path(path).exists():
        raise SystemExit(f"py-spy not found: `python3 -m venv {TOOLS_VENV} && {TOOLS_VENV}/bin/pip install py-spy`")
    return path


# Steps of a request, each the inclusive samples of the frames named (function and file, any line).
STEPS = (
    ("whole request in the worker (gunicorn handle)", ("GeventWorker.handle (gunicorn/workers/ggevent.py",)),
    ("gunicorn: parse the client's request", ("Request.__init__ (gunicorn/http/message.py",)),
    ("Flask app (wsgi_app, all of it)", ("Flask.wsgi_app (flask/app.py",)),
    ("auth (before_request)", ("authenticate_caller (utils/dispatch.py",)),
    ("rate limiter (disabled in the run)", ("Limiter._check_request_limit", "add_rate_limit_headers")),
    ("body parse + validation", ("read_json_object (utils/validation.py", "parse_chat_request (utils/validation.py",
                                 "parse_completion_request (utils/validation.py")),
    ("upstream call: requests Session.post, all of it", ("Upstream.post (utils/upstream.py",)),
    ("  of which: proxy/.netrc lookups in os.environ (merge_environment_settings)",
     ("Session.merge_environment_settings (requests/sessions.py",)),
    ("  of which: prepare_request (cookie jars, hooks, header merge)",
     ("Session.prepare_request (requests/sessions.py",)),
    ("  of which: HTTPAdapter.send (pool, send, read status+headers)", ("HTTPAdapter.send (requests/adapters.py",)),
    ("upstream body: read chunks + SSE + JSON parse",
     ("Upstream.iter_bytes (utils/upstream.py", "iter_data (utils/sse.py", "Provider.parse_data (providers/base.py")),
    ("  of which: socket reads (urllib3 read_chunked / read1, gevent recv)",
     ("HTTPResponse.read_chunked (urllib3/", "HTTPResponse.read1 (urllib3/", "_reads (utils/upstream.py")),
    ("  of which: SSE lines", ("_lines (utils/sse.py",)),
    ("  of which: json.loads of events", ("loads (json/__init__.py", "loads (orjson")),
    ("  of which: typed parse of events (parse_chunk, parse_response)",
     ("parse_chunk (providers/openai_compat.py", "parse_response (providers/gemini.py")),
    ("/v1 answer: JSON body or SSE chunks (completion_body, jsonify, stream_chunks)",
     ("completion_body (routes/openai_", "jsonify (flask/json", "stream_chunks (routes/openai_")),
    ("/chat answer: stream_text", ("stream_text (routes/chat.py",)),
    ("write the answer to the client (gunicorn Response.write)", ("Response.write (gunicorn/http/wsgi.py",)),
    ("request log line (JSON formatting + write)", ("finish.<locals>.write_line (utils/requestlog.py",)),
    ("metrics + router bookkeeping", ("Metrics.record_attempt", "Metrics.count_request", "Router.")),
    ("key usage recording", ("KeyStore.record_use",)),
    ("Redis calls (redis-py, all of them)", ("redis/",)),
    ("CORS", ("flask_cors/",)),
    ("uuid4 request ids", ("uuid4 (uuid.py",)),
    ("gevent hub outside request handlers (poll, switches, accept)", ("Hub.run (gevent/hub.py",)),
)


def function_of(frame: str) -> str:
    """`func (path/file.py:12)` -> `func (path/file.py)`: one name for every line of a function."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if name else frame


def summarize(collapsed: Path, cpu_us_per_request: float | None = None, top: int = 25) -> str:
    """Own and inclusive sample counts per function and per step of a request, from collapsed stacks."""
    own, inclusive, packages, steps = (collections.Counter() for _ in range(4))
    total = partial = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():  # not a stack line (py-spy may add notes)
            continue
        n = int(count)
        frames = [function_of(f.strip()) for f in stack.split(";")
                  if f.strip() and not f.strip().startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        if not any(root in frame for frame in frames for root in ("GeventWorker.handle (", "Hub.run (")):
            partial += n
        own[frames[-1]] += n
        packages[package_of(frames[-1])] += n
        for frame in set(frames):
            inclusive[frame] += n
        for label, patterns in STEPS:
            if any(p in frame for frame in frames for p in patterns):
                steps[label] += n

    def share(n: int) -> str:
        us = f"  ~{n / total * cpu_us_per_request:6.0f} us/request" if cpu_us_per_request else ""
        return f"{n / total:6.1%}{us}"

    lines = [f"{total} samples of CPU (idle waits are not sampled)"
             + (f"; the worker used {cpu_us_per_request:.0f} us of CPU per request" if cpu_us_per_request else ""),
             f"{partial / total:.0%} of the samples are partial stacks (py-spy could not walk a greenlet's stack to "
             "its root), so the steps below are lower bounds",
             "", "by step (inclusive; a step's samples include the steps inside it):"]
    lines += [f"  {share(steps[label])}  {label}" for label, _ in STEPS]
    lines += ["", "own time by package:"] + [f"  {share(n)}  {name}" for name, n in packages.most_common(15)]
    lines += ["", "own time by function:"] + [f"  {share(n)}  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time by function:"]
    lines += [f"  {share(n)}  {name}" for name, n in inclusive.most_common(top * 3) if interesting(name)][:top]
    return "\n".join(lines)


def package_of(frame: str) -> str:
    """`func (gevent/_socketcommon.py)` -> `gevent`; the gateway's own modules by file; stdlib by module."""
    path = frame.rpartition(" (")[2].rstrip(")")
    first = path.split("/")[0]
    if first in ("routes", "utils", "providers", "app.py"):
        return "gateway: " + path
    return first.removesuffix(".py")


def interesting(frame: str) -> bool:
    return not any(x in frame for x in ("gevent/greenlet.py", "gevent/baseserver.py", "<module>",
                                        "Greenlet.run", "Hub.run"))


def worker_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["plain", "stream", "fast"], default="plain")
    parser.add_argument("--route", choices=["v1-plain", "v1-stream", "chat"], help="the way in (default: v1-plain "
                        "for plain, v1-stream for the streams)")
    parser.add_argument("--provider", choices=[GROQ, GEMINI], default=GROQ)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--py-spy", dest="py_spy")
    parser.add_argument("--redis", action="store_true", help="profile one of two workers with REDIS_URL (db 12)")
    parser.add_argument("--working-tree", action="store_true", help="profile the working tree, not HEAD")
    parser.add_argument("--tag", default="", help="added to the profile's file name (e.g. -before)")
    parser.add_argument("--source", type=Path, help="profile the gateway files in this folder (an experiment: "
                        "printed, and kept only with --tag)")
    args = parser.parse_args()
    py_spy = find_py_spy(args.py_spy)
    args.route = args.route or ("v1-plain" if args.scenario == "plain" else "v1-stream")
    detail = "" if (args.route, args.provider) in (("v1-plain", GROQ), ("v1-stream", GROQ)) else \
        f"-{args.route}-{args.provider}"
    name = f"{time.strftime('%Y-%m-%d')}-{args.scenario}{detail}{'-redis' if args.redis else ''}{args.tag}"
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as tmp:
        work = Path(tmp)
        if args.source:
            source, code = args.source.resolve(), f"files in {args.source}"
        else:
            source, code = (ROOT, "working tree") if args.working_tree else snapshot(work)
        out = work / f"{name}.collapsed"
        cpu_us, note = record(args, py_spy, work, source, out)
        text = (f"# Profile: {args.scenario}, {args.route}, {args.provider}{' (Redis, 2 workers)' if args.redis else ''}, "
                f"{time.strftime('%Y-%m-%d %H:%M')}\n\n{code}, {note}; py-spy at {args.rate} Hz for {args.seconds} s "
                f"on one worker; stacks in {name}.collapsed.gz (py-spy's collapsed format: `gunzip` it for "
                f"speedscope or flamegraph.pl)\n\n```\n{summarize(out, cpu_us)}\n```\n")
        print(text)
        if not args.source or args.tag:  # an experiment is kept when it is named
            PROFILES.mkdir(parents=True, exist_ok=True)
            subprocess.run(["gzip", "-f", str(out)], check=True)
            shutil.copy(f"{out}.gz", PROFILES / f"{name}.collapsed.gz")
            (PROFILES / f"{name}.md").write_text(text)
            print(f"written to {(PROFILES / name).relative_to(ROOT)}.md")
    return 0


def record(args, py_spy: str, work: Path, source: Path, out: Path) -> tuple[float | None, str]:
    """Run the gateway and the load, with py-spy on one worker writing `out`; the worker's CPU
    microseconds per request (and per chunk for the streams), and which endpoint was used."""
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/v1"
    fake = fake_upstream(port, work, max_seconds=args.seconds + 120).start()
    redis = RedisServer(work).start() if args.redis else None
    target = our_gateway("ours-redis", fake_url, work, source, workers=2, redis_url=redis.url) if redis \
        else our_gateway("ours", fake_url, work, source)
    endpoint, _, stream = args.route.partition("-")
    route = Route(endpoint, args.provider, stream != "plain")
    shape = {"plain": PLAIN, "stream": STREAM, "fast": FAST}[args.scenario]
    try:
        fake.wait_ready(f"{fake_url}/models", None, 20)
        target.server.start().wait_ready(f"{target.base}/health", None, 30)
        choose_endpoint(target)
        url, body = target.request(route, shape)
        load(*target.request(route, PLAIN), 16, 1, target.key)  # warm up
        worker = max(target.server.pids())  # the master's only child, or its last one with --redis
        spy = subprocess.Popen([py_spy, "record", "--pid", str(worker), "--rate", str(args.rate), "--duration",
                                str(args.seconds), "--format", "raw", "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        cpu_before = worker_cpu_seconds(worker)
        chunks = None
        if args.scenario == "plain":
            result = load(url, body, 16, args.seconds - 1, target.key)
            done = result.requests
            print(f"load while sampling: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")
        else:
            done, deadline = 0, time.monotonic() + args.seconds - 1
            while time.monotonic() < deadline and done < 100_000:  # bounded in time and count
                done += streams(url, body, 100, target.key, deadline=30).completed
            chunks = done * shape.chunks
            print(f"streams completed while sampling: {done} ({shape.describe()} each)")
        # With two workers, each is assumed to have served half of the requests.
        share = done / 2 if args.redis else done
        cpu = worker_cpu_seconds(worker) - cpu_before
        cpu_us = cpu * 1e6 / share if done else None
        if chunks:
            print(f"worker CPU per relayed chunk: {cpu * 1e6 / (chunks / 2 if args.redis else chunks):.1f} us")
        _, err = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.strip()}")
    finally:
        target.server.stop()
        fake.stop()
        if redis:
            redis.stop()
    note = f"{route.label}, {shape.describe()}"
    if chunks:
        note += f", {cpu * 1e6 / (chunks / 2 if args.redis else chunks):.1f} us of worker CPU per relayed chunk"
    return cpu_us, note


if __name__ == "__main__":
    sys.exit(main())
