"""Monext (Monext Online, formerly Payline) as a hookhub provider.

Monext's notification (``/hooks/monext?token=<sessionId>``) and the buyer's return
(``/return/monext?paylinetoken=<sessionId>``, or ``monext_session_id=`` with the newer point-of-sale
setting) are unsigned: they only name a payment session. Both are triggers; the truth is
``GET /v1/checkout/payments/sessions/{sessionId}`` (``SessionDetailResponse``).

The session is the unit of state: notification and return share one lock and one state machine
keyed on the session id. ``event.order_id`` is ``order.reference``.

Money movements. A session's payment is reported as its movements, each with Monext's own id:

* the payment transaction (the latest of the session's ``transactions`` whose ``TransactionType``
  is a payment, see ``PAYMENT_KINDS``) is the payment's one approval, an ``authorization`` or a
  one-step ``payment``, and only when the session's ``result.title`` is ACCEPTED;
* its captures, refunds and cancels are the ``associatedTransactions`` (``AssociatedTransaction``:
  ``id``, ``type``, ``date``, ``amount``, ``status``) of ``GET /v1/checkout/transactions/{id}``
  (``TransactionDetailResponse``) for the payment transaction; only those with status OK moved money.
  The same operations also show in the session's ``transactions``, but without a result of their own,
  so they are not read from there.

Installments. An order paid in several parts shows, per Monext's OpenAPI document, as:

* a payment transaction whose ``paymentType`` (``PaymentType``) is ``MX_INSTALLMENT`` (Monext runs
  the schedule) or ``INSTALLMENT``, for the first part only (``TransactionPayment.requestedAmount``);
* the session's ``paymentPlan`` (``SessionDetailResponse.paymentPlan``, a ``PaymentPlan``, "either an
  Installment Plan or a Subscription"), whose ``installments`` (``Installment``) each have a
  ``number``, an ``amount``, a ``status`` (UPCOMING, ACCEPTED, FAILED, RETRYING, DISABLED, SETTLED,
  REFUSED) and, once executed, a ``transaction`` (``TransactionBase``: ``id``, ``date``);
* ``Order.amount``: "Total amount due by the buyer".

So an installment payment is one ``authorization`` of ``order.amount`` (with the payment
transaction's id) and one ``capture`` per installment ACCEPTED or SETTLED, with its transaction's id
and the installment's amount. Without a plan in the answer, the payment transaction is the one part
known to be paid. A payment transaction without a ``paymentType`` is taken as an installment when the
session has a plan; a subscription (``MX_RECURRING``) is not an installment payment.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from hookhub import (Checkout, ConfigError, InboundCall, InvalidRequest, Movement, PaymentRequest, Payout,
                     PayoutRequest, Provider, ProviderNotFound, ProviderUnavailable, Reply, Setting, TransactionState,
                     Trigger, ValidationError, Watch)

from .client import MonextClient, payout_state, result_of

log = logging.getLogger("hookhub")

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
# Transactions that are the payment itself -> the approval they are: money reserved, or paid in one step.
PAYMENT_KINDS = {
    "AUTHORIZATION": "authorization",
    "REAUTHORIZATION": "authorization",
    "AUTHORIZATION_AND_CAPTURE": "payment",
    "AUTHORIZATION_AND_CAPTURE_COMPLEMENT": "payment",
    "REAUTHORIZATION_AND_CAPTURE": "payment",
    "DEBIT": "payment",
    "ORDER": "payment",
}
PAYMENT_TYPES = frozenset(PAYMENT_KINDS)
# Operations on a payment transaction (its associated transactions) -> the movement they are.
ACTION_KINDS = {"CAPTURE": "capture", "REFUND": "refund", "CREDIT": "refund", "CANCEL": "void"}
INSTALLMENT_PAYMENT_TYPES = frozenset({"MX_INSTALLMENT", "INSTALLMENT"})
# Installment.status values of an installment whose money was taken.
PAID_INSTALLMENT_STATUSES = frozenset({"ACCEPTED", "SETTLED"})

MAX_SESSION_ID_LENGTH = 50  # SessionResponse.sessionId
# Monext's session ids are letters and digits (SessionResponse.sessionId's example is
# "13fChMDzWfyVw6d2R2391553893852225"); '-' and '_' are let through too, as in the ids Monext
# generates elsewhere (its 3DS sessions' UUIDs). Nothing else: a '.', '/' or '%' from a caller could
# otherwise make another path of Monext's API out of the one hookhub asks.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]+")
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


def _checked_amount(value: Any) -> int:
    if not _is_amount(value):
        raise ValueError(f"amounts must be ints in minor units, not {value!r}")
    return value


def _first_amount(*values: Any) -> int | None:
    """The first of ``values`` that is given (neither absent nor null), checked to be minor units."""
    value = next((v for v in values if v is not None), None)
    return None if value is None else _checked_amount(value)


def _amount(transaction: dict[str, Any] | None, order: dict[str, Any]) -> int:
    """What the transaction is for: ``authorizedAmount``, which Monext leaves empty (absent or null)
    when it equals ``requestedAmount``, else ``requestedAmount``, else the order's amount."""
    transaction = transaction or {}
    amount = _first_amount(transaction.get("authorizedAmount"), transaction.get("requestedAmount"), order.get("amount"))
    if amount is None:
        raise ValueError("the session names no amount")
    return amount


