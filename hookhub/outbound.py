"""What a shop starts through hookhub, and what hookhub keeps watching: the outbound half's values.

``start_payment`` and ``start_payout`` (``hookhub``'s public face) hand a provider plugin a
``PaymentRequest`` or ``PayoutRequest``; the plugin answers a ``Checkout`` or a ``Payout``. Whatever a
provider creates (through those calls or its client's own create/transfer methods) it puts on record
as a ``Watch``, which hookhub's servers then ask the provider about until the answer is final.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from .errors import ValidationError

WatchKind = Literal["payment", "payout"]
PayoutStatus = Literal["pending", "succeeded", "failed"]

MAX_ORDER_ID_LENGTH = 128
# The query parameter of a checkout's return URL holding its one-time nonce (see ``Checkout.nonce``).
NONCE_PARAM = "hookhub_nonce"
MAX_AMOUNT = 10**15  # minor units: far above any provider's limit, far below an int64
_CURRENCY = re.compile(r"[A-Z]{3}")


def check_order_id(field: str, value: object) -> str:
    """``value`` as an order id or payout reference, or ``ValidationError`` naming ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    if len(value) > MAX_ORDER_ID_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_ORDER_ID_LENGTH} characters, not {len(value)}")
    if not value.isprintable() or value != value.strip():
        raise ValidationError(field, "must be printable text without leading or trailing spaces")
    return value


def check_amount(field: str, value: object) -> int:
    """``value`` as a positive int of minor units; floats, bools and Decimals are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an int in minor units (1050 for 10.50), not {type(value).__name__}")
    if not 0 < value <= MAX_AMOUNT:
        raise ValidationError(field, "must be greater than zero")
    return value


def check_currency(field: str, value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.upper()):
        raise ValidationError(field, f"must be an ISO 4217 code such as EUR, not {value!r}")
    return value.upper()


@dataclasses.dataclass(frozen=True)
class PaymentRequest:
    """A payment a shop asks a provider to start; validated before the provider sees it.

    ``return_url`` and ``notify_url`` are hookhub's own ``/return/<provider>`` and
    ``/hooks/<provider>`` under ``HOOKHUB_PUBLIC_URL`` (None when it is not set); for a provider
    that takes a return URL per payment (``Provider.return_url_per_payment``) the return URL carries
    this checkout's one-time nonce: give it to the provider exactly as it is. ``fields`` are the
    provider's own extra fields, passed through as the shop gave them.
    """

    order_id: str
    amount: int
    currency: str
    return_url: str | None = None
    notify_url: str | None = None
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PayoutRequest:
    """A payout a shop asks a provider to make; ``destination`` holds the provider's own fields."""

    reference: str
    amount: int
    currency: str
    destination: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Checkout:
    """A started payment: where to send the buyer (``redirect_url``) or what the provider's
    embedded form needs (``client_secret``), with the provider's id of it (``reference``).

    ``nonce`` is set when the buyer's return comes back through a URL made for this checkout alone:
    keep it in the buyer's session beside the order id and pass it to
    ``read_result(..., expected_nonce=...)``. The first return through that URL echoes it in its
    ``result`` token; a replayed return, or any other, does not.
    """

    provider: str
    order_id: str
    reference: str
    amount: int
    currency: str
    redirect_url: str | None = None
    client_secret: str | None = None
    expires_at: datetime | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    watched: bool = True  # False when the store could not be reached to put it on record (logged)
    nonce: str | None = None


@dataclasses.dataclass(frozen=True)
class Payout:
    """A payout as the provider answered its creation.

    ``status`` is ``pending`` also when the provider answered 5xx or not at all: it may have acted,
    so hookhub watches it and the servers' ``payout.*`` events say how it ends.
    """

    provider: str
    reference: str
    amount: int
    currency: str
    status: PayoutStatus
    transaction_id: str | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    watched: bool = True  # False when the store could not be reached to put it on record (logged)


@dataclasses.dataclass(frozen=True)
class Watch:
    """Something a provider created that hookhub asks about until the provider's answer is final.

    ``order_id`` is the merchant's order id (for a payout: its reference); one watch per provider,
    kind and order id. ``reference`` is the provider's own id for it where it gave one (a Monext
    session, a Monri payment, a Monext payout transaction), else the order id. ``key`` is the
    lock key the provider's fetched states of this payment carry (``TransactionState.key``), so
    that what a watch concludes and what callbacks say meet on one state machine; None means
    ``order_id``. ``context`` is plain JSON the plugin's ``poll`` needs. ``answer`` is what the
    creating call itself said (a ``TransactionState``), reconciled by the servers as source
    ``client``.
    """

    kind: WatchKind
    order_id: str
    reference: str
    amount: int
    currency: str
    key: str | None = None
    context: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    answer: Any = None  # TransactionState | None
