"""The floor under the gateway's cost per relayed chunk: the same gunicorn gevent worker running a WSGI app
that does nothing but relay, raw socket reads from the fake provider yielded as they come (no HTTP client,
no parsing, no JSON, no Flask), measured like the gateway (`python -m bench.floor`): the worker's CPU per
relayed chunk under 100 fast streams, and the same for the gateway in the same run. What is left between
the two is the gateway's own work; the floor itself is gevent's hub, the syscalls and gunicorn's writes.

    python -m bench.floor [--source DIR] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path

from bench.__main__ import cpu_seconds
from bench.procs import Server, free_port
from bench.shapes import FAST
from bench.streams import streams
from bench.targets import ROOT, V1_STREAM, choose_endpoint, fake_upstream, our_gateway, snapshot

APP = '''
import socket

def app(environ, start_response):
    """Relay the fake's stream: each socket read yielded as it is (its HTTP chunk framing included)."""
    body = environ["wsgi.input"].read()
    host, port = "127.0.0.1", {port}
    upstream = socket.create_connection((host, port))
    upstream.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                     b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += upstream.recv(65536)
    rest = head.split(b"\\r\\n\\r\\n", 1)[1]
    def relay():
        try:
            if rest:
                yield rest
            while True:
                data = upstream.recv(65536)
                if not data or data.endswith(b"0\\r\\n\\r\\n"):
                    if data:
                        yield data
                    return
                yield data
        finally:
            upstream.close()
    return relay()
'''


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="the gateway files (default: the last commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-floor-"))
    source = args.source.resolve() if args.source else snapshot(work)[0]
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/v1"
    fake = fake_upstream(port, work, max_seconds=900).start()
    (work / "floor_app.py").write_text(APP.replace("{port}", str(port)))
    floor_port = free_port()
    floor = Server("floor", [sys.executable, "-m", "gunicorn", "-k", "gevent", "--worker-connections", "2000", "-w",
                             "1", "--bind", f"127.0.0.1:{floor_port}", "--chdir", str(work), "floor_app:app"],
                   {**os.environ, "PYTHONPATH": str(ROOT)}, work, work / "floor.log")
    gateway = our_gateway("ours", fake_url, work, source)
    results = {"floor": [], "gateway": []}
    try:
        fake.wait_ready(f"{fake_url}/models", None, 20)
        floor.start()
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", floor_port), timeout=1).close()
                break
            except OSError:
                import time
                time.sleep(0.1)
        gateway.server.start().wait_ready(f"{gateway.base}/health", None, 30)
        choose_endpoint(gateway)
        body = {"model": "bench", "messages": [{"role": "user", "content": FAST.directive}], "stream": True}
        floor_url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
        for n in range(args.rounds):
            for name, server, (url, request, key) in (
                    ("floor", floor, (floor_url, body, None)),
                    ("gateway", gateway.server, (*gateway.request(V1_STREAM, FAST), gateway.key))):
                pids = server.pids()
                before = cpu_seconds(pids)
                result = streams(url, request, args.streams, key)
                cpu = cpu_seconds(pids) - before
                relayed = result.completed * FAST.chunks
                results[name].append((cpu * 1e6 / relayed if relayed else float("nan"), result.total(50) or 0,
                                      result.completed))
                print(f"round {n + 1} {name}: {results[name][-1][0]:.1f} us CPU per chunk, total p50 "
                      f"{results[name][-1][1]:.0f} ms, {result.completed} completed", flush=True)
    finally:
        gateway.server.stop()
        floor.stop()
        fake.stop()
    f = statistics.median(r[0] for r in results["floor"])
    g = statistics.median(r[0] for r in results["gateway"])
    print(f"\nmedian CPU per relayed chunk: floor (gunicorn + gevent, raw relay) {f:.1f} us, gateway {g:.1f} us "
          f"({g / f:.2f}x the floor); 1 / floor = {1e6 / f:,.0f} chunks/s per busy worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
