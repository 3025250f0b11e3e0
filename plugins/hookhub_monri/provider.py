"""Monri as a hookhub provider.

- Callbacks and webhooks (``POST /hooks/monri``) are signed over the whole raw body with the merchant
  key, so a verified body is itself the authoritative state: nothing is fetched.
- Returns (``GET /return/monri``) are signed over the URL the buyer was sent to. When the payment was
  created through hookhub's client, its id is remembered and the return is confirmed with
  ``payment_status``; otherwise the signed query is the state.

Callback and return for one order share one lock and one state machine: the key is the merchant's
``order_number``, the one thing both carry. ``event.transaction_id`` is Monri's transaction ``id``
from a callback; a return carries none, so there it is Monri's payment id when hookhub created the
payment, else the order number.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from hookhub import (Checkout, InboundCall, InvalidRequest, Movement, PaymentRequest, Provider, ProviderNotFound,
                     ProviderUnavailable, Setting, TransactionState, Trigger, Watch)

from . import signing
from .client import MonriClient

log = logging.getLogger("hookhub")

APPROVED_CODE = "0000"

# What an approved transaction of each type does to the payment. A declined refund, void or
# capture leaves the payment as it was, so it is acknowledged and changes nothing.
_STATUS_WHEN_APPROVED = {
    "purchase": "approved", "authorize": "approved", "capture": "approved",
    "refund": "refunded", "void": "canceled",
}
_DECLINES_THE_PAYMENT = frozenset({"purchase", "authorize"})
# The money movement an approved transaction of each type is; every Monri transaction has its own
# ``id`` and ``amount``, so a partial capture or refund is booked as itself.
_MOVEMENT = {"purchase": "payment", "authorize": "authorization", "capture": "capture", "refund": "refund",
             "void": "void"}
MAX_AMOUNT = 10**11 - 1  # Monri: 1 to 11 digits


def _memo_key(order_number: str) -> str:
    return f"payment:{order_number}"


def _status(transaction_type: str, approved: bool) -> str | None:
    """The payment's new status, or None when this transaction does not change it."""
    if approved:
        return _STATUS_WHEN_APPROVED.get(transaction_type)
    return "declined" if transaction_type in _DECLINES_THE_PAYMENT else None


