"""hookhub under a real ``gunicorn wsgi:app`` in a subprocess: a host, as the tests start them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from conftest import SECRET_KEY, moncash_config, monext_config, monri_config
from hookhub.store import Store

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    def __init__(self, tmp_path: Path, moncash, monri, monext, workers: int = 2, options: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, log_name: str = "gunicorn.log", serve: bool = False):
        """``serve``: started by ``hookhub serve`` (its worker class, threads and hooks; ``options`` are
        its own, and gunicorn's after ``--``), not by ``gunicorn wsgi:app``."""
        self.events_file = tmp_path / "events.jsonl"
        self.instance = tmp_path / "instance"
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")},
            **moncash_config(moncash),
            **monri_config(monri),
            **monext_config(monext),
            "PYTHONPATH": str(ROOT / "tests"),
            "HOOKHUB_HANDLERS": "merchant_handler",
            "HOOKHUB_TEST_EVENTS_FILE": str(self.events_file),
            "HOOKHUB_INSTANCE_PATH": str(self.instance),
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
            "HOOKHUB_SCHEDULER_INTERVAL": "0.2",
            "HOOKHUB_RETRY_BASE_SECONDS": "0.2",
            **(env or {}),
        }
        self.database_url = env.get("HOOKHUB_DATABASE_URL") or "sqlite:///" + str(self.instance / "hookhub.sqlite3")
        self.log = open(tmp_path / log_name, "wb")
        address = self.url[len("http://"):]
        if serve:
            command = [str(Path(sys.executable).parent / "hookhub"), "serve", "--workers", str(workers),
                       "--bind", address, *options]
        else:
            command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", address, *options, "wsgi:app"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_serving(timeout=30)
        except BaseException:
            self.close()  # never leave a server behind a test that could not start it
            raise

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or workers still booting
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start: " + Path(self.log.name).read_text())

    def workers(self) -> list[int]:
        """Pids of the master's worker processes."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def signal_everything(self, signum: int) -> None:
        """Send ``signum`` to the master and every worker (SIGSTOP: a host frozen whole)."""
        for pid in [self.process.pid, *self.workers()]:
            os.kill(pid, signum)

    def kill_everything(self) -> None:
        """SIGKILL the workers and the master: a power cut, with no chance to clean up."""
        for pid in self.workers():
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        self.log.close()

    def delivered(self) -> list[dict]:
        if not self.events_file.exists():
            return []
        # A handler may be writing its line right now: the last piece counts once its newline is there.
        return [json.loads(line) for line in self.events_file.read_text().split("\n")[:-1] if line]

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[dict]:
        return wait_for_deliveries([self], count, timeout)

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """The server's store, opened from the test's side."""
        store = Store(self.database_url)
        try:
            yield store
        finally:
            store.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def wait_for_deliveries(hosts: list[Gunicorn], count: int, timeout: float = 30.0) -> list[dict]:
    """What the handlers of all ``hosts`` received, once ``count`` deliveries were made (and a little after)."""
    deadline = time.monotonic() + timeout
    while sum(len(h.delivered()) for h in hosts) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # anything delivered twice would show up by now
    return [event for h in hosts for event in h.delivered()]
