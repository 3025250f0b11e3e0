"""AcmePay's sandbox: a fake of AcmePay's API, and a player of AcmePay and of the buyer.

The fake answers ``GET /v1/payments/{id}`` and ``GET /v1/account`` for the sandbox's API key only
(401 otherwise, 404 for a payment it does not know), with AcmePay's answer shapes. As AcmePay it
signs callbacks with the sandbox's webhook secret; as the buyer it comes back with ``?payment_id=``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from urllib.parse import urlencode

from flask import Flask, Response, request

from hookhub import Sandbox, SimulatedPayment, SimulatedRequest

from .provider import SIGNATURE_HEADER, sign

# What the fake's API says of a sandbox payment that ends in each of hookhub's sandbox statuses.
STATE_FOR_STATUS = {"approved": "succeeded", "declined": "failed", "pending": "processing"}


class AcmePaySandbox(Sandbox):
    name = "acmepay"
    currency = "EUR"
    plays = "callback"  # AcmePay calls back as soon as a payment changes
    api_key = "sk_test_acmepay_sandbox_0123456789"
    webhook_secret = "whsec_acmepay_sandbox_9876543210"

    def settings(self) -> dict[str, str]:
        return {"HOOKHUB_ACMEPAY_API_KEY": self.api_key, "HOOKHUB_ACMEPAY_WEBHOOK_SECRET": self.webhook_secret,
                "HOOKHUB_ACMEPAY_BASE_URL": self.url}

    def reset(self) -> None:
        with self.lock:
            self.payments: dict[str, dict] = {}
            self.requests: list[tuple[str, str]] = []  # (method, path) of every API request
            self.refused_auth = 0

    # -- playing the buyer and AcmePay ---------------------------------------------------------------

    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        payment_id = f"pay_{secrets.token_hex(12)}"
        with self.lock:
            self.payments[payment_id] = {"id": payment_id, "order_ref": order_id, "amount": amount,
                                         "currency": currency, "state": STATE_FOR_STATUS[status]}
        return SimulatedPayment(self.name, order_id, amount, currency, status, payment_id,
                                {"payment_id": payment_id})

    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        return self.signed_callback({"payment_id": payment.transaction_id})

    def signed_callback(self, body: dict | bytes, secret: str | None = None) -> SimulatedRequest:
        """A callback with ``body`` (a dict is written as compact JSON), signed as AcmePay signs."""
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(secret or self.webhook_secret, raw)}
        return SimulatedRequest("POST", "/hooks/acmepay", headers=headers, body=raw)

    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        return SimulatedRequest("GET", "/return/acmepay", urlencode({"payment_id": payment.transaction_id}))

    # -- test controls -----------------------------------------------------------------------------

    def set_state(self, payment_id: str, state: str) -> None:
        """The payment moves on at AcmePay (``succeeded``, ``failed``, ``processing``)."""
        with self.lock:
            self.payments[payment_id]["state"] = state

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for _, seen in self.requests if seen == path)

    # -- the API -----------------------------------------------------------------------------------

    def api_app(self) -> Flask:
        app = Flask("acmepay_sandbox")
        fake = self

        def error(status: int, code: str, message: str) -> Response:
            return Response(json.dumps({"error": code, "message": message}), status,
                            content_type="application/json")

        @app.before_request
        def _authenticate():
            with fake.lock:
                fake.requests.append((request.method, request.path))
            given = request.headers.get("Authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, f"Bearer {fake.api_key}".encode()):
                with fake.lock:
                    fake.refused_auth += 1
                return error(401, "unauthorized", "Invalid API key")
            return None

        @app.get("/v1/payments/<payment_id>")
        def payment(payment_id: str):
            with fake.lock:
                found = dict(fake.payments.get(payment_id) or {})
            if not found:
                return error(404, "not_found", f"No such payment: {payment_id}")
            return Response(json.dumps(found), 200, content_type="application/json")

        @app.post("/v1/payments")
        def create_payment():
            body = request.get_json(silent=True) or {}
            amount, currency, order_ref = body.get("amount"), body.get("currency"), body.get("order_ref")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or not order_ref \
                    or not isinstance(currency, str):
                return error(400, "invalid_request", "amount, currency and order_ref are required")
            payment_id = f"pay_{secrets.token_hex(12)}"
            created = {"id": payment_id, "order_ref": order_ref, "amount": amount, "currency": currency,
                       "state": "open", "checkout_url": f"{fake.url}/checkout/{payment_id}"}
            with fake.lock:
                fake.payments[payment_id] = created
            return Response(json.dumps(created), 201, content_type="application/json")

        @app.get("/v1/account")
        def account():
            body = {"id": "acct_sandbox", "name": "hookhub sandbox", "livemode": False}
            return Response(json.dumps(body), 200, content_type="application/json")

        return app
