"""gunicorn's HUP (`systemctl reload`) re-reads .env: a rotated master key takes effect without a restart, and a
wrong value is refused in one line while the gateway keeps serving with what it had."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.gateway import ROOT, SETTINGS, free_port, wait_until


def status_with(url: str, key: str) -> int:
    try:
        return requests.get(f"{url}/admin/keys", headers={"X-API-Key": key}, timeout=5).status_code
    except (requests.ConnectionError, requests.Timeout):  # not up yet: a worker still booting holds the request
        return 0


def started_from_env_file(tmp_path, from_file: set[str], **env) -> tuple[subprocess.Popen, Path]:
    """gunicorn with tmp_path/.env, as `make run` starts it, and its log. gunicorn.conf.py reads the .env beside
    it: a copy in tmp_path reads tmp_path/.env, not the developer's. The settings the file gives are left unset;
    the others are set to "" (or as given), so no other .env can supply them."""
    shutil.copy(ROOT / "gunicorn.conf.py", tmp_path / "gunicorn.conf.py")
    env = {**{k: v for k, v in os.environ.items() if k not in from_file},
           **{name: "" for name in SETTINGS if name not in from_file}, **env}
    log = tmp_path / "gateway.log"
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py")],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return process, log


def test_hup_applies_a_rotated_key_from_env_and_refuses_a_wrong_value(tmp_path):
    env_file = tmp_path / ".env"
    port = free_port()
    common = f"HOST=127.0.0.1\nPORT={port}\nDATABASE_URL=sqlite:///{tmp_path / 'keys.db'}\nMODEL_CHECK_INTERVAL=0\n"
    env_file.write_text(common + "MASTER_API_KEY=first-master-key\n")
    process, log = started_from_env_file(tmp_path, {"HOST", "PORT", "DATABASE_URL", "MODEL_CHECK_INTERVAL",
                                                    "MASTER_API_KEY"}, WEB_CONCURRENCY="1")
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: status_with(url, "first-master-key") == 200, timeout=20), log.read_text()

        env_file.write_text(common + "MASTER_API_KEY=second-master-key\n")
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: status_with(url, "second-master-key") == 200, timeout=20), log.read_text()
        # The old worker may still answer for a moment while it finishes: the old key stops once it is gone.
        assert wait_until(lambda: status_with(url, "first-master-key") == 403, timeout=40), log.read_text()

        env_file.write_text(common.replace("MODEL_CHECK_INTERVAL=0", "MODEL_CHECK_INTERVAL=hourly")
                            + "MASTER_API_KEY=third-master-key\n")
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "HUP: .env not applied" in log.read_text(), timeout=20)
        [line] = [line for line in log.read_text().splitlines() if "HUP" in line]
        assert line.endswith("Configuration error: MODEL_CHECK_INTERVAL must be a whole number, got 'hourly'")
        assert process.poll() is None
        # The new workers took the settings the last good .env gave.
        assert (status_with(url, "second-master-key"), status_with(url, "third-master-key")) == (200, 403)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_hups_leave_host_port_and_worker_count_as_gunicorn_started(tmp_path):
    """README, Runbook: HOST, PORT and WEB_CONCURRENCY need a restart. gunicorn reruns gunicorn.conf.py on every
    HUP, so a value a reload took from .env would move the socket, or add workers without REDIS_URL, on the next."""
    env_file = tmp_path / ".env"
    port, other_port = free_port(), free_port()
    common = f"HOST=127.0.0.1\nDATABASE_URL=sqlite:///{tmp_path / 'keys.db'}\nMODEL_CHECK_INTERVAL=0\n"
    env_file.write_text(common + f"PORT={port}\nWEB_CONCURRENCY=1\nMASTER_API_KEY=first-master-key\n")
    process, log = started_from_env_file(tmp_path, {"HOST", "PORT", "WEB_CONCURRENCY", "DATABASE_URL",
                                                    "MODEL_CHECK_INTERVAL", "MASTER_API_KEY"})
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: status_with(url, "first-master-key") == 200, timeout=20), log.read_text()
        for key in ("second-master-key", "third-master-key"):  # the second HUP reruns the file after the first
            env_file.write_text(common + f"PORT={other_port}\nWEB_CONCURRENCY=3\nMASTER_API_KEY={key}\n")
            process.send_signal(signal.SIGHUP)
            assert wait_until(lambda key=key: status_with(url, key) == 200, timeout=20), log.read_text()
        assert status_with(f"http://127.0.0.1:{other_port}", "third-master-key") == 0
        assert wait_until(lambda: len(workers(process.pid)) == 1, timeout=40), log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_stop_right_after_a_hup_ends_the_worker_still_booting(tmp_path):
    """SIGTERM just after a HUP can land on the new worker before it has installed its own signal handlers. It
    must stop that worker at once, not leave it to boot and serve until the master kills it at graceful_timeout
    (30 s later). The window is a few milliseconds; a copy of gunicorn.conf.py widens it to seconds."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text((ROOT / "gunicorn.conf.py").read_text() + (
        "\n_post_fork = post_fork\n\n"
        "def post_fork(server, worker):\n"
        "    _post_fork(server, worker)\n"
        "    if worker.age > 1:  # the workers a HUP starts boot slowly\n"
        "        __import__('time').sleep(5)\n"))
    port = free_port()
    env = {**os.environ, **{name: "" for name in SETTINGS}, "MASTER_API_KEY": "master-key", "SECRET_KEY": "s" * 32,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    log = tmp_path / "gateway.log"
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", f"127.0.0.1:{port}"],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        assert wait_until(lambda: status_with(f"http://127.0.0.1:{port}", "master-key") == 200, timeout=20), \
            log.read_text()
        before = workers(process.pid)
        process.send_signal(signal.SIGHUP)
        # The master forks the new worker once it has checked the new settings; the stop comes while it boots.
        assert wait_until(lambda: workers(process.pid) - before, timeout=20), log.read_text()
        process.terminate()
        assert process.wait(timeout=15) == 0, log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):  # all ended
            os.killpg(process.pid, signal.SIGKILL)  # the master, and any worker it left behind
        process.wait()


def workers(master: int) -> set[str]:
    """The master's workers: its children other than the settings check a HUP runs."""
    found = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {pid for pid in found if "utils.settings" not in command_line(pid)}


def command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except FileNotFoundError:  # it has ended: not a worker to wait for
        return "utils.settings"
