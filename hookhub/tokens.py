"""The signed ``result`` token a return appends to the merchant's page URL.

It is an itsdangerous URL-safe, timestamped signature over what the return established: the event,
the order, the provider, the status, the payment's amount, currency and transaction id, and the
checkout nonce when the return came back through the URL ``start_payment`` gave the provider (None
otherwise). A token says what hookhub knew of an order when it was issued, to whoever followed the
return: the shop's page must also check that the order is the one in the buyer's own session
(``expected_order_id``), and the nonce where it has one (``expected_nonce``).
"""

from __future__ import annotations

import hmac
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from .errors import InvalidResultToken

SALT = "hookhub.result"
FIELDS = ("event_id", "order_id", "provider", "status", "amount", "currency", "transaction_id", "nonce")
# Tokens issued before amounts and nonces were added hold only these; they read with the rest None.
_FIRST_FIELDS = frozenset(FIELDS[:4])


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue(secret_key: str, *, event_id: str | None, order_id: str | None, provider: str, status: str,
          amount: int | None = None, currency: str | None = None, transaction_id: str | None = None,
          nonce: str | None = None) -> str:
    """A token over the return's fields (None where unknown)."""
    return _serializer(secret_key).dumps({
        "event_id": event_id, "order_id": order_id, "provider": provider, "status": status, "amount": amount,
        "currency": currency, "transaction_id": transaction_id, "nonce": nonce})


def read(token: str, secret_key: str, max_age: int = 600, *, expected_order_id: str | None = None,
         expected_nonce: str | None = None) -> dict[str, Any]:
    """The token's fields, or ``InvalidResultToken``.

    Raised when the token is forged, malformed or older than ``max_age`` seconds; when
    ``expected_order_id`` is given and the token is about another order; when ``expected_nonce`` is
    given and the token does not echo it (another checkout, a replayed return, or a return that
    did not come back through hookhub's checkout URL).
    """
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadData as exc:
        raise InvalidResultToken(str(exc)) from None
    if not isinstance(data, dict) or not _FIRST_FIELDS <= set(data) <= set(FIELDS):
        raise InvalidResultToken("not a hookhub result token")
    data = {name: data.get(name) for name in FIELDS}
    if expected_order_id is not None and not _same(data["order_id"], expected_order_id):
        raise InvalidResultToken("the result token is about another order")
    if expected_nonce is not None and not _same(data["nonce"], expected_nonce):
        raise InvalidResultToken("the result token is not from this checkout's return")
    return data


def _same(held: Any, expected: str) -> bool:
    # Constant time: the nonce is a secret of the buyer's session.
    return isinstance(held, str) and hmac.compare_digest(held.encode(), str(expected).encode())
