"""Handing events to merchant handlers: each (event, handler) pair on its own, at least once.

Each attempt runs in a thread of its own and is waited for at most ``timeout`` seconds. Python
cannot stop a thread, so a handler that hangs is left to finish on its own while the attempt is
recorded as failed and retried later: a handler must be idempotent on ``event.id`` anyway.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping, Sequence

from . import redact
from .plugins import Handler
from .retry import RetryPolicy
from .store import DeliveryJob, Store

log = logging.getLogger("hookhub")


class HandlerTimeout(Exception):
    """A handler did not return within the delivery timeout."""


class Deliverer:
    def __init__(self, store: Store, handlers: Mapping[str, Handler], policy: RetryPolicy,
                 secrets: Sequence[str] = (), lease: float = 300.0, timeout: float = 30.0):
        self.store = store
        self.handlers = dict(handlers)
        self.policy = policy
        self.secrets = list(secrets)
        self.lease = lease
        self.timeout = timeout

    def run_one(self) -> bool:
        """Deliver the most overdue delivery, if any is due; True if one was attempted."""
        job = self.store.claim_delivery(list(self.handlers), lease=self.lease)
        if job is None:
            return False
        self.deliver(job)
        return True

    def _call(self, handler: Handler, job: DeliveryJob) -> None:
        """Run ``handler`` on the job's event in its own thread; re-raise what it raised."""
        outcome: list[BaseException | None] = []

        def attempt() -> None:
            try:
                handler(job.event)
            except BaseException as exc:  # noqa: B036 - handed back to the waiting thread
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=attempt, name=f"hookhub-handler-{job.handler}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise HandlerTimeout(f"handler {job.handler} did not return within {self.timeout:g}s")
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def deliver(self, job: DeliveryJob) -> None:
        handler = self.handlers[job.handler]
        try:
            self._call(handler, job)
        except Exception:
            # The traceback is the operator's best clue; keep it, minus any configured secret.
            error = redact.scrub(traceback.format_exc(), self.secrets)
            retry_at = self.policy.next_at(job.attempts)
            settled = self.store.delivery_failed(job, error, retry_at)
            log.warning("handler %s failed on %s (attempt %d%s)", job.handler, job.event.id, job.attempts,
                        ", dead-lettered" if retry_at is None else "")
        else:
            settled = self.store.delivery_succeeded(job)
        if not settled:
            log.warning("delivery %s of %s to %s outlived its lease; another process has it now",
                        job.id, job.event.id, job.handler)
