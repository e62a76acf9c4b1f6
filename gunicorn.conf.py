"""gunicorn settings. Imports nothing from the app: the gevent worker patches the standard library
itself, before the app (and `ssl`) is imported."""
import os
import sys

from dotenv import load_dotenv

load_dotenv()  # PORT, WEB_CONCURRENCY and REDIS_URL may come from .env

# What to serve, so `gunicorn -c gunicorn.conf.py` alone starts the gateway (a name on the command line wins).
wsgi_app = "app:app"
# Where to listen: HOST (every interface by default; 127.0.0.1 behind a local nginx), on PORT.
_host = os.environ.get("HOST") or "0.0.0.0"
_port = os.environ.get("PORT") or "3000"
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"  # an IPv6 address goes in brackets
# gevent: thousands of concurrent streams per worker, each a greenlet waiting on its provider.
worker_class = "gevent"
# One worker keeps limits, round-robin and metrics exact in process memory; more need REDIS_URL.
workers = int(os.environ.get("WEB_CONCURRENCY") or 1)
# Open connections per worker.
worker_connections = 2000
# A gevent worker's heartbeat runs in its own greenlet, so a long stream never trips this.
timeout = 60
# Time a worker gets on shutdown to finish the streams it is serving.
graceful_timeout = 30
# Idle client keep-alive.
keepalive = 5
# Our own JSON line covers each request; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = "warning"
# Preloading would import ssl before gevent patches it.
preload_app = False


def on_starting(server):
    """Refuse several workers without shared state: each would keep its own limits and counters."""
    if server.cfg.workers > 1 and not os.environ.get("REDIS_URL"):
        sys.exit(f"Refusing to start {server.cfg.workers} workers without REDIS_URL: each worker would keep "
                 "its own rate limits, rotation and metrics. Set REDIS_URL or use one worker.")
