"""The floors under the gateway's costs (`python -m bench.floor`), each measured in the same run as the gateway:

- Per relayed chunk and per request: the same gunicorn gevent worker running a WSGI app that does nothing but
  relay (raw socket reads from the fake provider yielded as they come, its upstream connections kept open; no
  HTTP client, no parsing, no JSON, no Flask). Under 100 fast streams: the worker's CPU per relayed chunk.
  Under plain requests (wrk, the 20-chunk answer): added p50 and p99 at c=1, req/s and CPU per request at c=64;
  under 100 streams (20 chunks 10 ms apart) sent at once: the added time to first byte. What is
  left between the floor and the gateway is the gateway's own work and its stack (Flask, requests); the floor
  itself is gevent's hub, the syscalls and gunicorn's parsing and writes.
- The same for the project's stack alone: a Flask app relaying through one `requests.Session` (`stream=True`,
  `iter_content`), no validation, routing, parsing or bookkeeping. Between it and the gateway is the gateway's
  own work; between the floor and it, Flask's and requests' cost.
- Memory: the peak RSS each of the three adds per open stream under 5,000 slow streams (5 chunks 1 s apart).
- Two workers with Redis: the CPU every process spends per request (the workers, redis-server, the fake and
  wrk), and so the most two cores can serve, against one worker's measured throughput: the ceiling of the
  "2 workers + Redis >= 1.7x one worker" target on this machine.

    python -m bench.floor [--source DIR] [--rounds 3] [--streams 100] [--seconds 5] [--slow-streams 5000]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import cpu_seconds
from bench.procs import MemorySampler, Server, free_port
from bench.shapes import FAST, PLAIN, SLOW, STREAM
from bench.streams import streams
from bench.targets import (
    ROOT,
    V1_PLAIN,
    V1_STREAM,
    RedisServer,
    choose_endpoint,
    fake_upstream,
    our_gateway,
    snapshot,
)
from bench.wrk import load

APP = '''
import socket

IDLE = []  # upstream connections kept open between requests, as the gateway's pool keeps them


def app(environ, start_response):
    """Relay the fake's stream: each socket read yielded as it is (its HTTP chunk framing included)."""
    body = environ["wsgi.input"].read()
    host, port = "127.0.0.1", {port}
    upstream = IDLE.pop() if IDLE else socket.create_connection((host, port))
    upstream.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                     b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += upstream.recv(65536)
    rest = head.split(b"\\r\\n\\r\\n", 1)[1]
    def relay():
        data = rest
        try:
            while not data.endswith(b"0\\r\\n\\r\\n"):
                if data:
                    yield data
                data = upstream.recv(65536)
                if not data:
                    upstream.close()
                    return
            yield data
            IDLE.append(upstream)  # the answer ended cleanly: the connection serves the next request
        except BaseException:
            upstream.close()
            raise
    return relay()
'''

STACK_APP = '''
import requests
from flask import Flask, Response, request

app = Flask(__name__)
session = requests.Session()


@app.post("/v1/chat/completions")
def relay():
    upstream = session.post("http://127.0.0.1:{port}/v1/chat/completions", data=request.get_data(),
                            headers={"Content-Type": "application/json"}, stream=True)
    return Response(upstream.iter_content(None), content_type="text/event-stream")
