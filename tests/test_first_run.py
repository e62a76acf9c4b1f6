"""The first minutes of a user's gateway: the check `make run` runs before gunicorn, plain gunicorn with a
wrong setting, the address it prints, Ctrl-C, and the README's quick start curl, pasted as it is."""
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import requests

from tests.gateway import MASTER_KEY, ROOT, SETTINGS, free_port, wait_until


def clean_env(**settings) -> dict:
    # Every setting set (to "" unless given), so a developer's .env cannot leak in: python-dotenv never overrides
    # a variable that is already set. WEB_CONCURRENCY is read by gunicorn's own import, which cannot take "".
    return {**os.environ, **{name: "" for name in SETTINGS}, "MODEL_CHECK_INTERVAL": "0", "WEB_CONCURRENCY": "1",
            **settings}


def run(command, **settings) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=clean_env(**settings), capture_output=True, text=True, timeout=60,
                          check=False)


def check(**settings) -> subprocess.CompletedProcess:
    """What `make run` runs before gunicorn starts."""
    return run([sys.executable, "-m", "utils.settings", "--check"], **settings)


def gunicorn(**settings) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], **settings)


def unreachable_database() -> str:
    return f"postgresql://gateway@127.0.0.1:{free_port()}/gateway"  # nothing listens there: refused at once


@pytest.mark.parametrize("name, value", [
    ("PORT", "80a"), ("PORT", "0"), ("WEB_CONCURRENCY", "two"), ("WEB_CONCURRENCY", "0"), ("DATABASE_URL", None),
    # What gunicorn itself would refuse only once started: `make check` names them too (README, The two commands).
    ("WEB_CONCURRENCY", "2"), ("HOST", "no-such-host.invalid"),
])
def test_the_check_before_gunicorn_names_a_wrong_setting_in_one_line(tmp_path, name, value):
    result = check(**{"DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}", name: value or unreachable_database()})
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Configuration error: {name}")


@pytest.mark.parametrize("name, value", [("PORT", "80a"), ("PORT", "70000"), ("WEB_CONCURRENCY", "0"),
                                         ("HOST", "no-such-host.invalid")])
def test_plain_gunicorn_names_a_wrong_port_or_worker_count_in_one_line(name, value):
    # gunicorn.conf.py checks these itself: gunicorn needs them before any app code runs. (A non-number
    # WEB_CONCURRENCY set in the shell is read by gunicorn's own import, before this file: make run's check
    # covers that one.)
    result = gunicorn(**{name: value})
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"Configuration error: {name} must be")


def test_plain_gunicorn_names_a_wrong_app_setting_in_one_line_without_a_traceback(tmp_path):
    result = gunicorn(PORT=str(free_port()), RATE_LIMIT_MAX="ten", DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if "RATE_LIMIT_MAX" in line] == [
        "Configuration error: RATE_LIMIT_MAX must be a whole number, got 'ten'"]


def test_plain_gunicorn_names_an_unreachable_database_in_one_line_without_a_traceback():
    result = gunicorn(PORT=str(free_port()), DATABASE_URL=unreachable_database())
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "DATABASE_URL" in line]
    assert line.startswith("Configuration error: DATABASE_URL: cannot open the key database: ")


def test_a_first_run_is_told_what_to_set_next_with_a_generated_master_key(tmp_path):
    result = check(DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}")
    assert result.returncode == 0, result.stderr
    for setting in ("GROQ_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "GEMINI_API_KEY", "HF_TOKEN"):
        assert setting in result.stdout
    assert "secrets.token_urlsafe(32)" in result.stdout
    suggested = re.findall(r"^\s*MASTER_API_KEY=([A-Za-z0-9_-]+)$", result.stdout, flags=re.MULTILINE)
    assert len(suggested) == 1 and len(suggested[0]) >= 43  # 32 random bytes, URL-safe base64
    assert check(DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}").stdout != result.stdout  # a new one each time


def test_a_complete_setup_passes_the_check_silently(tmp_path):
    result = check(DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}", GROQ_API_KEY="gsk_x", MASTER_API_KEY="m" * 43)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_ctrl_c_stops_the_gateway_cleanly_after_saying_where_it_listened(tmp_path):
    port = free_port()
    # A session of its own, so the SIGINT goes to the master and its worker at once, as a terminal's Ctrl-C does.
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT,
                               env=clean_env(PORT=str(port), HOST="127.0.0.1", MASTER_API_KEY=MASTER_KEY,
                                             DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_until(lambda: live(port), timeout=20), "the gateway did not start"
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "SystemExit" not in output, output
    assert f"AI gateway listening on http://127.0.0.1:{port}" in output


def live(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health/live", timeout=5).ok
    except requests.RequestException:  # not listening yet, or a busy machine's slow first answer
        return False


def quick_start() -> str:
    """The README's quick start: the sh block that reads the key from .env and calls /chat."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    [block] = [b for b in blocks if "grep '^MASTER_API_KEY=' .env" in b]
    return block


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_quick_start_curl_works_as_pasted(start_gateway, tmp_path):
    gateway = start_gateway(providers=["groq"])
    # The user's .env, in the directory the commands are pasted in; the shell has no MASTER_API_KEY of its own.
    (tmp_path / ".env").write_text(f"GROQ_API_KEY=gsk_x\nMASTER_API_KEY={MASTER_KEY}\nPORT=3000\n")
    script = quick_start().replace("http://localhost:3000", gateway.url)
    env = {name: value for name, value in os.environ.items() if name not in ("MASTER_API_KEY", "KEY")}
    result = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert (result.returncode, result.stdout) == (0, "Hello from groq"), result.stderr
