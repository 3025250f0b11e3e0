"""What a provider says a transaction is, and which changes of that are real.

The state machine is monotonic: a transaction only moves forward, so a stale or replayed answer can
never undo a later one (a late "pending" never overwrites "approved").
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

Kind = Literal["payment", "payout"]

PAYMENT_STATUSES = ("pending", "approved", "declined", "canceled", "refunded", "mismatch")
PAYOUT_STATUSES = ("pending", "succeeded", "failed")

# status -> the statuses it may move to. Anything not listed is stale or a duplicate.
# approved -> canceled is a void of an authorization; mismatch can still be refunded or voided.
# A decline ends one attempt, not the order: where a provider keys state by order (Monri's
# order_number, a Monext session), the buyer may retry and pay, and that approval must not be lost.
# The reverse never happens: nothing moves an approved payment back to declined.
_NEXT: dict[str, frozenset[str]] = {
    "pending": frozenset({"approved", "declined", "canceled", "refunded", "mismatch", "succeeded", "failed"}),
    "approved": frozenset({"refunded", "canceled"}),
    "mismatch": frozenset({"refunded", "canceled"}),
    "declined": frozenset({"approved", "mismatch"}),
    "canceled": frozenset(),
    "refunded": frozenset(),
    "succeeded": frozenset(),
    "failed": frozenset(),
}

FINAL_STATUSES = frozenset(s for s, nxt in _NEXT.items() if not nxt)


def is_transition(current: str | None, new: str) -> bool:
    """True when moving from ``current`` (None: never seen) to ``new`` is a real state change."""
    if current is None:
        return True
    return new in _NEXT.get(current, frozenset())


@dataclasses.dataclass(frozen=True)
class TransactionState:
    """The authoritative state of one transaction, as fetched from the provider (or a signed callback).

    Provider plugins build this in ``fetch``. ``amount`` is an int in minor units. ``key`` groups the
    provider's records that belong to one payment (for example a refund that has its own transaction
    id); it defaults to ``transaction_id`` and is what the per-transaction lock and the state machine
    are keyed on.
    """

    status: str
    transaction_id: str
    order_id: str
    amount: int
    currency: str
    raw: dict[str, Any]
    kind: Kind = "payment"
    occurred_at: datetime | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        allowed = PAYMENT_STATUSES if self.kind == "payment" else PAYOUT_STATUSES
        if self.status not in allowed:
            raise ValueError(f"{self.kind} status must be one of {allowed}, not {self.status!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("amount must be an int in minor units")
        if not self.transaction_id or len(self.transaction_id) > 128 or len(self.order_id) > 128:
            raise ValueError("transaction_id is required, and ids are at most 128 characters")
        if not (self.transaction_id + self.order_id + (self.key or "")).isprintable():
            raise ValueError("ids must be printable text")
        if not 0 <= self.amount < 2**63:
            raise ValueError("amount is out of range")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"currency must be an ISO 4217 code, not {self.currency!r}")

    @property
    def lock_key(self) -> str:
        return self.key or self.transaction_id

    @property
    def event_type(self) -> str:
        return f"{self.kind}.{self.status}"
