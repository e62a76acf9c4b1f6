"""gunicorn settings. Imports nothing from the app: the gevent worker patches the standard library
itself, before the app (and `ssl`) is imported.

`.env` is read here, in the master, so HOST, PORT, WEB_CONCURRENCY and REDIS_URL may come from it, and the
workers inherit the rest. A variable set in the environment wins over `.env`. A HUP (`systemctl reload`)
re-reads `.env` for the app's settings (keys, limits...): see `on_reload`."""
import os
import resource
import signal
import socket
import subprocess
import sys

from dotenv import dotenv_values, find_dotenv

# The names this master took from .env (comma-separated), kept in its environment because gunicorn runs this
# file afresh on every HUP: what was loaded, and that this run is a reload, must outlive the module.
LOADED = "GATEWAY_DOTENV_NAMES"
# What gunicorn binds and forks by: read once, at the first start (a HUP leaves them as they were).
SERVING = ("HOST", "PORT", "WEB_CONCURRENCY")


def read_env_file() -> dict[str, str]:
    return {name: value for name, value in dotenv_values(find_dotenv()).items() if value is not None}


def fail(message: str):
    sys.exit(f"Configuration error: {message}")  # one line, no traceback; gunicorn exits with status 1


FIRST_START = LOADED not in os.environ
if FIRST_START:  # the first start; on a HUP the environment already holds what .env gave
    # A name whose value equals the file's counts as loaded from it too: systemd's EnvironmentFile=.env sets them
    # all, and a HUP must still be able to change them.
    _loaded = {name: value for name, value in read_env_file().items() if os.environ.get(name, value) == value}
    os.environ.update(_loaded)
    os.environ[LOADED] = ",".join(_loaded)


def whole_number(name: str, value: str, low: int, high: int | None = None) -> int:
    """The same check and wording as utils/settings.py, which the app runs too late for these two: gunicorn
    needs them to bind and fork before any app code runs."""
    try:
        number = int(value)
    except ValueError:
        fail(f"{name} must be a whole number, got {value.strip()!r}")
    if number < low or (high is not None and number > high):
        fail(f"{name} must be " + (f"between {low} and {high}" if high is not None else f"at least {low}")
             + f", got {number}")
    return number


# What to serve, so `gunicorn -c gunicorn.conf.py` alone starts the gateway (a name on the command line wins).
wsgi_app = "app:app"
# Where to listen: HOST (every interface by default; 127.0.0.1 behind a local nginx), on PORT.
_host = (os.environ.get("HOST") or "").strip() or "0.0.0.0"
_port = whole_number("PORT", os.environ.get("PORT") or "3000", 1, 65535)
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"  # an IPv6 address goes in brackets
if FIRST_START:  # else gunicorn tries five times, a second apart, and ends in "Can't connect"; a HUP keeps HOST
    try:
        socket.getaddrinfo(_host, _port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        fail(f"HOST must be an address this machine can listen on, got {_host!r} "
             f"({getattr(exc, 'strerror', None) or exc})")
# gevent: thousands of concurrent streams per worker, each a greenlet waiting on its provider.
worker_class = "gevent"
# One worker keeps limits, round-robin and metrics exact in process memory; more need REDIS_URL.
workers = whole_number("WEB_CONCURRENCY", os.environ.get("WEB_CONCURRENCY") or "1", 1)
# Open connections per worker: a stream holds two sockets (its client's and its provider's), so 10,000 need about
# 20,000 file descriptors, the limit raised below as far as the system lets a process raise it.
worker_connections = 10_000
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_wanted = 2 * worker_connections + 1000  # and room for the database, logs and Redis
if _soft != resource.RLIM_INFINITY and _soft < _wanted:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_wanted if _hard == resource.RLIM_INFINITY else min(_wanted, _hard),
                                                    _hard))
    except (ValueError, OSError):  # not allowed here: the limit stays, and connections beyond it are refused
        pass
