"""AcmePay as a hookhub provider.

A callback is signed, but its body only names a payment; a return is not signed at all. Neither is
the payment's state, so both become a ``Trigger`` and ``fetch`` asks the API for the truth. Nothing is
kept on the instance between calls: hookhub calls these methods from several threads at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from hookhub import (Checkout, InboundCall, InvalidRequest, InvalidSignature, PaymentRequest, Provider,
                     ProviderUnavailable, Reply, Setting, TransactionState, Trigger, ValidationError, Watch)

from .client import AcmePayClient, check_payment_id

SIGNATURE_HEADER = "X-Acme-Signature"
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")

# AcmePay's payment states, and what each one is to hookhub. Any other state is an answer this
# plugin cannot read: it is refused (ProviderUnavailable), never guessed at.
STATUS_FOR_STATE = {"succeeded": "approved", "failed": "declined", "processing": "pending", "open": "pending"}


def sign(secret: str, body: bytes) -> str:
    """The ``X-Acme-Signature`` value AcmePay sends with ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _payment_id(value: Any) -> str:
    if value is None or value == "":
        raise InvalidRequest("payment_id is required", code="missing_payment_id")
    try:
        return check_payment_id(value)
    except ValidationError as exc:
        raise InvalidRequest(f"payment_id {exc.message}", code="invalid_payment_id") from None


class AcmePay(Provider):
    name = "acmepay"
    settings = (
        Setting("api_key", secret=True, help="Secret API key from the AcmePay dashboard (sk_live_...)"),
        Setting("webhook_secret", secret=True, help="Signing secret of the webhook endpoint (whsec_...)"),
        Setting("base_url", default="https://api.acmepay.example", help="AcmePay's API host"),
    )
    callback_methods = frozenset({"POST"})
    return_methods = frozenset({"GET"})
    needs_public_url = False  # the signature covers the body only, not the URL it was sent to
    return_url_per_payment = True  # each payment is created with the URL its buyer comes back to

    def create_client(self) -> AcmePayClient:
        return AcmePayClient(self.config["api_key"], self.config["base_url"], timeout=self.timeout,
                             on_created=self.watch)

    def ping(self) -> str:
        account = self.client.get_account()
        return f"API key accepted for account {account.get('id', '?')}"

    # -- inbound -----------------------------------------------------------------------------------

    def read_callback(self, call: InboundCall) -> Trigger:
        """Verify the signature over the raw body first; only then read the body."""
        match = _SIGNATURE.match(call.header(SIGNATURE_HEADER))
        if match is None:
            raise InvalidSignature(f"{SIGNATURE_HEADER} is missing or not sha256=<hex>")
        expected = sign(self.config["webhook_secret"], call.body)[len("sha256="):]
        if not hmac.compare_digest(expected, match.group(1).lower()):
            raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")
        body = call.json_object()  # InvalidRequest (malformed_json) for anything but a JSON object
        return Trigger(_payment_id(body.get("payment_id")))

    def read_return(self, call: InboundCall) -> Trigger:
        """Unsigned: the buyer's browser can say anything, so this only names what to fetch."""
        values = call.query.get("payment_id", [])
        if len(values) > 1:
            raise InvalidRequest("payment_id is given more than once", code="ambiguous_payment_id")
        return Trigger(_payment_id(values[0] if values else None))

    # -- the truth -----------------------------------------------------------------------------------

    def fetch(self, trigger: Trigger) -> TransactionState:
        # ProviderNotFound (404), ProviderAuthError (401) and ProviderUnavailable (timeouts, 5xx)
        # come from the client as they are; hookhub knows what each one means.
        answer = self.client.get_payment(trigger.reference)
        try:
            return self._state(answer, trigger.reference)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(self.name, f"unreadable payment answer: {exc}") from None

    def _state(self, answer: dict[str, Any], reference: str) -> TransactionState:
        if answer["id"] != reference:
            raise ValueError(f"asked for payment {reference}, got {answer['id']!r}")
        amount, currency = answer["amount"], answer["currency"]
        # amount is an int in minor units; a fraction (a Decimal from hookhub's JSON) or a bool is not.
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"amount must be an integer in minor units, not {amount!r}")
        if not isinstance(currency, str) or not isinstance(answer["order_ref"], str):
            raise TypeError("currency and order_ref must be strings")
        state = answer["state"]
        if state not in STATUS_FOR_STATE:
            raise ValueError(f"unknown payment state {state!r}")
        return TransactionState(
            status=STATUS_FOR_STATE[state], transaction_id=answer["id"], order_id=answer["order_ref"],
            amount=amount, currency=currency.upper(), raw=answer,
        )

    # -- payments a shop starts ------------------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> Checkout:
        """``hookhub.start_payment("acmepay", ...)``: the buyer goes to the payment's ``checkout_url``."""
        if request.fields:
            raise ValidationError(sorted(request.fields)[0], "is not a field AcmePay takes")
        answer = self.client.create_payment(amount=request.amount, currency=request.currency,
                                            order_ref=request.order_id, return_url=request.return_url)
        return Checkout(provider=self.name, order_id=request.order_id, reference=answer["id"], amount=request.amount,
                        currency=request.currency, redirect_url=answer["checkout_url"], raw=answer)

    def poll(self, watch: Watch) -> TransactionState | None:
        """What AcmePay says of a watched payment now: the same answer as ``fetch``."""
        return self.fetch(Trigger(watch.reference))

    def acknowledge(self, call: InboundCall) -> Reply:
        """AcmePay stops retrying on any 2xx; it logs the body, so say something short."""
        return Reply(200, b"ok")
