"""Monext (Monext Online, formerly Payline) as a hookhub provider.

Monext's notification (``/hooks/monext?token=<sessionId>``) and the buyer's return
(``/return/monext?paylinetoken=<sessionId>``, or ``monext_session_id=`` with the newer point-of-sale
setting) are unsigned: they only name a payment session. Both are triggers; the truth is
``GET /v1/checkout/payments/sessions/{sessionId}``.

The session is the unit of state: notification and return share one lock and one state machine
keyed on the session id. The state comes from ``result.title`` and the latest transaction's
``type``; ``event.transaction_id`` is that transaction's id (the session id while no transaction
exists yet) and ``event.order_id`` is ``order.reference``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from hookhub import (Checkout, ConfigError, InboundCall, InvalidRequest, PaymentRequest, Payout, PayoutRequest,
                     Provider, ProviderNotFound, ProviderUnavailable, Reply, Setting, TransactionState, Trigger,
                     ValidationError, Watch, basic_auth)

from .client import MonextClient, payout_state, result_of

# result.title -> the payment's status (Monext's return-code families).
TITLE_STATUS = {
    "ACCEPTED": "approved",
    "REFUSED": "declined",
    "ERROR": "declined",
    "CANCELLED": "canceled",
    "INPROGRESS": "pending",
    "ONHOLD_PARTNER": "pending",
    "PENDING_RISK": "pending",
}
# An accepted operation of these types changes what the accepted payment is.
ACCEPTED_ACTION_STATUS = {"REFUND": "refunded", "CANCEL": "canceled"}
# Transactions that are the payment itself; a capture only settles one of these.
PAYMENT_TYPES = frozenset({
    "AUTHORIZATION", "AUTHORIZATION_AND_CAPTURE", "REAUTHORIZATION", "REAUTHORIZATION_AND_CAPTURE",
    "AUTHORIZATION_AND_CAPTURE_COMPLEMENT", "DEBIT", "ORDER",
})

MAX_SESSION_ID_LENGTH = 50  # SessionResponse.sessionId
RETURN_PARAMETERS = ("paylinetoken", "monext_session_id")


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _latest(transactions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The session's most recent transaction: by date when every one has a date, else the last listed."""
    if not transactions:
        return None
    dates = [_parse_date(t.get("date")) for t in transactions]
    if all(dates):
        return max(zip(dates, range(len(transactions)), transactions), key=lambda row: (row[0], row[1]))[2]
    return transactions[-1]