'''


def relay_server(name: str, app: str, port: int, work: Path) -> Server:
    """`app` (a WSGI module's text) under the same gunicorn gevent worker as the gateway, on a free port."""
    (work / f"{name}_app.py").write_text(app.replace("{port}", str(port)))
    listen = free_port()
    server = Server(name, [sys.executable, "-m", "gunicorn", "-k", "gevent", "--worker-connections", "10000", "-w", "1",
                           "--bind", f"127.0.0.1:{listen}", "--chdir", str(work), f"{name}_app:app"],
                    {**os.environ, "PYTHONPATH": str(ROOT)}, work, work / f"{name}.log")
    server.url = f"http://127.0.0.1:{listen}/v1/chat/completions"
    return server


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="the gateway files (default: the last commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5, help="per plain-request load")
    parser.add_argument("--slow-streams", type=int, default=5000, help="for memory per open stream (0: skip)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-floor-"))
    source = args.source.resolve() if args.source else snapshot(work)[0]
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/v1"
    fake = fake_upstream(port, work, max_seconds=1800).start()
    relays = [relay_server("floor", APP, port, work), relay_server("stack", STACK_APP, port, work)]
    redis = RedisServer(work)
    gateway = our_gateway("ours", fake_url, work, source)
    pair = our_gateway("ours-redis", fake_url, work, source, workers=2, redis_url=redis.url)
    def to_fake(shape):  # the stream request the gateway makes, for the floor app or the fake itself
        return {"model": "bench", "messages": [{"role": "user", "content": shape.directive}], "stream": True}
    chunks, plain, scaling = {"floor": [], "stack": [], "gateway": []}, {"direct": [], "floor": [], "stack": [],
                                                                         "gateway": []}, []
    memory = {}
    try:
        fake.wait_ready(f"{fake_url}/models", None, 20)
        for server in relays:
            server.start().wait_ready(server.url, to_fake(PLAIN), 20)
        redis.start()
        for target in (gateway, pair):
            target.server.start().wait_ready(f"{target.base}/health", None, 30)
            choose_endpoint(target)
        for n in range(args.rounds):
            for name, server, (url, body, key) in (
                    *((server.name, server, (server.url, to_fake(FAST), None)) for server in relays),
                    ("gateway", gateway.server, (*gateway.request(V1_STREAM, FAST), gateway.key))):
                pids, before = server.pids(), cpu_seconds(server.pids())
                result = streams(url, body, args.streams, key)
                relayed = result.completed * FAST.chunks
                chunks[name].append((cpu_seconds(pids) - before) * 1e6 / relayed if relayed else float("nan"))
                print(f"round {n + 1} streams, {name}: {chunks[name][-1]:.1f} us CPU per relayed chunk, total p50 "
                      f"{result.total(50) or 0:.0f} ms, {result.completed} completed", flush=True)
            for name, server, (url, body, key), stream_body in (
                    ("direct", fake, (f"{fake_url}/chat/completions", to_fake(PLAIN), None), to_fake(STREAM)),
                    *((server.name, server, (server.url, to_fake(PLAIN), None), to_fake(STREAM)) for server in relays),
                    ("gateway", gateway.server, (*gateway.request(V1_PLAIN), gateway.key),
                     gateway.request(V1_STREAM, STREAM)[1])):
                plain[name].append(plain_figures(server, url, body, key, args.seconds, stream_body, args.streams))
                print(f"round {n + 1} plain, {name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in plain[name][-1].items()),
                      flush=True)
            scaling.append(cpu_per_request(pair, redis, fake, args.seconds))
            print(f"round {n + 1} 2 workers + Redis, c=64: " + ", ".join(f"{k} {v:,.1f}" for k, v in scaling[-1].items()),
                  flush=True)
        for name, server, (url, body, key) in (
                *((server.name, server, (server.url, to_fake(SLOW), None)) for server in relays),
                ("gateway", gateway.server, (*gateway.request(V1_STREAM, SLOW), gateway.key))):
            if args.slow_streams:
                memory[name] = memory_per_stream(server, url, body, key, args.slow_streams)
                print(f"{args.slow_streams} slow streams, {name}: {memory[name]:.1f} KB per open stream", flush=True)
    finally:
        for server in (gateway.server, pair.server, *relays, fake):
            server.stop()
        redis.stop()
    report(chunks, plain, scaling, memory)
    return 0


def plain_figures(server: Server, url: str, body: dict, key: str | None, seconds: float,
                  stream_body: dict, count: int) -> dict[str, float]:
    """Plain requests at c=1 and c=64 (with the server's CPU per request), and `count` streams of 20 chunks
    10 ms apart sent at once (`stream_body`): their time to first byte."""
    one = load(url, body, 1, seconds, key)
    pids = server.pids()
    before = cpu_seconds(pids)
    many = load(url, body, 64, seconds, key)
    cpu = (cpu_seconds(pids) - before) * 1e6 / max(many.requests, 1)
    started = streams(url, stream_body, count, key)
    return {"c=1 p50 ms": one.p50_ms, "c=1 p99 ms": one.p99_ms, "c=64 req/s": many.rps, "CPU us per request": cpu,
            f"{count} streams TTFB p50 ms": started.ttfb(50) or float("nan")}


def memory_per_stream(server: Server, url: str, body: dict, key: str | None, count: int) -> float:
    """The server's peak RSS during `count` slow streams opened at once, less its idle RSS, per stream (KB)."""
    time.sleep(1)
    idle = server.rss_kb()
    with MemorySampler(server) as sampler:
        result = streams(url, body, count, key, chunks=SLOW.chunks, deadline=120)
    if result.completed < count:
        print(f"  ({result.completed} of {count} completed, errors {result.errors})", flush=True)
    return (sampler.peak_kb - idle) / count


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has ended
    return usage.ru_utime + usage.ru_stime


def cpu_per_request(pair, redis: RedisServer, fake, seconds: float) -> dict[str, float]:
    """Plain requests at c=64 through two workers and Redis: req/s, and each process's CPU per request."""
    groups = {"workers": pair.server.pids(), "redis": redis.server.pids(), "fake": fake.pids()}
    before = {name: cpu_seconds(pids) for name, pids in groups.items()} | {"wrk": children_cpu()}
    result = load(*pair.request(V1_PLAIN), 64, seconds, pair.key)
    after = {name: cpu_seconds(pids) for name, pids in groups.items()} | {"wrk": children_cpu()}
    per = {name: (after[name] - before[name]) * 1e6 / max(result.requests, 1) for name in before}
    return {"req/s": result.rps, **{f"{name} us": value for name, value in per.items()}}


def report(chunks: dict, plain: dict, scaling: list, memory: dict) -> None:
    median = statistics.median
    f, st, g = (median(chunks[name]) for name in ("floor", "stack", "gateway"))
    print(f"\nmedian CPU per relayed chunk: floor (gunicorn + gevent, raw relay) {f:.1f} us, stack (+ Flask and "
          f"requests) {st:.1f} us, gateway {g:.1f} us ({g / f:.2f}x the floor, {g / st:.2f}x the stack); "
          f"1 / floor = {1e6 / f:,.0f} chunks/s per busy worker")
    figure = {name: {k: median(r[k] for r in rounds) for k in rounds[0]} for name, rounds in plain.items()}
    d = figure["direct"]
    for name in ("floor", "stack", "gateway"):
        x = figure[name]
        print(f"plain, {name}: c=1 added p50 {x['c=1 p50 ms'] - d['c=1 p50 ms']:.2f} ms, p99 "
              f"{x['c=1 p99 ms'] - d['c=1 p99 ms']:.2f} ms; c=64 {x['c=64 req/s']:,.0f} req/s, "
              f"{x['CPU us per request']:,.0f} us of CPU per request; " + ", ".join(
                  f"{k.replace(' ms', '')} added {v - d[k]:.0f} ms" for k, v in x.items() if "streams" in k))
    if memory:
        print("memory per open slow stream: " + ", ".join(f"{name} {kb:.1f} KB" for name, kb in memory.items()))
    one = figure["gateway"]["c=64 req/s"]
    two = {k: median(r[k] for r in scaling) for k in scaling[0]}
    total = sum(v for k, v in two.items() if k.endswith(" us"))
    cores = os.cpu_count() or 1
    # Every process of the run shares the cores, and each of the two workers can use at most one of them.
    ceiling = min(cores * 1e6 / total, 2 * 1e6 / two["workers us"])
    print(f"2 workers + Redis: {two['req/s']:,.0f} req/s ({two['req/s'] / one:.2f}x one worker's {one:,.0f}); CPU per "
          f"request: " + ", ".join(f"{k} {v:,.0f}" for k, v in two.items() if k.endswith(" us"))
          + f", {total:,.0f} us in all; {cores} cores serve at most {ceiling:,.0f} req/s = {ceiling / one:.2f}x one "
            "worker")


if __name__ == "__main__":
    sys.exit(main())
