"""The normalized event every merchant handler receives."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from . import jsonutil
from .states import EVENT_TYPES

__all__ = ["EVENT_TYPES", "Event", "Source"]


Source = Literal["callback", "return", "poll", "client", "replay"]


@dataclasses.dataclass(frozen=True)
class Event:
    """One real state change of one transaction.

    ``id`` is unique and stable: a handler that sees the same ``id`` twice (deliveries are at least
    once) must treat the second as already done. ``amount`` is an int in minor units: this
    movement's (a partial refund's refunded part, one capture's captured part). ``totals`` is the
    payment after it: ``{"authorized", "captured", "refunded"}`` in minor units (a payout's:
    ``{"paid"}``); a payment is fully refunded when ``refunded == captured``. ``raw`` is the
    provider-fetched payload that the event was made from. For ``payment.mismatch``, ``expected``
    holds the merchant's ``{"amount": ..., "currency": ...}`` that the payment did not match.
    """

    id: str
    type: str
    provider: str
    order_id: str
    transaction_id: str
    amount: int
    currency: str
    source: Source
    occurred_at: datetime
    received_at: datetime
    raw: dict[str, Any]
    expected: dict[str, Any] | None = None
    totals: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def status(self) -> str:
        """The transaction status this event moved to (``approved`` for ``payment.approved``)."""
        return self.type.split(".", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that ``json.dumps`` accepts: datetimes as ISO 8601, Decimals as exact strings."""
        data = dataclasses.asdict(self)
        data["occurred_at"] = self.occurred_at.isoformat()
        data["received_at"] = self.received_at.isoformat()
        data["raw"] = jsonutil.to_plain(self.raw)
        data["expected"] = jsonutil.to_plain(self.expected)
        data["totals"] = dict(self.totals)
        return data
