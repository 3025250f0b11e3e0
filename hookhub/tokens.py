"""The signed ``result`` token a return appends to the merchant's page URL.

It is an itsdangerous URL-safe, timestamped signature over ``{event_id, order_id, provider,
status}``, so the merchant's page can trust it without asking hookhub again.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from .errors import InvalidResultToken

SALT = "hookhub.result"
FIELDS = ("event_id", "order_id", "provider", "status")


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue(secret_key: str, *, event_id: str | None, order_id: str | None, provider: str, status: str) -> str:
    return _serializer(secret_key).dumps(
        {"event_id": event_id, "order_id": order_id, "provider": provider, "status": status}
    )


def read(token: str, secret_key: str, max_age: int = 3600) -> dict[str, Any]:
    """The token's fields, or ``InvalidResultToken`` if it is forged, malformed or older than ``max_age`` seconds."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadData as exc:
        raise InvalidResultToken(str(exc)) from None
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        raise InvalidResultToken("not a hookhub result token")
    return data
