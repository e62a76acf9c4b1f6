"""gunicorn's HUP (`systemctl reload`) re-reads .env: a rotated master key takes effect without a restart, and a
wrong value is refused in one line while the gateway keeps serving with what it had."""
import os
import shutil
import signal
import subprocess
import sys

import requests

from tests.gateway import ROOT, SETTINGS, free_port, wait_until


def status_with(url: str, key: str) -> int:
    try:
        return requests.get(f"{url}/admin/keys", headers={"X-API-Key": key}, timeout=5).status_code
    except (requests.ConnectionError, requests.Timeout):  # not up yet: a worker still booting holds the request
        return 0


def test_hup_applies_a_rotated_key_from_env_and_refuses_a_wrong_value(tmp_path):
    # gunicorn.conf.py reads the .env beside it: a copy in tmp_path reads tmp_path/.env, not the developer's.
    shutil.copy(ROOT / "gunicorn.conf.py", tmp_path / "gunicorn.conf.py")
    env_file = tmp_path / ".env"
    port = free_port()
    common = f"HOST=127.0.0.1\nPORT={port}\nDATABASE_URL=sqlite:///{tmp_path / 'keys.db'}\nMODEL_CHECK_INTERVAL=0\n"
    env_file.write_text(common + "MASTER_API_KEY=first-master-key\n")
    # The settings .env gives are left unset; the others are set to "", so no other .env can supply them.
    from_file = {"HOST", "PORT", "DATABASE_URL", "MODEL_CHECK_INTERVAL", "MASTER_API_KEY"}
    env = {**{k: v for k, v in os.environ.items() if k not in from_file},
           **{name: "" for name in SETTINGS if name not in from_file}, "WEB_CONCURRENCY": "1"}
    log = tmp_path / "gateway.log"
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py")],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: status_with(url, "first-master-key") == 200, timeout=20), log.read_text()

        env_file.write_text(common + "MASTER_API_KEY=second-master-key\n")
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: status_with(url, "second-master-key") == 200, timeout=20), log.read_text()
        assert status_with(url, "first-master-key") == 403

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