def _is_amount(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _amount(transaction: dict[str, Any] | None, order: dict[str, Any]) -> int:
    """What the transaction is for: ``authorizedAmount``, which Monext leaves empty (absent or null)
    when it equals ``requestedAmount``, else ``requestedAmount``, else the order's amount."""
    for value in ((transaction or {}).get("authorizedAmount"), (transaction or {}).get("requestedAmount"),
                  order.get("amount")):
        if value is not None:
            if not _is_amount(value):
                raise ValueError(f"amounts must be ints in minor units, not {value!r}")
            return value
    raise ValueError("the session names no amount")


def _always(transaction: dict[str, Any]) -> bool:
    return True


def session_state(session_id: str, answer: dict[str, Any], *,
                  action_accepted: Callable[[dict[str, Any]], bool] = _always) -> TransactionState:
    """The payment state a ``GET /v1/checkout/payments/sessions/{id}`` answer describes.

    A session's transactions carry no result of their own, so a REFUND or CANCEL among them only
    changes an accepted payment when ``action_accepted`` confirms it; a refused one is passed over.
    The latest accepted refund or cancel wins over earlier ones.
    Raises ``ValueError``/``KeyError``/``TypeError`` for an answer that cannot be read; the caller
    treats that as the provider being unable to answer now.
    """
    title = result_of(answer).get("title")
    if title not in TITLE_STATUS:
        raise ValueError(f"unknown result title {title!r}")
    status = TITLE_STATUS[title]
    order = answer["order"]
    reference = order["reference"]
    if not isinstance(reference, str) or not reference:
        raise ValueError("order.reference is missing")
    transactions = [t for t in answer.get("transactions") or [] if isinstance(t, dict)]
    # The event names the transaction that made the state: an accepted refund or cancel, else the
    # payment itself (never a capture of it, whose amount may be partial).
    subject = None
    if status == "approved":
        actions = [t for t in transactions if t.get("type") in ACCEPTED_ACTION_STATUS]
        while actions and subject is None:
            latest = _latest(actions)
            assert latest is not None
            if action_accepted(latest):
                subject, status = latest, ACCEPTED_ACTION_STATUS[latest["type"]]
            actions = [t for t in actions if t is not latest]
    if subject is None:
        subject = _latest([t for t in transactions if t.get("type") in PAYMENT_TYPES])
    if subject is not None and subject.get("id"):
        transaction_id, occurred_at = str(subject["id"]), _parse_date(subject.get("date"))
        currency = subject.get("currency") or order["currency"]
    else:  # no payment transaction yet (the buyer has not paid, or gave up first)
        subject, transaction_id, occurred_at, currency = None, session_id, None, order["currency"]
    return TransactionState(status=status, transaction_id=transaction_id, order_id=reference,
                            amount=_amount(subject, order), currency=str(currency), raw=answer,
                            occurred_at=occurred_at, key=session_id)


def _session_id(value: Any, name: str) -> str:
    if value is None or value == "":
        raise InvalidRequest(f"{name} is required", code=f"missing_{name}")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", code=f"invalid_{name}")
    if len(value) > MAX_SESSION_ID_LENGTH:
        raise InvalidRequest(f"{name} is longer than {MAX_SESSION_ID_LENGTH} characters", code="reference_too_long")
    return value


class Monext(Provider):
    name = "monext"
    settings = (
        Setting("merchant_id", help="Merchant identifier (the Basic auth user)"),
        Setting("access_key", secret=True, help="Access key from the Monext administration centre"),
        Setting("base_url", default="https://api-sandbox.retail.monext.com",
                help="REST API host; https://api.retail.monext.com in production"),
    )
    callback_methods = frozenset({"GET", "POST"})
    return_methods = frozenset({"GET"})

    def create_client(self) -> MonextClient:
        return MonextClient(self.config["merchant_id"], self.config["access_key"], self.config["base_url"],
                            timeout=self.timeout, on_created=self.watch)

    def secrets(self) -> list[str]:
        # The Basic credentials' encoded form reveals the access key as surely as the key itself.
        encoded = basic_auth(self.config["merchant_id"], self.config["access_key"]).split(" ", 1)[1]
        return [*super().secrets(), encoded]

    def ping(self) -> str:
        self.client.alive()
        return "the checkout API is alive and accepts these credentials"

    def read_callback(self, call: InboundCall) -> Trigger:
        """``token`` (the session id) from the query, a form or a JSON body; ``notificationType`` kept."""
        token = _session_id(call.param("token"), "token")
        kind = call.param("notificationType")
        return Trigger(token, context={"notification_type": kind} if isinstance(kind, str) and kind else {})

    def read_return(self, call: InboundCall) -> Trigger:
        """``paylinetoken`` or ``monext_session_id``; naming two different sessions is refused."""
        values = {v for name in RETURN_PARAMETERS for v in call.query.get(name, []) if v}
        if len(values) > 1:
            raise InvalidRequest("the return names more than one session", code="ambiguous_session")
        return Trigger(_session_id(next(iter(values), None), "paylinetoken"))

    def fetch(self, trigger: Trigger) -> TransactionState:
        answer = self.client.get_session(trigger.reference)
        try:
            return session_state(trigger.reference, answer, action_accepted=self._accepted)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable session answer: {exc}") from None

    # -- payments and payouts a shop starts ------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> Checkout:
        """A payment session; the buyer goes to its ``redirectURL``. ``point_of_sale_reference`` is
        required; other fields are the session request's own, in snake_case."""
        fields = dict(request.fields)
        if "point_of_sale_reference" not in fields:
            raise ValidationError("point_of_sale_reference", "is required: your Monext point of sale")
        if "order" in fields:
            raise ValidationError("order", "is made from order_id, amount and currency")
        return_url = fields.pop("return_url", request.return_url)
        if not return_url:
            raise ConfigError("Monext sends the buyer back to a return URL: set HOOKHUB_PUBLIC_URL")
        fields.setdefault("notification_url", request.notify_url)
        if fields["notification_url"] is None:
            del fields["notification_url"]
        answer = self.client.create_session(
            order={"reference": request.order_id, "amount": request.amount, "currency": request.currency},
            return_url=return_url, **fields)
        session_id, redirect_url = answer.get("sessionId"), answer.get("redirectURL")
        if not isinstance(session_id, str) or not isinstance(redirect_url, str):
            raise ProviderUnavailable(self.name, "the session answer has no sessionId and redirectURL")
        return Checkout(provider=self.name, order_id=request.order_id, reference=session_id, amount=request.amount,
                        currency=request.currency, redirect_url=redirect_url, raw=answer)

    def start_payout(self, request: PayoutRequest) -> Payout:
        """A SEPA transfer: ``payer_bank_account`` (``{"payment_method_id": ...}``) and
        ``payee_bank_account`` (``bic``, ``holder_name``, ``iban``); the reference goes in
        ``crossReference.orderReference``."""
        fields = dict(request.destination)
        payer, payee = fields.pop("payer_bank_account", None), fields.pop("payee_bank_account", None)
        for name, value in (("payer_bank_account", payer), ("payee_bank_account", payee)):
            if not isinstance(value, dict):
                raise ValidationError(name, "is required (a dict of Monext's bank account fields)")
        fields["cross_reference"] = {"order_reference": request.reference}
        try:
            answer = self.client.create_sepa_transfer(request.amount, request.currency, payer, payee, **fields)
        except ProviderUnavailable as exc:
            return Payout(provider=self.name, reference=request.reference, amount=request.amount,
                          currency=request.currency, status="pending", raw={"error": str(exc)})
        state = payout_state(request.reference, answer, request.amount, request.currency)
        return Payout(provider=self.name, reference=request.reference, amount=request.amount,
                      currency=request.currency, status=state.status,  # type: ignore[arg-type]
                      transaction_id=state.transaction_id, raw=answer)

    def poll(self, watch: Watch) -> TransactionState | None:
        """The session of a payment; the payout transaction of a payout."""
        if watch.kind == "payout":
            transaction_id = watch.context.get("transaction_id")
            if not transaction_id:
                raise ProviderNotFound(self.name, "the transfer got no answer, and Monext's payout API finds "
                                                  "transfers by their transaction id only")
            return payout_state(watch.order_id, self.client.get_payout(str(transaction_id)), watch.amount,
                                watch.currency)
        return self.fetch(Trigger(watch.reference))

    def _accepted(self, transaction: dict[str, Any]) -> bool:
        """Whether Monext accepted this refund or cancel (its own result, not the session's)."""
        detail = self.client.get_transaction(str(transaction.get("id") or ""))
        return result_of(detail).get("title") == "ACCEPTED"

    def acknowledge(self, call: InboundCall) -> Reply:
        """An empty 200: anything else and Monext keeps notifying."""
        return Reply(200, b"", "text/plain; charset=utf-8")
