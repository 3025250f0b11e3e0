"""Handing events to merchant handlers: each (event, handler) pair on its own, at least once.

Each attempt runs in a thread apart from the caller's and is waited for at most ``timeout``
seconds, so one slow handler never holds up the others. Python cannot stop a thread, so an attempt
that outlives its timeout is recorded as overdue and left running (its thread serves no other
attempt), and its process keeps the delivery's lease while it runs: nobody starts the same
delivery beside it. When it ends, its result is recorded like any other (a late success is a
success). Only an attempt still running after a whole lease is given up on; then the delivery is
retried while the stuck thread stays where it is.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from . import metrics, redact
from .plugins import Handler
from .retry import RetryPolicy
from .store import DeliveryJob, DeliveryResult, Store

log = logging.getLogger("hookhub")

MAX_OVERDUE = 8  # attempts left running past their timeout before this process stops starting more
BATCH = 32  # deliveries claimed, and their results recorded, per database transaction
BATCH_SECONDS = 1.0  # how long one process works on a claimed batch before giving the rest back


class HandlerTimeout(Exception):
    """A handler did not return within the delivery timeout."""


class HandlerExit(Exception):
    """A handler raised something that is not an ``Exception`` (``SystemExit``, say)."""


@dataclasses.dataclass
class _Attempt:
    job: DeliveryJob
    started: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: str | None = None  # the traceback, once the handler has raised
    renewed: float = 0.0  # when its lease was last extended

    @property
    def finished(self) -> bool:
        return self.done.is_set()


class _Runner:
    """A thread that runs handler attempts one after another.

    Starting a thread per attempt costs more than a small handler; one runner serves attempt
    after attempt until one outlives its timeout, and is then left to finish that one and end.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="hookhub-handler", daemon=True)
        self.thread.start()

    def run(self, attempt: Callable[[], None]) -> None:
        self._queue.put(attempt)

    def retire(self) -> None:
        """End the thread once the attempt it is running returns."""
        self._queue.put(None)

    def _loop(self) -> None:
        while (attempt := self._queue.get()) is not None:
            attempt()


