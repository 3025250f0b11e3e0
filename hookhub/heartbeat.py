"""Each process that claims background work beats in the store while it lives.

The beat (``workers.beat_at``, the database's clock) is renewed every ``INTERVAL`` seconds by a thread
of its own, so a process busy with a slow handler still beats. Work held by a process whose beat is
older than ``hookhub.store.jobs.ORPHAN_AFTER`` is orphaned: any process takes it at once, instead of
waiting for its lease to run out. A process starting on a host also forgets, at once, the processes
of the same host whose pid no longer runs (a server killed whole and started again). A clean stop
gives back what the process holds and removes its row.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from .errors import StoreUnavailable

log = logging.getLogger("hookhub")

INTERVAL = 2.0  # seconds between beats


def _node() -> str | None:
    """Where a pid means one process: this machine's boot and this pid namespace (None where that
    cannot be known, and no process is ever forgotten by its pid)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}:{namespace}"[:128]


def pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it runs
    return True


class Heartbeat:
    """This process's heartbeat in ``store``; ``owner`` is what its claims are recorded under."""

    def __init__(self, store: Any, interval: float = INTERVAL, before_stop: Callable[[], None] = lambda: None):
        """``before_stop`` ends the process's background work before a clean stop gives back its claims."""
        self.store = store
        self.interval = interval
        self.before_stop = before_stop
        self._stopped_in: int | None = None  # the pid of a process that stopped its background work
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.owner = ""
        self._at_exit_registered = False

    @property
    def running(self) -> bool:
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def ensure_started(self) -> str:
        """Beat now and keep beating, unless already beating in this process; the owner id.

        The first beat also forgets this host's dead processes, so their work is taken at once.
        Raises ``StoreUnavailable`` when the store cannot be written: nothing may be claimed then.
        """
        if self.running:
            return self.owner
        with self._lock:
            if self.running:
                return self.owner
            if self._stopped_in == os.getpid():
                raise StoreUnavailable("this process has stopped its background work")
            self._pid, self.owner = os.getpid(), uuid.uuid4().hex  # a forked child is a process of its own
            self._stop = threading.Event()  # an earlier thread keeps its own event
            node = _node()
            self.store.register_worker(self.owner, host=socket.gethostname()[:255], node=node or "", pid=self._pid)
            if node is not None:
                forgotten = self.store.forget_dead_workers(node, alive=pid_runs, keep=self.owner)
                if forgotten:
                    log.warning("took back the work of %d process(es) of this host that no longer run", forgotten)
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="hookhub-heartbeat",
                                            daemon=True)
            self._thread.start()
            if not self._at_exit_registered:
                atexit.register(self.stop)
                self._at_exit_registered = True
        return self.owner

    def _run(self, stop: threading.Event) -> None:
        owner, pid = self.owner, self._pid
        while not stop.wait(self.interval):
            if os.getpid() != pid:
                return
            try:
                if not self.store.beat(owner):
                    return  # stopped, or forgotten: a new owner registers on the next claim
            except StoreUnavailable as exc:
                log.warning("heartbeat not recorded: %s", exc)
            except Exception:
                log.exception("heartbeat failed")

    def after_fork_in_child(self) -> None:
        self._thread, self._pid = None, None  # the parent's beat is the parent's

    def stop(self) -> None:
        """End the background work, stop beating, and give back what this process holds (a clean stop)."""
        if self._pid != os.getpid() or not self.owner:
            return
        self._stopped_in = os.getpid()
        try:
            self.before_stop()  # no round of work may claim or start anything from here on
        except Exception:
            log.exception("stopping the background work failed")
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 1)
        try:
            self.store.forget_worker(self.owner)
        except Exception as exc:  # the store may be gone at exit: the leases then run out by themselves
            log.warning("could not give back this process's work: %s", exc)
        self._thread, self._pid = None, None
