"""Handing events to merchant handlers: each (event, handler) pair on its own, at least once."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence

from . import redact
from .plugins import Handler
from .retry import RetryPolicy
from .store import DeliveryJob, Store

log = logging.getLogger("hookhub")


class Deliverer:
    def __init__(self, store: Store, handlers: Mapping[str, Handler], policy: RetryPolicy,
                 secrets: Sequence[str] = (), lease: float = 300.0):
        self.store = store
        self.handlers = dict(handlers)
        self.policy = policy
        self.secrets = list(secrets)
        self.lease = lease

    def run_one(self) -> bool:
        """Deliver the most overdue delivery, if any is due; True if one was attempted."""
        job = self.store.claim_delivery(list(self.handlers), lease=self.lease)
        if job is None:
            return False
        self.deliver(job)
        return True

    def deliver(self, job: DeliveryJob) -> None:
        handler = self.handlers[job.handler]
        try:
            handler(job.event)
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
