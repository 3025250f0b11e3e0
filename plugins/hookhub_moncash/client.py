"""MonCash REST API client (Digicel MonCash button API).

Authentication is OAuth2 client credentials: ``POST /oauth/token`` with HTTP Basic
``client_id:client_secret`` gives a bearer token that lives 59 seconds. The token is cached per
client and refreshed a little before it expires; a 401 on an API call refreshes it and retries once.

Every amount this client takes is an int in minor units (centimes of HTG); it converts to the major
units MonCash expects on the wire. Answers are returned as MonCash sends them, numbers as int or
Decimal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from hookhub import (ApiClient, ApiResponse, ProviderAuthError, ProviderUnavailable, TransactionState,
                     ValidationError, Watch, basic_auth, to_major_units)

CURRENCY = "HTG"
REFRESH_MARGIN = 10.0  # seconds before expiry at which a cached token is renewed

# Transfert's ``transfer.message`` and PrefundedTransactionStatus's ``transStatus``: what MonCash says
# of a payout that went through and of one that will not; anything else is still pending.
PAYOUT_SUCCEEDED = {"successful", "success"}
PAYOUT_FAILED = {"failed", "failure", "rejected", "refused", "declined", "canceled", "cancelled", "expired"}


def payout_status(word: object) -> str:
    text = str(word or "").strip().lower()
    return "succeeded" if text in PAYOUT_SUCCEEDED else "failed" if text in PAYOUT_FAILED else "pending"


def payout_key(reference: str) -> str:
    """A payout's lock key, apart from payments' (their keys are transaction ids or order ids)."""
    return f"payout:{reference}"


def _minor_amount(field: str, amount: object) -> Decimal:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError(field, "must be an int in minor units (HTG centimes)")
    if amount <= 0:
        raise ValidationError(field, "must be greater than zero")
    return to_major_units(amount, CURRENCY)


def _text(field: str, value: object, max_length: int = 100) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    return value


class MonCashClient(ApiClient):
    provider = "moncash"

    def __init__(self, client_id: str, client_secret: str, base_url: str, gateway_url: str, *,
                 timeout: float = 10.0, on_created: Callable[[Watch], None] | None = None):
        """``on_created`` is told of every payment and transfer created, for hookhub to watch."""
        super().__init__(base_url, timeout=timeout)
        self._on_created = on_created or (lambda watch: None)
        self.gateway_url = gateway_url.rstrip("/")
        self._credentials = basic_auth(client_id, client_secret)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self.token_requests = 0  # how many tokens this client has asked for, for operators and tests

    # -- authentication ----------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid bearer token, from the cache when it still has more than a few seconds to live."""
        with self._token_lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            response = self.send("POST", "/oauth/token", authenticate=False,
                                 form={"scope": "read,write", "grant_type": "client_credentials"},
                                 headers={"Authorization": self._credentials})
            self.token_requests += 1
            if response.status in (400, 401, 403):
                raise ProviderAuthError(self.provider, f"token request refused: {self.message(response)}",
                                        status=response.status)
            self.check(response)
            data = response.data if isinstance(response.data, dict) else {}
            token, lifetime = data.get("access_token"), data.get("expires_in", 59)
            if not isinstance(token, str) or not token or not isinstance(lifetime, (int, Decimal)):
                raise ProviderUnavailable(self.provider, "token answer without access_token", status=response.status)
            lifetime = float(lifetime)
            # Renew early so a token never expires between being read here and reaching MonCash.
            self._token = token
            self._token_expires = time.monotonic() + max(lifetime - REFRESH_MARGIN, lifetime / 2)
            return token

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:  # another thread may already have a fresh one
                self._token = None

    def _api(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in (1, 2):
            token = self.access_token()
            response = self.send(method, path, json=payload, authenticate=False,
                                 headers={"Authorization": f"Bearer {token}"})
            body_status = response.data.get("status") if isinstance(response.data, dict) else None
            if attempt == 1 and 401 in (response.status, body_status):
                self._forget_token(token)  # revoked or expired early: one fresh token, one retry
                continue
            self.check(response)
            if not isinstance(response.data, dict):
                raise ProviderUnavailable(self.provider, f"{path}: the answer is not a JSON object",
                                          status=response.status)
            return response.data
        raise AssertionError("unreachable")

    def check(self, response: ApiResponse) -> None:
        """MonCash repeats the HTTP status in the body's ``status``; trust whichever is an error."""
        body_status = response.data.get("status") if isinstance(response.data, dict) else None
        if 200 <= response.status < 300 and isinstance(body_status, int) and body_status >= 400:
            response = ApiResponse(body_status, response.data, response.text, response.headers)
        super().check(response)

    # -- payments ----------------------------------------------------------------------------------

    def create_payment(self, amount: int, order_id: str) -> dict[str, Any]:
        """``POST /v1/CreatePayment``; the answer plus ``redirect_url``, the gateway page for the buyer."""
        payload = {"amount": _minor_amount("amount", amount), "orderId": _text("order_id", order_id)}
        data = self._api("POST", "/v1/CreatePayment", payload)
        payment_token = data.get("payment_token")
        token = payment_token.get("token") if isinstance(payment_token, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderUnavailable(self.provider, "CreatePayment answer has no payment_token.token")
        # MonCash finds a payment by the merchant's order id (RetrieveOrderPayment): that is what is watched.
        self._on_created(Watch(kind="payment", order_id=order_id, reference=order_id, amount=amount,
                               currency=CURRENCY))
        return {**data, "redirect_url": f"{self.gateway_url}/Payment/Redirect?token={quote(token, safe='')}"}

    def retrieve_transaction(self, transaction_id: str) -> dict[str, Any]:
        """``POST /v1/RetrieveTransactionPayment``: the payment behind a ``transactionId``."""
        return self._api("POST", "/v1/RetrieveTransactionPayment",
                         {"transactionId": _text("transaction_id", transaction_id)})

    def retrieve_order(self, order_id: str) -> dict[str, Any]:
        """``POST /v1/RetrieveOrderPayment``: the payment for the merchant's ``orderId``."""
        return self._api("POST", "/v1/RetrieveOrderPayment", {"orderId": _text("order_id", order_id)})

    def customer_status(self, account: str) -> dict[str, Any]:
        """``POST /v1/CustomerStatus``: KYC type and status of a MonCash account."""
        return self._api("POST", "/v1/CustomerStatus", {"account": _text("account", account, 32)})

    # -- prefunded payouts -------------------------------------------------------------------------

    def transfer(self, amount: int, receiver: str, desc: str, reference: str) -> dict[str, Any]:
        """``POST /v1/Transfert``: pay ``amount`` (minor units) from the prefunded balance to ``receiver``."""
        payload = {"amount": _minor_amount("amount", amount), "receiver": _text("receiver", receiver, 32),
                   "desc": _text("desc", desc, 255), "reference": _text("reference", reference)}
        watch = Watch(kind="payout", order_id=reference, reference=reference, amount=amount, currency=CURRENCY,
                      key=payout_key(reference))
        try:
            data = self._api("POST", "/v1/Transfert", payload)
        except ProviderUnavailable:
            # A 5xx or no answer: MonCash may have paid. Watched; PrefundedTransactionStatus will say.
            self._on_created(watch)
            raise
        transfer = data.get("transfer") if isinstance(data.get("transfer"), dict) else {}
        answer = TransactionState(
            kind="payout", status=payout_status(transfer.get("message")),
            transaction_id=str(transfer.get("transaction_id") or reference), order_id=reference, amount=amount,
            currency=CURRENCY, raw=data, key=watch.key)
        self._on_created(Watch(kind="payout", order_id=reference, reference=reference, amount=amount,
                               currency=CURRENCY, key=watch.key, answer=answer,
                               context={"transaction_id": answer.transaction_id}))
        return data

    def prefunded_transaction_status(self, reference: str) -> dict[str, Any]:
        """``POST /v1/PrefundedTransactionStatus``: the status of a transfer by its ``reference``."""
        return self._api("POST", "/v1/PrefundedTransactionStatus", {"reference": _text("reference", reference)})

    def prefunded_balance(self) -> Decimal:
        """``GET /v1/PrefundedBalance``: the prefunded balance in HTG, exactly as MonCash states it."""
        data = self._api("GET", "/v1/PrefundedBalance")
        balance = data.get("balance")
        value = balance.get("balance") if isinstance(balance, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise ProviderUnavailable(self.provider, "PrefundedBalance answer has no balance.balance number")
        return Decimal(value)
