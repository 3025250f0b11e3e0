"""The background worker inside every hookhub process: due deliveries and deferred verifications.

It runs as a daemon thread in each web worker, so ``gunicorn wsgi:app`` alone is a complete
deployment. Work is claimed through the store's leases, so any number of processes can run one.

Forking (``gunicorn --preload``) is handled: a fork waits for the current round of work to end, so
the child never inherits a lock held mid-round, and the child starts its own thread on its first
request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("hookhub")

FORK_WAIT = 10.0  # seconds a fork waits for a round of background work to finish
# Rounds of work are at least this far apart, so that work arriving meanwhile is claimed and
# recorded together: under load, one database transaction then serves many jobs.
GATHER = 0.1


class Scheduler:
    def __init__(self, work: Callable[[], int], interval: float, gather: float = GATHER):
        """``work`` does one round of due work and returns how much it did (0: idle)."""
        self.work = work
        self.interval = interval
        self.gather = gather
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._round = threading.Lock()  # held while a round runs, and across a fork
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._held_for_fork = False

    def ensure_started(self) -> None:
        """Start the thread in this process unless it is running (after a fork it never is)."""
        if self._running():
            return
        with self._start_lock:
            if self._running() or self._stop.is_set():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="hookhub-scheduler", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the background thread runs in this process."""
        return self._running()

    def _running(self) -> bool:
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look for work now instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._running():
            assert self._thread is not None
            self._thread.join(timeout)

    # -- fork hooks (see hookhub.hub) --------------------------------------------------------------

    def before_fork(self) -> None:
        self._held_for_fork = self._round.acquire(timeout=FORK_WAIT)
        if not self._held_for_fork:
            log.warning("forking while background work is still running")

    def after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._round.release()

    def after_fork_in_child(self) -> None:
        if self._held_for_fork:
            self._round.release()
        self._thread = None  # the parent's thread does not exist here

    def _run(self) -> None:
        idle_for = self.interval
        while not self._stop.is_set():
            self._wake.clear()
            try:
                with self._round:
                    done = self.work()
                idle_for = self.interval
            except Exception:
                # The store may be down; keep the thread alive and back off a little.
                log.exception("background work failed")
                done = 0
                idle_for = min(idle_for * 2, 30 * self.interval)
            if done or self._wake.wait(idle_for):
                self._stop.wait(self.gather)