def _no_associated(transaction_id: str) -> list[dict[str, Any]]:
    return []


def _id_of(item: dict[str, Any]) -> str | None:
    value = item.get("id")
    return str(value) if value not in (None, "") else None


def _installments(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The session's payment plan's installments, or None when the answer has no plan."""
    plan = answer.get("paymentPlan")
    if not isinstance(plan, dict):
        return None
    return [i for i in plan.get("installments") or [] if isinstance(i, dict)]


def _later_installment_ids(installments: list[dict[str, Any]] | None) -> set[str]:
    """Transaction ids of installments after the first: Monext took them, not the buyer on the session's
    page, so none of them is the session's payment transaction even where the session lists it."""
    ids = set()
    for installment in installments or []:
        transaction = installment.get("transaction")
        transaction_id = _id_of(transaction) if isinstance(transaction, dict) else None
        if installment.get("number") != 1 and transaction_id:
            ids.add(transaction_id)
    return ids


def _payment_transaction(transactions: list[dict[str, Any]],
                         installments: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The transaction that is the payment: the latest payment one, since a refused attempt may be retried."""
    later = _later_installment_ids(installments)
    return _latest([t for t in transactions if t.get("type") in PAYMENT_TYPES and _id_of(t) not in later])


def _is_installment(payment: dict[str, Any], installments: list[dict[str, Any]] | None) -> bool:
    payment_type = payment.get("paymentType")
    if payment_type is None:
        return installments is not None
    return payment_type in INSTALLMENT_PAYMENT_TYPES


def _movement(kind: str, amount: int, movement_id: str | None, currency: str, date: Any) -> Movement:
    return Movement(kind, amount, id=movement_id, currency=currency, occurred_at=_parse_date(date))


def _installment_captures(payment: dict[str, Any], installments: list[dict[str, Any]] | None,
                          currency: str) -> list[Movement]:
    """One capture per installment paid; without a plan, the payment transaction is the part known paid."""
    if installments is None:
        part = _first_amount(payment.get("authorizedAmount"), payment.get("requestedAmount"))
        if part is None or not _id_of(payment):
            log.warning("monext: installment payment %s names no id or amount; its first part is not booked",
                        _id_of(payment))
            return []
        return [_movement("capture", part, _id_of(payment), currency, payment.get("date"))] if part else []
    captures = []
    for installment in installments:
        if installment.get("status") not in PAID_INSTALLMENT_STATUSES:
            continue
        transaction = installment.get("transaction") if isinstance(installment.get("transaction"), dict) else {}
        amount = _checked_amount(installment.get("amount"))
        if not _id_of(transaction):
            log.warning("monext: installment %s of plan %s is paid but names no transaction id; not booked",
                        installment.get("number"), installment.get("paymentPlanId"))
            continue
        if amount:
            captures.append(_movement("capture", amount, _id_of(transaction), currency,
                                      transaction.get("date") or installment.get("dueDate")))
    return captures


def _operations(associated: list[dict[str, Any]], approval: str, currency: str) -> list[Movement]:
    """The captures, refunds and voids among a payment transaction's associated transactions."""
    movements = []
    for operation in associated:
        kind = ACTION_KINDS.get(operation.get("type"))
        # A refused operation moved no money. Payment transactions listed here are not a second
        # approval, and a one-step payment was captured with it: a capture of it adds nothing.
        if kind is None or operation.get("status") != "OK" or (kind == "capture" and approval != "authorization"):
            continue
        if not _id_of(operation):
            log.warning("monext: an accepted %s names no transaction id; not booked", operation.get("type"))
            continue
        if operation.get("amount") is None:
            log.warning("monext: %s %s names no amount; not booked", operation.get("type"), _id_of(operation))
            continue
        amount = _checked_amount(operation["amount"])
        if amount:
            movements.append(_movement(kind, amount, _id_of(operation), currency, operation.get("date")))
    return movements


def _unique(movements: list[Movement]) -> tuple[Movement, ...]:
    """Each movement once: an installment's capture may be listed by the plan and by the transaction."""
    seen: dict[tuple[str, str | None], Movement] = {}
    for movement in movements:
        seen.setdefault((movement.kind, movement.id), movement)
    return tuple(seen.values())


def session_state(session_id: str, answer: dict[str, Any], *,
                  associated: Callable[[str], list[dict[str, Any]]] = _no_associated) -> TransactionState:
    """The payment state a ``GET /v1/checkout/payments/sessions/{id}`` answer describes, with its movements.

    ``associated(transaction_id)`` gives the payment transaction's ``associatedTransactions``; it is
    called once, for an accepted session's payment transaction only. ``status`` is the session's
    ``result.title`` (approved for an ACCEPTED one, whatever was refunded since: refunds and voids are
    movements). Raises ``ValueError``/``KeyError``/``TypeError`` for an answer that cannot be read;
    the caller treats that as the provider being unable to answer now.
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
    installments = _installments(answer)
    payment = _payment_transaction(transactions, installments)
    if payment is None:  # no payment transaction yet (the buyer has not paid, or gave up first)
        return TransactionState(status=status, transaction_id=session_id, order_id=reference,
                                amount=_amount(None, order), currency=str(order["currency"]), raw=answer,
                                key=session_id)
    currency = str(payment.get("currency") or order["currency"])
    installment = _is_installment(payment, installments)
    # An installment payment is approved for the whole order; each part paid is a capture of it.
    amount = _amount(None, order) if installment else _amount(payment, order)
    payment_id = _id_of(payment)
    movements: list[Movement] = []
    if status == "approved" and amount:
        approval = "authorization" if installment else PAYMENT_KINDS[payment["type"]]
        movements.append(_movement(approval, amount, payment_id, currency, payment.get("date")))
        if installment:
            movements += _installment_captures(payment, installments, currency)
        if payment_id:
            movements += _operations(associated(payment_id), approval, currency)
        else:
            log.warning("monext: the payment transaction of session %s names no id; its captures, refunds "
                        "and cancels cannot be looked up", session_id)
    return TransactionState(status=status, transaction_id=payment_id or session_id, order_id=reference,
                            amount=amount, currency=currency, raw=answer, occurred_at=_parse_date(payment.get("date")),
                            key=session_id, movements=_unique(movements))


def _session_id(value: Any, name: str) -> str:
    if value is None or value == "":
        raise InvalidRequest(f"{name} is required", code=f"missing_{name}")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", code=f"invalid_{name}")
    if len(value) > MAX_SESSION_ID_LENGTH:
        raise InvalidRequest(f"{name} is longer than {MAX_SESSION_ID_LENGTH} characters", code="reference_too_long")
    if not _SESSION_ID.fullmatch(value):
        raise InvalidRequest(f"{name} is not a Monext session id: only letters, digits, - and _ are",
                             code="malformed_session_id")
    return value


class Monext(Provider):
    name = "monext"
    settings = (
        Setting("merchant_id", help="Merchant identifier (the Basic auth user)"),
        Setting("access_key", secret=True, help="Access key from the Monext administration centre"),
        Setting("base_url", default="https://api-sandbox.retail.monext.com",
                help="REST API host; https://api.retail.monext.com in production", url=True),
    )
    callback_methods = frozenset({"GET", "POST"})
    return_methods = frozenset({"GET"})
    return_url_per_payment = True  # a session's returnURL is given when it is created

    def create_client(self) -> MonextClient:
        return MonextClient(self.config["merchant_id"], self.config["access_key"], self.config["base_url"],
                            timeout=self.timeout, on_created=self.watch)

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
            return session_state(trigger.reference, answer, associated=self._associated)
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
        ``privateData`` (``crossReference`` is Monext's link to a payment transaction, yours to set)."""
        fields = dict(request.destination)
        payer, payee = fields.pop("payer_bank_account", None), fields.pop("payee_bank_account", None)
        for name, value in (("payer_bank_account", payer), ("payee_bank_account", payee)):
            if not isinstance(value, dict):
                raise ValidationError(name, "is required (a dict of Monext's bank account fields)")
        try:
            answer = self.client.create_sepa_transfer(request.amount, request.currency, payer, payee,
                                                      reference=request.reference, **fields)
        except ProviderUnavailable as exc:
            return Payout(provider=self.name, reference=request.reference, amount=request.amount,
                          currency=request.currency, status="pending", raw={"error": str(exc)})
        try:
            status = payout_state(request.reference, answer, request.amount, request.currency).status
        except ProviderUnavailable:
            status = "pending"  # made, in a state this plugin cannot read: the watch asks again
        transaction = answer.get("transaction") if isinstance(answer.get("transaction"), dict) else {}
        return Payout(provider=self.name, reference=request.reference, amount=request.amount,
                      currency=request.currency, status=status,  # type: ignore[arg-type]
                      transaction_id=str(transaction["id"]) if transaction.get("id") else None, raw=answer)

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

    def _associated(self, transaction_id: str) -> list[dict[str, Any]]:
        """The captures, refunds and cancels Monext made on the payment transaction, refused ones too.

        A payment transaction Monext cannot find has none to report; an outage propagates, so that
        hookhub asks again rather than book a payment without its refunds.
        """
        try:
            detail = self.client.get_transaction(transaction_id)
        except ProviderNotFound:
            return []
        listed = detail.get("associatedTransactions") or []
        if not isinstance(listed, list):
            raise ValueError("associatedTransactions is not a list")
        return [t for t in listed if isinstance(t, dict)]

    def acknowledge(self, call: InboundCall) -> Reply:
        """An empty 200: anything else and Monext keeps notifying."""
        return Reply(200, b"", "text/plain; charset=utf-8")
