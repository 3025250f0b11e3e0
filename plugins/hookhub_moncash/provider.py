"""MonCash as a hookhub provider.

MonCash's alerts and return redirects are unsigned: they only name a ``transactionId``. hookhub
therefore treats them as triggers and asks ``RetrieveTransactionPayment`` for the truth.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hookhub import (InboundCall, InvalidRequest, Provider, ProviderUnavailable, Setting, TransactionState,
                     Trigger, to_minor_units)

from .client import CURRENCY, MonCashClient

# RetrieveTransactionPayment's ``payment.message``: what MonCash says of a completed payment, and
# the words it uses for payments that will not complete. Anything else stays pending.
APPROVED_MESSAGES = {"successful", "success"}
DECLINED_MESSAGES = {"failed", "failure", "declined", "rejected", "refused", "canceled", "cancelled",
                     "expired"}


MAX_ID_LENGTH = 64  # MonCash transaction ids are short digit strings


def _transaction_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("transactionId is required", code="missing_transaction_id")
    if len(value.strip()) > MAX_ID_LENGTH:
        raise InvalidRequest(f"transactionId is longer than {MAX_ID_LENGTH} characters", code="reference_too_long")
    return value.strip()


class MonCash(Provider):
    name = "moncash"
    settings = (
        Setting("client_id", help="From the MonCash business portal"),
        Setting("client_secret", secret=True, help="From the MonCash business portal"),
        Setting("base_url", default="https://sandbox.moncashbutton.digicelgroup.com/Api",
                help="REST API host with its /Api prefix"),
        Setting("gateway_url", default="https://sandbox.moncashbutton.digicelgroup.com/Moncash-middleware",
                help="Gateway the buyer is redirected to"),
    )
    callback_methods = frozenset({"GET", "POST"})
    return_methods = frozenset({"GET"})

    def create_client(self) -> MonCashClient:
        return MonCashClient(self.config["client_id"], self.config["client_secret"], self.config["base_url"],
                             self.config["gateway_url"], timeout=self.timeout)

    def ping(self) -> str:
        self.client.access_token()
        return "OAuth token issued for these credentials"

    def read_callback(self, call: InboundCall) -> Trigger:
        """``transactionId`` from the query, a form body or a JSON body."""
        return Trigger(_transaction_id(call.param("transactionId")))

    def read_return(self, call: InboundCall) -> Trigger:
        """``?transactionId=<id>`` on the buyer's return URL."""
        values = call.query.get("transactionId", [])
        if len(values) > 1:
            raise InvalidRequest("transactionId is given more than once", code="ambiguous_transactionId")
        return Trigger(_transaction_id(values[0] if values else None))

    def fetch(self, trigger: Trigger) -> TransactionState:
        answer = self.client.retrieve_transaction(trigger.reference)
        try:
            return self._state(answer, trigger.reference)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable RetrieveTransactionPayment answer: {exc}") from None

    @staticmethod
    def _state(answer: dict[str, Any], reference: str) -> TransactionState:
        payment = answer["payment"]
        transaction_id = str(payment["transaction_id"])
        if transaction_id != reference:
            raise ValueError(f"asked for transaction {reference}, got {transaction_id}")
        cost = payment["cost"]
        if isinstance(cost, (float, bool)) or not isinstance(cost, (int, Decimal, str)):
            raise TypeError(f"cost must be a number, not {type(cost).__name__}")
        message = str(payment.get("message", "")).strip().lower()
        if message in APPROVED_MESSAGES:
            status = "approved"
        elif message in DECLINED_MESSAGES:
            status = "declined"
        else:
            status = "pending"
        # The answer's ``timestamp`` is when MonCash answered, not when the buyer paid, so the
        # event's occurred_at is left to hookhub (the time the call was received).
        return TransactionState(
            status=status, transaction_id=transaction_id, order_id=str(payment["reference"]),
            amount=to_minor_units(cost, CURRENCY), currency=CURRENCY, raw=answer,
        )
