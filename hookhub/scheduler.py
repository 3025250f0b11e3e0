"""The background worker inside every hookhub process: due deliveries and deferred verifications.

It runs as a daemon thread in each web worker, so ``gunicorn wsgi:app`` alone is a complete
deployment. Work is claimed through the store's leases, so any number of processes can run one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("hookhub")


class Scheduler:
    def __init__(self, work: Callable[[], int], interval: float):
        """``work`` does one round of due work and returns how much it did (0: idle)."""
        self.work = work
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread in this process if it is not running (after a fork it never is)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="hookhub-scheduler", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for work now instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        idle_for = self.interval
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = self.work()
                idle_for = self.interval
            except Exception:
                # The store may be down; keep the thread alive and back off a little.
                log.exception("background work failed")
                done = 0
                idle_for = min(idle_for * 2, 30 * self.interval)
            if not done:
                self._wake.wait(idle_for)
