"""MonCash as a hookhub provider.

MonCash's alerts and return redirects are unsigned: they only name a ``transactionId``. hookhub
therefore treats them as triggers and asks ``RetrieveTransactionPayment`` for the truth.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hookhub import (Checkout, InboundCall, InvalidRequest, PaymentRequest, Payout, PayoutRequest, Provider,
                     ProviderUnavailable, Setting, TransactionState, Trigger, ValidationError, Watch, to_minor_units)

from .client import CURRENCY, MonCashClient, payout_key, payout_status

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
                help="REST API host with its /Api prefix", url=True),
        Setting("gateway_url", default="https://sandbox.moncashbutton.digicelgroup.com/Moncash-middleware",
                help="Gateway the buyer is redirected to", url=True),
    )
    callback_methods = frozenset({"GET", "POST"})
    return_methods = frozenset({"GET"})

    def create_client(self) -> MonCashClient:
        return MonCashClient(self.config["client_id"], self.config["client_secret"], self.config["base_url"],
                             self.config["gateway_url"], timeout=self.timeout, on_created=self.watch)

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
            return self._state(answer, transaction_id=trigger.reference)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable RetrieveTransactionPayment answer: {exc}") from None

    # -- payments and payouts a shop starts ------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> Checkout:
        """CreatePayment; the buyer goes to MonCash's gateway. MonCash's return and alert URLs are set
        in its business portal: point them at hookhub's ``/return/moncash`` and ``/hooks/moncash``."""
        _only_htg(request.currency)
        if request.fields:
            raise ValidationError(sorted(request.fields)[0], "is not a field of MonCash's CreatePayment")
        answer = self.client.create_payment(request.amount, request.order_id)
        token = answer["payment_token"]
        return Checkout(provider=self.name, order_id=request.order_id, reference=str(token["token"]),
                        amount=request.amount, currency=CURRENCY, redirect_url=answer["redirect_url"], raw=answer)

    def start_payout(self, request: PayoutRequest) -> Payout:
        """Transfert from the prefunded balance to ``receiver`` (a MonCash account), ``desc`` optional."""
        _only_htg(request.currency)
        fields = dict(request.destination)
        receiver = fields.pop("receiver", None)
        desc = fields.pop("desc", f"Payout {request.reference}")
        if receiver is None:
            raise ValidationError("receiver", "is required: the MonCash account to pay")
        if fields:
            raise ValidationError(sorted(fields)[0], "is not a field of MonCash's Transfert")
        try:
            answer = self.client.transfer(request.amount, receiver, desc, request.reference)
        except ProviderUnavailable as exc:  # MonCash may have paid: watched, and pending until it says
            return Payout(provider=self.name, reference=request.reference, amount=request.amount, currency=CURRENCY,
                          status="pending", raw={"error": str(exc)})
        transfer = answer.get("transfer") if isinstance(answer.get("transfer"), dict) else {}
        return Payout(provider=self.name, reference=request.reference, amount=request.amount, currency=CURRENCY,
                      status=payout_status(transfer.get("message")),  # type: ignore[arg-type]
                      transaction_id=str(transfer["transaction_id"]) if transfer.get("transaction_id") else None,
                      raw=answer)

    def poll(self, watch: Watch) -> TransactionState | None:
        """RetrieveOrderPayment for a payment (404 until the buyer paid); PrefundedTransactionStatus
        for a payout."""
        if watch.kind == "payout":
            answer = self.client.prefunded_transaction_status(watch.reference)
            return TransactionState(
                kind="payout", status=payout_status(answer.get("transStatus")),
                transaction_id=str(watch.context.get("transaction_id") or watch.reference), order_id=watch.order_id,
                amount=watch.amount, currency=CURRENCY, raw=answer, key=payout_key(watch.reference))
        answer = self.client.retrieve_order(watch.order_id)
        try:
            state = self._state(answer)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable RetrieveOrderPayment answer: {exc}") from None
        if state.order_id != watch.order_id:
            raise ProviderUnavailable(self.name, f"asked for order {watch.order_id}, got {state.order_id}")
        return state

    @staticmethod
    def _state(answer: dict[str, Any], transaction_id: str | None = None) -> TransactionState:
        payment = answer["payment"]
        reference = transaction_id
        transaction_id = str(payment["transaction_id"])
        if reference is not None and transaction_id != reference:
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


def _only_htg(currency: str) -> None:
    if currency != CURRENCY:
        raise ValidationError("currency", f"MonCash takes {CURRENCY} only, not {currency}")
