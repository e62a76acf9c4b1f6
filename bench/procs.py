"""The servers under test as subprocesses: start, wait until they answer, measure memory, stop.

Each server runs in its own session (process group), so stopping it ends exactly the processes this
benchmark started (the master and its workers) and nothing else.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, command: list[str], env: dict, cwd: Path | None, log_path: Path):
        self.name, self.command, self.env, self.cwd, self.log_path = name, command, env, cwd, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self.log_path.open("ab"),
                                            stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise RuntimeError(f"{self.name} could not be started ({' '.join(self.command)}): {exc}") from None
        return self

    def wait_ready(self, url: str, body: dict | None, seconds: float, key: str | None = None) -> None:
        """Until `url` answers 2xx (a POST of `body`, or a GET), the process exits, or time runs out."""
        deadline = time.monotonic() + seconds
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            status, last = http(url, body, key, timeout=5)
            if 200 <= status < 300:
                return
            time.sleep(0.2)  # not listening yet: nothing to wait on but the clock
        raise RuntimeError(f"{self.name} did not answer {url} in {seconds:.0f} s (last: {last}): {self.tail()}")

    def pids(self) -> list[int]:
        """The server's processes: the one started and all its descendants."""
        if not self.process or self.process.poll() is not None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_kb(self, pids: list[int] | None = None) -> int:
        total = 0
        for pid in pids or self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process:  # workers left behind by a master that died first
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def problems(self, top: int = 5) -> list[tuple[int, str]]:
        """The most frequent warning and error lines of the server's log, as (count, line)."""
        counts: dict[str, int] = {}
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                if record.get("level") not in ("warning", "error", "critical"):
                    continue
                details = {k: v for k, v in record.items() if k in ("reason", "service", "status", "outcome")}
                if isinstance(record.get("error"), str):  # a traceback: its last line names the exception
                    details["error"] = record["error"].strip().splitlines()[-1][:200]
                key = f"{record.get('level')}: {record.get('message')} {json.dumps(details)[:240]}"
            elif line[:1] not in (" ", "\t") and any(word in line for word in ("Error:", "Exception:", "WARNING")):
                key = line.strip()[:240]  # an exception's last line (tracebacks' other lines are indented)
            else:
                continue
            key = re.sub(r"\d+(\.\d+)?", "N", key)  # one line for messages that differ only in numbers
            counts[key] = counts.get(key, 0) + 1
        return sorted(((n, k) for k, n in counts.items()), reverse=True)[:top]

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        # The request lines say nothing about why a server stopped.
        return " | ".join([line for line in text if not line.startswith('{"level": "info"')][-lines:])


def http(url: str, body: dict | None, key: str | None = None, timeout: float = 5) -> tuple[int, str]:
    """One request: (status, first bytes of the body); status 0 when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(300).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(300).decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


class MemorySampler:
    """Peak RSS of a server's processes, sampled every `interval` seconds in a thread, while in a `with`."""

    def __init__(self, server: Server, interval: float = 0.01):
        self.server, self.interval = server, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        pids, refreshed = self.server.pids(), time.monotonic()
        # Bounded: a sampler never outlives its `with`, and never runs past 10 minutes.
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            if time.monotonic() - refreshed > 1:  # a worker may have been replaced
                pids, refreshed = self.server.pids(), time.monotonic()
            self.peak_kb = max(self.peak_kb, self.server.rss_kb(pids))
            self._stop.wait(self.interval)