def _amount(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        amount = int(value)
    else:
        raise InvalidRequest("amount must be an integer in minor units", code="invalid_amount")
    if not 0 <= amount <= MAX_AMOUNT:
        raise InvalidRequest("amount must have at most 11 digits", code="invalid_amount")
    return amount


def _required_text(data: dict[str, Any], field: str, high: int = 128) -> str:
    value = data.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > high:
        raise InvalidRequest(f"{field} is required (a string of at most {high} characters)",
                             code=f"missing_{field}")
    return value


def _currency(data: dict[str, Any]) -> str:
    value = data.get("currency")
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha() or not value.isascii():
        raise InvalidRequest("currency is required (ISO 4217)", code="missing_currency")
    return value.upper()


def _occurred_at(value: Any) -> datetime | None:
    """Monri's ``created_at`` in UTC; None when it is absent or unusable (hookhub then uses receipt time)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else None
    except (ValueError, OverflowError):
        return None


class _NotPaidYet(ProviderUnavailable):
    """Monri knows the payment, and the buyer has not paid it (yet)."""


class Monri(Provider):
    name = "monri"
    settings = (
        Setting("merchant_key", secret=True, help="Key from the Monri merchant dashboard"),
        Setting("authenticity_token", secret=True, help="Authenticity token from the Monri merchant dashboard"),
        Setting("base_url", default="https://ipgtest.monri.com", help="https://ipg.monri.com in production",
                url=True),
    )
    callback_methods = frozenset({"POST"})
    return_methods = frozenset({"GET"})
    needs_public_url = True

    def create_client(self) -> MonriClient:
        return MonriClient(self.config["merchant_key"], self.config["authenticity_token"], self.config["base_url"],
                           timeout=self.timeout, on_payment_created=self._remember_payment)

    def _remember_payment(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        """A payment created through the client: its id is remembered for returns, and it is watched."""
        order_number, payment_id = request["order_number"], answer["id"]
        self.watch(Watch(kind="payment", order_id=order_number, reference=payment_id, amount=request["amount"],
                         currency=request["currency"], key=order_number))
        try:
            self.memo.put(_memo_key(order_number), payment_id)
        except Exception:  # Monri made the payment: the shop must not be told it failed
            log.exception("monri: payment %s of order %s could not be remembered; its return is trusted from "
                          "its signature alone", payment_id, order_number)

    # -- payments a shop starts --------------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> Checkout:
        """``POST /v2/payment/new``; give ``client_secret`` to Monri Components on the shop's page.

        ``transaction_type`` defaults to ``purchase`` (``authorize`` to capture later) and
        ``order_info`` to "Order <order_id>"; other fields are Monri's own (``ch_full_name``, ...).
        """
        fields = dict(request.fields)
        fields.setdefault("transaction_type", "purchase")
        fields.setdefault("order_info", f"Order {request.order_id}"[:100])
        answer = self.client.create_payment(amount=request.amount, order_number=request.order_id,
                                            currency=request.currency, **fields)
        if not isinstance(answer.get("id"), str) or not isinstance(answer.get("client_secret"), str):
            raise ProviderUnavailable(self.name, "payment/new answered without id and client_secret")
        return Checkout(provider=self.name, order_id=request.order_id, reference=answer["id"], amount=request.amount,
                        currency=request.currency, client_secret=answer["client_secret"], raw=answer)

    def poll(self, watch: Watch) -> TransactionState | None:
        """``payment_status`` of the payment hookhub created; None while it has no result."""
        try:
            return self.fetch(Trigger(watch.order_id, context={"payment_id": watch.reference}))
        except _NotPaidYet:
            return None

    def ping(self) -> str:
        self.client.list_customers(limit=1)
        return "a signed request (list customers) was accepted"

    # -- callbacks and webhooks ----------------------------------------------------------------------

    def read_callback(self, call: InboundCall) -> Trigger | None:
        signing.verify_callback(self.config["merchant_key"], call.header("Authorization"), call.body)
        body = call.json_object()
        event = body.get("event")
        if event is None:
            transaction_type = str(body.get("transaction_type") or "purchase")
            approved = body.get("status") == "approved" and body.get("response_code") == APPROVED_CODE
            return self._trigger(body, transaction_type, _status(transaction_type, approved))
        # A webhook: {"event": "transaction:<type>:<approved|declined>", "payload": {...}}
        if not isinstance(event, str):
            raise InvalidRequest("event must be a string", code="invalid_event")
        parts = event.split(":")
        if parts[0] != "transaction" or parts[-1] not in ("approved", "declined") or len(parts) not in (2, 3):
            return None  # customer, card and other events say nothing about a payment's state
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise InvalidRequest("a webhook's payload must be a JSON object", code="invalid_payload")
        transaction_type = parts[1] if len(parts) == 3 else str(payload.get("transaction_type") or "purchase")
        return self._trigger(payload, transaction_type, _status(transaction_type, parts[-1] == "approved"))

    def _trigger(self, data: dict[str, Any], transaction_type: str, status: str | None) -> Trigger | None:
        if status is None:
            return None
        state = self._state(data, status, transaction_type)
        return Trigger(state.lock_key, state=state)

    def _state(self, data: dict[str, Any], status: str, transaction_type: str,
               transaction_id: str | None = None) -> TransactionState:
        """The payment ``data`` describes; an approved transaction is also the movement it makes."""
        order_number = _required_text(data, "order_number", 40)
        kind = _MOVEMENT.get(transaction_type) if status not in ("declined", "pending") else None
        if kind in ("capture", "refund", "void"):
            # Booked once by its own id: one without an id could never be told from its repeat.
            transaction_id = _required_text(data, "id", 64)
        elif transaction_id is None:
            transaction_id = _required_text(data, "id", 64) if data.get("id") is not None else order_number
        amount, occurred_at = _amount(data.get("amount")), _occurred_at(data.get("created_at"))
        movements = (Movement(kind, amount, id=transaction_id, occurred_at=occurred_at),) if kind else ()
        return TransactionState(
            status=status, order_id=order_number, key=order_number, transaction_id=transaction_id,
            amount=amount, currency=_currency(data), raw=data, occurred_at=occurred_at, movements=movements,
        )

    # -- returns -----------------------------------------------------------------------------------

    def read_return(self, call: InboundCall) -> Trigger:
        assert call.public_url, "registry guarantees HOOKHUB_PUBLIC_URL for Monri"
        signing.verify_return(self.config["merchant_key"], call.public_url, call.path, call.query_string)
        if any(len(values) > 1 for values in call.query.values()):
            raise InvalidRequest("a return parameter is given more than once", code="ambiguous_parameter")
        fields = {k: values[0] for k, values in call.query.items() if k != "digest"}
        order_number = _required_text(fields, "order_number", 40)
        payment_id = self.memo.get(_memo_key(order_number))
        if payment_id:
            # Created through hookhub: ask the API rather than rely on the redirect alone.
            return Trigger(order_number, context={"payment_id": payment_id})
        response_code = fields.get("response_code", "")
        status = "approved" if response_code == APPROVED_CODE else "pending" if response_code == "pending" else "declined"
        # A return is about the payment itself, never a later capture or refund. One that does not
        # say whether it was paid in one step is booked as authorized; a callback saying "purchase"
        # later books the capture it implies.
        transaction_type = fields.get("transaction_type") if fields.get("transaction_type") in _DECLINES_THE_PAYMENT \
            else "authorize"
        return Trigger(order_number, state=self._state(fields, status, transaction_type))

    def fetch(self, trigger: Trigger) -> TransactionState:
        payment_id = trigger.context.get("payment_id") or self.memo.get(_memo_key(trigger.reference))
        if not payment_id:
            raise ProviderNotFound(self.name, f"no Monri payment id is known for order {trigger.reference}")
        answer = self.client.payment_status(payment_id)
        result = answer.get("payment_result")
        if not isinstance(result, dict):
            # Not paid yet (payment_method_required, action_required): a payment hookhub created
            # and Monri knows, so keep checking on the full schedule.
            raise _NotPaidYet(self.name, f"payment {payment_id} has no result yet ({answer.get('payment_status')})")
        try:
            if _required_text(result, "order_number", 40) != trigger.reference:
                raise ValueError("the payment belongs to another order")
            state = result.get("status") or answer.get("payment_status")
            transaction_type = str(result.get("transaction_type") or "purchase")
            if transaction_type not in _DECLINES_THE_PAYMENT:
                transaction_type = "purchase"  # the payment's own status: its first transaction
            if state in ("approved", "executed"):
                status = _status(transaction_type, True) or "approved"
            elif state == "declined":
                status = "declined"
            else:
                status = "pending"
            return self._state({**result, "payment_status": answer.get("payment_status")}, status, transaction_type,
                               transaction_id=str(payment_id))
        except (InvalidRequest, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable payment_status answer: {exc}") from None
