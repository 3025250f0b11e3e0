"""Monri's Payment Method and Customers APIs, with WP3-v2.1 signed requests.

Every request carries ``Authorization: WP3-v2.1 <authenticity_token> <timestamp> <digest>`` where
the digest covers the full path including the query string and the exact body bytes sent. Requests
are checked against the documented lengths, types and enums first; a refusal raises
``ValidationError`` naming the field, before anything leaves the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hookhub import (ApiClient, ApiResponse, ProviderAPIError, ProviderAuthError, ProviderNotFound,
                     ProviderUnavailable, ValidationError, json_dumps)

from . import signing
from . import validation as v

# Optional fields of POST /v2/payment/new beyond the required ones, with their limits.
PAYMENT_OPTIONAL_TEXT = {
    "ch_full_name": (3, 30), "ch_address": (3, 100), "ch_city": (3, 30), "ch_zip": (3, 9),
    "ch_phone": (3, 30), "ch_email": (3, 100), "language": (2, 2), "comment": (0, 200),
    "number_of_installments": (0, 2), "custom_params": (0, 1000),
}

# POST /v2/customers and /v2/customers/{uuid}: field -> (min, max) length.
CUSTOMER_TEXT = {
    "merchant_customer_id": (1, 100), "description": (1, 200), "email": (1, 200), "name": (1, 50),
    "phone": (1, 30), "zip_code": (1, 9), "city": (3, 30), "address": (3, 100),
}

OK_STATUSES = ("approved", "created", "updated")


def _customer_fields(fields: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for field, value in fields.items():
        if value is None:
            continue
        if field in CUSTOMER_TEXT:
            body[field] = v.text(field, value, *CUSTOMER_TEXT[field])
        elif field == "country":
            body[field] = v.country(field, value)
        elif field == "metadata":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ValidationError(field, "must be a dict with string keys")
            try:
                json_dumps(value)
            except (TypeError, ValueError):
                raise ValidationError(field, "must hold only JSON values") from None
            body[field] = value
        else:
            raise ValidationError(field, "is not a customer field")
    return body


class MonriClient(ApiClient):
    provider = "monri"

    def __init__(self, merchant_key: str, authenticity_token: str, base_url: str, *, timeout: float = 10.0,
                 on_payment_created: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(base_url, timeout=timeout)
        self._merchant_key = merchant_key
        self._token = authenticity_token
        self._on_payment_created = on_payment_created
        self._clock = clock

    def authenticate(self, method: str, fullpath: str, body: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        return {
            # Monri requires both headers on every request, GET included.
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": signing.api_authorization(self._merchant_key, self._token, timestamp, fullpath,
                                                       body.decode("utf-8")),
        }

    def check(self, response: ApiResponse) -> None:
        """Monri's ``status`` field decides: approved/created/updated, invalid-request (4xx) or error."""
        data = response.data if isinstance(response.data, dict) else {}
        status, message = data.get("status"), self.message(response)
        if response.status == 401:
            raise ProviderAuthError(self.provider, f"Monri refused the Authorization header: {message}", status=401,
                                    payload=data)
        if response.status == 404:
            raise ProviderNotFound(self.provider, message, status=404, payload=data)
        if response.status >= 500 or status == "error":
            raise ProviderUnavailable(self.provider, message, status=response.status, payload=data)
        if 400 <= response.status < 500 or (status is not None and status not in OK_STATUSES):
            raise ProviderAPIError(self.provider, message, status=response.status, code=status, payload=data)
        super().check(response)

    # -- payments ----------------------------------------------------------------------------------

    def create_payment(self, *, amount: int, order_number: str, currency: str, transaction_type: str,
                       order_info: str, scenario: str | None = None,
                       supported_payment_methods: list[str] | None = None, **optional: str) -> dict[str, Any]:
        """``POST /v2/payment/new``: ``{"status", "id", "client_secret"}``."""
        body: dict[str, Any] = {
            "amount": v.amount("amount", amount),
            "order_number": v.text("order_number", order_number, 2, 40),
            "currency": v.currency("currency", currency),
            "transaction_type": v.choice("transaction_type", transaction_type, ("authorize", "purchase")),
            "order_info": v.text("order_info", order_info, 3, 100),
        }
        if scenario is not None:
            body["scenario"] = v.choice("scenario", scenario, ("charge", "add_payment_method"))
        if supported_payment_methods is not None:
            if not isinstance(supported_payment_methods, list) or not all(
                    isinstance(m, str) and m for m in supported_payment_methods):
                raise ValidationError("supported_payment_methods", "must be a list of pan tokens and/or 'card'")
            body["supported_payment_methods"] = supported_payment_methods
        for field, value in optional.items():
            if field == "ch_country":
                body[field] = v.country(field, value)
            elif field in PAYMENT_OPTIONAL_TEXT:
                body[field] = v.text(field, value, *PAYMENT_OPTIONAL_TEXT[field])
            else:
                raise ValidationError(field, "is not a field of POST /v2/payment/new")
        answer = self.call("POST", "/v2/payment/new", json=body)
        if self._on_payment_created and isinstance(answer.get("id"), str):
            self._on_payment_created(body, answer)
        return answer

    def update_payment(self, payment_id: str, amount: int) -> dict[str, Any]:
        """``POST /v2/payment/{id}/update``: change the amount of a payment not yet paid."""
        path = f"/v2/payment/{quote(v.identifier('payment_id', payment_id), safe='')}/update"
        return self.call("POST", path, json={"amount": v.amount("amount", amount)})

    def payment_status(self, payment_id: str) -> dict[str, Any]:
        """``GET /v2/payment/{id}/status``: ``payment_status`` and the ``payment_result``."""
        return self.call("GET", f"/v2/payment/{quote(v.identifier('payment_id', payment_id), safe='')}/status")

    # -- customers ---------------------------------------------------------------------------------

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        """``POST /v2/customers``; every field is optional (see the Customers API)."""
        return self.call("POST", "/v2/customers", json=_customer_fields(fields))

    def get_customer(self, uuid: str) -> dict[str, Any]:
        """``GET /v2/customers/{uuid}``."""
        return self.call("GET", f"/v2/customers/{quote(v.identifier('uuid', uuid), safe='')}")

    def get_customer_by_merchant_id(self, merchant_customer_id: str) -> dict[str, Any]:
        """``GET /v2/merchants/customers/{merchant_customer_id}``."""
        path_id = quote(v.identifier("merchant_customer_id", merchant_customer_id), safe="")
        return self.call("GET", f"/v2/merchants/customers/{path_id}")

    def update_customer(self, uuid: str, **fields: Any) -> dict[str, Any]:
        """``POST /v2/customers/{uuid}`` with the fields to change."""
        return self.call("POST", f"/v2/customers/{quote(v.identifier('uuid', uuid), safe='')}",
                         json=_customer_fields(fields))

    def delete_customer(self, uuid: str) -> dict[str, Any]:
        """``DELETE /v2/customers/{uuid}``: ``{"status", "id", "deleted"}``."""
        return self.call("DELETE", f"/v2/customers/{quote(v.identifier('uuid', uuid), safe='')}")

    def list_customers(self, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """``GET /v2/customers?limit=&offset=``, newest first (Monri's default limit is 50)."""
        return self.call("GET", "/v2/customers",
                         params={"limit": v.page("limit", limit), "offset": v.page("offset", offset)})

    def list_payment_methods(self, uuid: str, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """``GET /v2/customers/{uuid}/payment-methods?limit=&offset=``: the customer's saved cards."""
        return self.call("GET", f"/v2/customers/{quote(v.identifier('uuid', uuid), safe='')}/payment-methods",
                         params={"limit": v.page("limit", limit), "offset": v.page("offset", offset)})
