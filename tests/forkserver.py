"""Starts gunicorn for the tests about a second sooner than a new interpreter can: one process per test run
imports gunicorn, gevent and the gateway's modules once (about a second of CPU that every `python -m gunicorn`
would spend again), then forks a gunicorn master for each gateway a test asks for. The master reads
gunicorn.conf.py and forks its gevent workers, and each worker builds the app with `create_app`, all as
`python -m gunicorn -c gunicorn.conf.py app:app` does; only the imports are done already.

The standard library is patched by gevent first, as the gevent worker patches it before the app is imported
(gunicorn.conf.py): patching after `ssl` had been imported would not be the same.

Protocol: one JSON line on stdin per gateway ({"args", "env", "cwd", "log"}); the master's pid back on stdout.
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402  (after the patching, like everything below)
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gunicorn.app.wsgiapp  # noqa: E402
import gunicorn.workers.ggevent  # noqa: E402,F401  (the worker class the config names)
from gevent.os import fork_gevent  # noqa: E402

import app  # noqa: E402,F401  (the gateway's modules; the app itself is built by each worker)


def run_gunicorn(order: dict) -> None:
    """In the forked child: become what `python -m gunicorn <args>` would be, with the order's environment,
    folder and log. It ends, as that does, in SystemExit (the master's and each worker's), which leaves the
    server's loop and ends the interpreter the usual way: atexit handlers (the key store's last usage
    write) run as they would."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # gunicorn reaps its own workers
    os.setpgid(0, 0)  # a process group of its own, as a new process started from the tests would have
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(order["cwd"])
    os.environ.clear()
    os.environ.update(order["env"])
    sys.argv = ["gunicorn", *order["args"]]
    gunicorn.app.wsgiapp.run()
    sys.exit(0)


def serve() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # gateways that end are reaped by the kernel
    for line in sys.stdin:
        pid = fork_gevent()  # gevent made ready in the child, and no child watcher in this process
        if pid == 0:
            run_gunicorn(json.loads(line))
        print(pid, flush=True)


if __name__ == "__main__":
    serve()