class Deliverer:
    def __init__(self, store: Store, handlers: Mapping[str, Handler], policy: RetryPolicy,
                 redactor: redact.Redactor = redact.NOTHING, lease: float = 300.0, timeout: float = 30.0,
                 claimant: Callable[[], str | None] = lambda: None):
        """``claimant`` gives the id claims are recorded under (this process's heartbeat), beating first."""
        self.store = store
        self.claimant = claimant
        self.handlers = dict(handlers)
        self.policy = policy
        self.redactor = redactor
        self.lease = lease
        self.timeout = timeout
        self._overdue: dict[int, _Attempt] = {}  # delivery id -> attempt still running past its timeout
        self._overdue_lock = threading.Lock()
        self._runner: _Runner | None = None

    @property
    def overdue(self) -> int:
        """How many of this process's handler calls are running past their timeout."""
        return len(self._overdue)

    def run(self, limit: int = BATCH) -> int:
        """Deliver up to ``limit`` due deliveries, claimed together; how many were attempted.

        The batch's results are recorded together. A batch is worked on for ``BATCH_SECONDS`` at
        most (and never a third of a lease): whatever is left then, or when an attempt is slow,
        is given back at once with its attempt uncounted, so other processes take it up and no
        waiting job's lease can run out. Results are recorded and the rest given back even when
        the store fails in between.
        """
        self.tend_overdue()
        if len(self._overdue) >= MAX_OVERDUE:
            log.warning("%d handler calls are still running past their timeout; not starting more", MAX_OVERDUE)
            return 0
        if not self.handlers:
            return 0
        waiting = collections.deque(self.store.claim_deliveries(list(self.handlers), lease=self.lease, limit=limit,
                                                                claimed_by=self.claimant()))
        deadline = time.monotonic() + min(BATCH_SECONDS, self.lease / 3)
        results: list[DeliveryResult] = []

        def give_back_the_rest() -> None:
            rest = list(waiting)
            waiting.clear()
            self.store.release_deliveries(rest)

        attempted = 0
        try:
            while waiting and len(self._overdue) < MAX_OVERDUE and time.monotonic() < deadline:
                job = waiting.popleft()
                try:
                    started = self.store.delivery_started(job)
                except BaseException:
                    waiting.appendleft(job)  # never started: given back with the rest
                    raise
                if not started:
                    log.warning("delivery %s of %s to %s was taken over before it started; not starting it",
                                job.id, job.event.id, job.handler)
                    continue
                attempted += 1
                result = self.deliver(job, when_slow=give_back_the_rest, slow_at=deadline)
                if result is not None:
                    results.append(result)
        finally:
            try:
                self._record(results)
            finally:
                give_back_the_rest()
        return attempted

    def deliver(self, job: DeliveryJob, when_slow: Callable[[], None] = lambda: None,
                slow_at: float = math.inf) -> DeliveryResult | None:
        """Run one attempt; its result, or None when it outlived the timeout (it is then tended).

        ``when_slow`` is called if the attempt is still running at ``slow_at`` (a monotonic time).
        The attempt must already be counted as started (``Store.delivery_started``).
        """
        attempt = self._start(job)
        if not attempt.done.wait(max(0.0, min(slow_at, attempt.started + self.timeout) - time.monotonic())):
            if time.monotonic() < attempt.started + self.timeout:
                when_slow()
                attempt.done.wait(max(0.0, attempt.started + self.timeout - time.monotonic()))
        if attempt.finished:
            return self._result(attempt)
        assert self._runner is not None
        self._runner.retire()  # busy with this attempt for as long as it takes: the next gets a new one
        self._runner = None
        attempt.renewed = time.monotonic()
        with self._overdue_lock:
            self._overdue[job.id] = attempt
        self.store.delivery_overdue(job, f"HandlerTimeout: handler {job.handler} did not return within "
                                         f"{self.timeout:g}s; still running", lease=self.lease)
        log.warning("handler %s is still running on %s after %gs", job.handler, job.event.id, self.timeout)
        return None

    def tend_overdue(self) -> None:
        """Record attempts that ended after their timeout; renew or give up the leases of the rest."""
        with self._overdue_lock:
            overdue = list(self._overdue.values())
        now = time.monotonic()
        for attempt in overdue:
            if attempt.finished:
                self._record([self._result(attempt)])
            elif now - attempt.started > self.lease:
                attempt.error = (f"HandlerTimeout: handler {attempt.job.handler} was still running after "
                                 f"{self.lease:g}s; given up on")
                self._record([self._result(attempt)])
            else:
                if now - attempt.renewed > self.lease / 3:  # well before the lease could run out
                    self.store.delivery_overdue(attempt.job, None, lease=self.lease)
                    attempt.renewed = now
                continue
            with self._overdue_lock:
                self._overdue.pop(attempt.job.id, None)

    def _start(self, job: DeliveryJob) -> _Attempt:
        handler = self.handlers[job.handler]
        attempt = _Attempt(job, time.monotonic())

        def run() -> None:
            started = time.perf_counter()
            try:
                try:
                    handler(job.event)
                except Exception:
                    raise
                except BaseException as exc:  # SystemExit and the like end the attempt, not the process
                    raise HandlerExit(f"handler raised {type(exc).__name__}") from exc
            except Exception:
                # The traceback is the operator's best clue; keep it, minus any configured secret.
                attempt.error = self.redactor.text(traceback.format_exc())
            finally:
                metrics.handler_attempt(job.handler, time.perf_counter() - started)
                attempt.done.set()

        if self._runner is None or not self._runner.thread.is_alive():  # none yet, or lost in a fork
            self._runner = _Runner()
        self._runner.run(run)
        return attempt

    def _result(self, attempt: _Attempt) -> DeliveryResult:
        job = attempt.job
        if attempt.error is None:
            return DeliveryResult(job)
        metrics.handler_failed(job.handler)
        retry_at = self.policy.next_at(job.attempts)
        log.warning("handler %s failed on %s (attempt %d%s)", job.handler, job.event.id, job.attempts,
                    ", dead-lettered" if retry_at is None else "")
        return DeliveryResult(job, attempt.error, retry_at)

    def _record(self, results: list[DeliveryResult]) -> None:
        for result, settled in zip(results, self.store.settle_deliveries(results)):
            if not settled:
                job = result.job
                log.warning("delivery %s of %s to %s outlived its lease; another process has it now",
                            job.id, job.event.id, job.handler)
