"""When to try again: exponential backoff with jitter, and a last attempt."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

from .store import utcnow


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """``base * 2**(n-1)`` seconds after the n-th failed attempt, capped at ``cap``, jittered down
    by up to half so that many failures at once do not retry in lockstep."""

    base: float
    cap: float
    max_attempts: int

    def delay(self, failed_attempts: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(failed_attempts - 1, 32))
        return ceiling * random.uniform(0.5, 1.0)

    def next_at(self, failed_attempts: int, now: datetime | None = None) -> datetime | None:
        """When to make the next attempt, or None when ``failed_attempts`` used them all up."""
        if failed_attempts >= self.max_attempts:
            return None
        return (now or utcnow()) + timedelta(seconds=self.delay(failed_attempts))
