"""The lifecycle of payments and payouts, defined once: statuses, money movements, which changes are
real, and the event types.

A payment is a small ledger. Its money moves in movements, each with the provider's own id and
amount: an authorization or a one-step payment, captures, refunds and voids. Each real movement is
exactly one event; its totals (authorized, captured, refunded) are derived from the movements. Its
other statuses (pending, declined, expired) are a monotonic state machine: a transaction only moves
forward, so a stale or replayed answer never undoes a later one (a late "pending" never overwrites
"approved"). Event types, the buyer's result pages and the public status lists are all derived
from the tables here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

Kind = Literal["payment", "payout"]

# kind -> status -> the statuses it may move to. Anything not listed is stale or a duplicate.
# - approved -> canceled is a void of an authorization; mismatch can still be refunded or voided.
# - A decline ends one attempt, not the order: where a provider keys state by order (Monri's
#   order_number, a Monext session), the buyer may retry and pay, and that approval must not be lost.
# - expired is hookhub's own conclusion about a payment it watched that was never paid in time;
#   a late payment is never lost, so it may still become approved (or mismatch).
# The reverse never happens: nothing moves an approved payment back to declined or expired.
LIFECYCLE: dict[str, dict[str, frozenset[str]]] = {
    "payment": {
        "pending": frozenset({"approved", "declined", "canceled", "refunded", "mismatch", "expired"}),
        "approved": frozenset({"refunded", "canceled"}),
        "mismatch": frozenset({"refunded", "canceled"}),
        "declined": frozenset({"approved", "mismatch"}),
        "expired": frozenset({"approved", "mismatch", "declined", "canceled"}),
        "canceled": frozenset(),
        "refunded": frozenset(),
    },
    "payout": {
        "pending": frozenset({"succeeded", "failed"}),
        "succeeded": frozenset(),
        "failed": frozenset(),
    },
}

# Money movements of a payment, and the status each one gives the payment; its event is
# ``payment.<that status>``, except a capture's, which is ``payment.captured``. An authorization and a
# one-step payment are the payment's approval: a payment has one, whatever ids sources give it.
MOVEMENT_STATUS: dict[str, str] = {
    "authorization": "approved",  # money reserved: authorized grows
    "payment": "approved",  # paid in one step: authorized and captured grow
    "capture": "approved",  # part or all of an authorization taken: captured grows
    "refund": "refunded",  # part or all of what was captured given back: refunded grows
    "void": "canceled",  # an authorization released (or a payment reversed before settling)
}
MOVEMENT_KINDS = tuple(MOVEMENT_STATUS)
APPROVALS = frozenset({"authorization", "payment"})
# Statuses a provider's answer may move a payment to on its own; the others come from movements.
STATUS_ONLY = frozenset({"pending", "declined", "expired"})


def movement_event_type(kind: str, *, mismatch: bool = False) -> str:
    """The event type of a booked movement (``payment.mismatch`` for an approval the shop did not expect)."""
    if kind in APPROVALS and mismatch:
        return "payment.mismatch"
    return "payment.captured" if kind == "capture" else f"payment.{MOVEMENT_STATUS[kind]}"


PAYMENT_STATUSES = tuple(LIFECYCLE["payment"])
PAYOUT_STATUSES = tuple(LIFECYCLE["payout"])
EVENT_TYPES = tuple(dict.fromkeys(
    [f"{kind}.{status}" for kind, statuses in LIFECYCLE.items() for status in statuses] + ["payment.captured"]))
FINAL_STATUSES = frozenset(s for statuses in LIFECYCLE.values() for s, nxt in statuses.items() if not nxt)
# What the buyer is told after a return, by the status hookhub holds: only a payment that went
# through is a success; one being confirmed, or needing the merchant's eye (mismatch), is pending.
BUYER_OUTCOME = {"approved": "success", "succeeded": "success", "pending": "pending", "mismatch": "pending"}


def buyer_outcome(status: str) -> str:
    """``success``, ``failure`` or ``pending``: the page a buyer is sent to for ``status``."""
    if status in BUYER_OUTCOME:
        return BUYER_OUTCOME[status]
    return "failure" if any(status in statuses for statuses in LIFECYCLE.values()) else "pending"


def is_transition(current: str | None, new: str, kind: str = "payment") -> bool:
    """True when moving from ``current`` (None: never seen) to ``new`` is a real state change."""
    if current is None:
        return True
    return new in LIFECYCLE[kind].get(current, frozenset())


# The answers that end a watch: a payment paid (or undone after being paid), a payout that ended. A
# decline ends one attempt only: the buyer may try again before the watch's deadline.
_ENDS_A_WATCH = {"payment": frozenset({"approved", "mismatch", "refunded", "canceled"}),
                 "payout": frozenset({"succeeded", "failed"})}


def is_settled(status: str | None, kind: str = "payment") -> bool:
    """Whether ``status`` is the provider's final word on a watched payment or payout."""
    return status in _ENDS_A_WATCH[kind]


