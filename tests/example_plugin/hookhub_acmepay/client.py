"""AcmePay's REST API: bearer-key authentication, JSON answers, errors as ``{"error", "message"}``.

hookhub's ``ApiClient`` does the rest: one pooled session per thread, hookhub's timeout on every
call, JSON numbers with fractions as ``Decimal``, and HTTP errors as typed ``ProviderError``s (401/403
``ProviderAuthError``, 404 ``ProviderNotFound``, 429 and 5xx ``ProviderUnavailable``, other 4xx
``ProviderAPIError``). AcmePay signals errors with plain HTTP statuses, so ``check`` is not overridden.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hookhub import ApiClient, ValidationError, Watch

# AcmePay's ids: "pay_" and 24 hex digits today; accept any short token so a new format still works.
PAYMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_payment_id(value: Any) -> str:
    """``value`` if it can be an AcmePay payment id, else ``ValidationError`` (nothing is sent)."""
    if not isinstance(value, str) or not PAYMENT_ID.match(value):
        raise ValidationError("payment_id", "must be 1 to 64 letters, digits, _ or -")
    return value


class AcmePayClient(ApiClient):
    provider = "acmepay"

    def __init__(self, api_key: str, base_url: str, *, timeout: float = 10.0,
                 on_created: Callable[[Watch], None] | None = None):
        """``on_created`` hears of every payment created, so that hookhub watches it."""
        super().__init__(base_url, timeout=timeout)
        self._authorization = f"Bearer {api_key}"
        self._on_created = on_created or (lambda watch: None)

    def authenticate(self, method: str, fullpath: str, body: bytes) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        """``GET /v1/payments/{id}``: the payment as AcmePay records it now."""
        return self.call("GET", f"/v1/payments/{quote(check_payment_id(payment_id), safe='')}")

    def create_payment(self, *, amount: int, currency: str, order_ref: str,
                       return_url: str | None = None) -> dict[str, Any]:
        """``POST /v1/payments``: a payment the buyer completes at its ``checkout_url``."""
        body = {"amount": amount, "currency": currency, "order_ref": order_ref}
        if return_url:
            body["return_url"] = return_url
        answer = self.call("POST", "/v1/payments", json=body)
        # Told as soon as AcmePay answered: hookhub asks about it later if nobody calls back.
        self._on_created(Watch(kind="payment", order_id=order_ref, reference=check_payment_id(answer["id"]),
                               amount=amount, currency=currency))
        return answer

    def get_account(self) -> dict[str, Any]:
        """``GET /v1/account``: the account the API key belongs to (a cheap authenticated call)."""
        return self.call("GET", "/v1/account")