# A gevent worker's heartbeat runs in its own greenlet, so a long stream never trips this.
timeout = 60
# Time a worker gets on shutdown (and on a HUP, the old workers) to finish the streams it is serving.
graceful_timeout = 30
# Idle client keep-alive.
keepalive = 5
# Our own JSON line covers each request; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = "warning"
# Preloading would import ssl before gevent patches it.
preload_app = False
# gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl, for `gunicornc`) is not used here, and every instance on
# one machine would take over the same path from the last one. Older gunicorn ignores the name.
control_socket_disable = True


def on_starting(server):
    """Refuse several workers without shared state: each would keep its own limits and counters."""
    if server.cfg.workers > 1 and not os.environ.get("REDIS_URL"):
        sys.exit(f"Refusing to start {server.cfg.workers} workers without REDIS_URL: each worker would keep "
                 "its own rate limits, rotation and metrics. Set REDIS_URL or use one worker.")


def post_fork(server, worker):
    """A new worker keeps the master's signal handlers, which only queue the signal for the master's loop, until it
    installs its own after gevent has patched the standard library. A stop (SIGTERM, SIGINT, SIGQUIT) landing in
    that window, as it does when the gateway is stopped just after a HUP, was lost: the worker booted and served on
    until the master killed it at graceful_timeout, 30 s later. A worker that has not booted serves nothing yet, so
    until then these signals stop it at once."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def post_worker_init(worker):
    """Ctrl-C reaches a worker twice: the terminal's SIGINT and the master's SIGQUIT. gunicorn's gevent worker
    answers each by spawning a greenlet that ends in sys.exit(0); the second one runs while the interpreter is
    shutting down, where gevent prints its SystemExit as a traceback. The first quit is enough.

    The first worker to have loaded the app also says where the gateway answers (gunicorn says nothing at the
    warning log level), once, and only now that it does answer."""
    if worker.age == 1:
        hint = " (Ctrl-C stops it)" if sys.stderr.isatty() else ""
        for host, port in (address for address in worker.cfg.address if isinstance(address, tuple)):
            where = f"[{host}]" if ":" in host else host
            print(f"AI gateway listening on http://{where}:{port}{hint}", file=sys.stderr, flush=True)

    quitting = []

    def quit_once(sig, frame):
        # Repeats are dropped here, not by setting SIG_IGN: a signal already on its way would then find SIG_IGN
        # in place, and Python reports that as "Signal 3 ignored due to race condition", with a traceback.
        if not quitting:
            quitting.append(sig)
            worker.handle_quit(sig, frame)

    signal.signal(signal.SIGINT, quit_once)
    signal.signal(signal.SIGQUIT, quit_once)


def on_reload(server):
    """On HUP, before gunicorn starts new workers (the old ones finish their streams): take the app's settings
    afresh from .env, so a rotated key needs no restart. The new values are checked first, as `make run` does;
    a wrong one is named and the workers start with the settings they had, since a worker that cannot boot
    would stop the whole server. HOST, PORT and WEB_CONCURRENCY were read when this file ran: they need a restart."""
    # HOST, PORT and WEB_CONCURRENCY keep the values gunicorn started with: this file runs again on the next HUP,
    # and would otherwise move the listening socket, or fork more workers than on_starting allowed.
    before = [name for name in os.environ[LOADED].split(",") if name and name not in SERVING]
    environment = {name: value for name, value in os.environ.items() if name not in before}
    loaded = {name: value for name, value in read_env_file().items() if name not in environment and name not in SERVING}
    candidate = {**environment, **loaded, LOADED: ",".join(loaded)}
    try:
        check = subprocess.run([sys.executable, "-m", "utils.settings", "--check"], env=candidate,
                               cwd=server.cfg.chdir, capture_output=True, text=True, timeout=60, check=False)
        problem = check.stderr.strip() if check.returncode else ""
    except (OSError, subprocess.SubprocessError) as exc:  # an exception here would stop the master itself
        problem = f"the check could not run: {exc}"
    if problem:
        print(f"HUP: .env not applied, the workers keep their settings. {problem}", file=sys.stderr, flush=True)
        return
    for name in before:
        os.environ.pop(name, None)
    os.environ.update(loaded)
    os.environ[LOADED] = candidate[LOADED]