@dataclasses.dataclass(frozen=True)
class Movement:
    """One movement of a payment's money, as the provider reports it.

    ``kind`` is one of ``MOVEMENT_KINDS``; ``amount`` a positive int in minor units; ``id`` the
    provider's own id of the movement (required for captures, refunds and voids: the same id
    notified again is the same movement); ``currency`` None means the state's.
    """

    kind: str
    amount: int
    id: str | None = None
    currency: str | None = None
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in MOVEMENT_STATUS:
            raise ValueError(f"a movement's kind must be one of {MOVEMENT_KINDS}, not {self.kind!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("a movement's amount must be an int in minor units")
        if not (0 if self.kind in APPROVALS else 1) <= self.amount < 2**63:
            raise ValueError("a movement's amount must be greater than zero")
        if self.kind not in APPROVALS and not self.id:
            raise ValueError(f"a {self.kind} needs the provider's id of it")
        if self.id is not None and (len(self.id) > 128 or not self.id.isprintable()):
            raise ValueError("a movement's id is printable text of at most 128 characters")
        if self.currency is not None and (len(self.currency) != 3 or not self.currency.isalpha()):
            raise ValueError(f"currency must be an ISO 4217 code, not {self.currency!r}")

    def to_plain(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Movement:
        return cls(**_unplain(data))


@dataclasses.dataclass(frozen=True)
class TransactionState:
    """The authoritative state of one transaction, as fetched from the provider (or a signed callback).

    Provider plugins build this in ``fetch`` and ``poll``. ``amount`` is an int in minor units.
    ``key`` groups the provider's records that belong to one payment (for example a refund that has
    its own transaction id); it defaults to ``transaction_id`` and is what the per-transaction lock
    and the state machine are keyed on.

    ``movements`` are the payment's money movements the answer shows: every one the provider lists
    (a session's captures and refunds) or just the one a notification is about. Movements hookhub
    already booked are recognised and make nothing. A plugin that gives none says what the whole
    payment is: an ``approved`` state is booked as a one-step payment of ``amount``, a ``refunded``
    one as a refund of ``amount`` with ``transaction_id`` as its id, a ``canceled`` one as a void.
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
    movements: tuple[Movement, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.movements, tuple) or not all(isinstance(m, Movement) for m in self.movements):
            raise TypeError("movements must be a tuple of Movement")
        if self.movements and self.kind != "payment":
            raise ValueError("only payments have movements")
        if self.kind not in LIFECYCLE:
            raise ValueError(f"kind must be one of {tuple(LIFECYCLE)}, not {self.kind!r}")
        allowed = tuple(LIFECYCLE[self.kind])
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

    def to_plain(self) -> dict[str, Any]:
        """The state as plain JSON-able values (datetimes as ISO 8601), for ``from_plain``."""
        return {**_plain(self), "movements": [m.to_plain() for m in self.movements]}

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> TransactionState:
        values = _unplain(data)
        values["movements"] = tuple(Movement.from_plain(m) for m in values.get("movements") or ())
        return cls(**values)


def _plain(value: Any) -> dict[str, Any]:
    # Field by field, not ``dataclasses.asdict``: that deep-copies ``raw``, which every accepted
    # callback would pay for; the values are only read.
    data = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    data["occurred_at"] = value.occurred_at.isoformat() if value.occurred_at else None
    return data


def _unplain(data: dict[str, Any]) -> dict[str, Any]:
    values = dict(data)
    if values.get("occurred_at"):
        values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    return values
