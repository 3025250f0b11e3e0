"""Monri's sandbox: a fake of Monri's Payment Method and Customers APIs, following Monri's documents.

Every request must carry ``Content-Type`` and ``Accept: application/json`` and a valid
``Authorization: WP3-v2.1 <authenticity_token> <timestamp> <digest>``; the fake recomputes
``sha512(merchant_key + timestamp + authenticity_token + fullpath + body)`` over the path with its
query string and the raw body, and answers 401 otherwise. Answers carry Monri's ``status`` field:
approved, invalid-request (4xx, with ``message``) or error (500).

As Monri and the buyer, the sandbox signs what Monri sends merchants: callbacks (``WP3-callback``
over the body) and success URLs (a digest over the URL hookhub's public address gives).

A page standing for Monri Components pays what ``POST /v2/payment/new`` created:
``/components/pay?client_secret=<client_secret>`` (``components_url``). Pay approves the payment,
Decline declines it; then, as Monri, the sandbox posts the signed callback to
``{hookhub_url}/hooks/monri`` (for approved payments only: Monri calls back about those) and sends
the buyer to the signed success URL ``{public_url}/return/monri?...&digest=``. Cancel leaves the
payment as it was and sends the buyer to hookhub's failure page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask import Flask, Response, request

from hookhub import Sandbox, SimulatedPayment, SimulatedRequest, to_major_units

# The callback's status and response_code for a sandbox payment in each state.
RESULT_FOR = {"approved": ("approved", "0000"), "declined": ("declined", "1005"), "pending": ("pending", "pending")}
COMPONENTS_PAGE = "/components/pay"
UNPAID = "payment_method_required"  # payment_status of a created payment nobody has paid yet


class MonriSandbox(Sandbox):
    name = "monri"
    merchant_key = "sandbox-monri-merchant-key-0123456789"
    authenticity_token = "5a1d8b0c3e7f49a2b6c4d8e0f1a3b5c7d9e2f4a6"

    def settings(self) -> dict[str, str]:
        return {"HOOKHUB_MONRI_MERCHANT_KEY": self.merchant_key,
                "HOOKHUB_MONRI_AUTHENTICITY_TOKEN": self.authenticity_token, "HOOKHUB_MONRI_BASE_URL": self.base_url}

    def reset(self) -> None:
        with self.lock:
            self.payments: dict[str, dict] = {}
            self.customers: dict[str, dict] = {}
            self.payment_methods: dict[str, list[dict]] = {}
            self.requests: list[tuple[str, str]] = []
            self.refused_auth = 0
            self.fail_next = False

    # -- what Monri sends to merchants -------------------------------------------------------------

    def callback_headers(self, body: bytes) -> dict[str, str]:
        digest = hashlib.sha512(self.merchant_key.encode() + body).hexdigest()
        return {"Authorization": f"WP3-callback {digest}", "Content-Type": "application/json"}

    def signed_return_url(self, public_url: str, query: str) -> str:
        url = f"{public_url}/return/monri?{query}"
        digest = hashlib.sha512((self.merchant_key + url).encode()).hexdigest()
        return f"{url}&digest={digest}"

    def components_url(self, client_secret: str) -> str:
        """The page standing for Monri Components, where the buyer pays what ``client_secret`` names."""
        return f"{self.url}{COMPONENTS_PAGE}?{urlencode({'client_secret': client_secret})}"

    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        """A payment for ``order_id``; when the shop created one for it (``/v2/payment/new``) that nobody
        has paid yet, that one is paid, for its created amount, currency and transaction type."""
        with self.lock:
            payment = next((p for p in self.payments.values() if p["order_number"] == order_id), None)
            if payment is not None and payment["payment_status"] != UNPAID:
                raise ValueError(f"order number {order_id} has already been taken")
            from_checkout = payment is not None
            if payment is None:
                payment_id = secrets.token_hex(20)
                payment = self.payments[payment_id] = {
                    "id": payment_id, "client_secret": secrets.token_hex(20), "amount": amount, "currency": currency,
                    "order_number": order_id, "transaction_type": "purchase", "payment_status": UNPAID,
                    "result": None,
                }
            return self.pay_created(payment["id"], status, from_checkout=from_checkout)

    def pay_created(self, payment_id: str, status: str, *, from_checkout: bool = True) -> SimulatedPayment:
        """The buyer pays (or is declined) an unpaid payment; a pending one stays unpaid."""
        transaction_id = str(secrets.randbelow(9 * 10**8) + 10**8)
        with self.lock:
            payment = self.payments[payment_id]
            if status != "pending":  # a pending payment has no result yet
                self.complete(payment_id, *RESULT_FOR[status])["result"]["id"] = int(transaction_id)
            return SimulatedPayment(self.name, payment["order_number"], payment["amount"], payment["currency"],
                                    status, transaction_id,
                                    {"payment_id": payment_id, "transaction_type": payment["transaction_type"]},
                                    from_checkout=from_checkout)

    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        if payment.status == "pending":
            raise ValueError("Monri calls back about finished transactions only; a pending payment has a return")
        status, response_code = RESULT_FOR[payment.status]
        body = json.dumps({
            "id": int(payment.transaction_id), "acquirer": "sandbox", "order_number": payment.order_id,
            "order_info": "hookhub sandbox", "amount": payment.amount, "currency": payment.currency,
            "status": status, "response_code": response_code, "approval_code": "629762",
            "transaction_type": payment.details.get("transaction_type", "purchase"),
            "masked_pan": "434179-xxx-xxx-0044",
            "created_at": datetime.now(timezone.utc).isoformat(),
        }, separators=(",", ":")).encode()
        return SimulatedRequest("POST", "/hooks/monri", headers=self.callback_headers(body), body=body)

    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        query = urlencode({
            "acquirer": "sandbox", "amount": str(payment.amount), "approval_code": "629762", "cc_type": "visa",
            "currency": payment.currency, "language": "en", "masked_pan": "434179-xxx-xxx-0044",
            "order_number": payment.order_id, "response_code": RESULT_FOR[payment.status][1],
        })
        signed = self.signed_return_url(public_url.rstrip("/"), query)
        return SimulatedRequest("GET", "/return/monri", signed.split("?", 1)[1])

    def complete(self, payment_id: str, status: str = "approved", response_code: str = "0000") -> dict:
        """The buyer paid (or failed to): the payment gets a result, as Monri records it."""
        with self.lock:
            payment = self.payments[payment_id]
            payment["payment_status"] = status
            payment["result"] = {
                "status": status, "currency": payment["currency"], "amount": payment["amount"],
                "order_number": payment["order_number"], "pan_token": None,
                "created_at": datetime.now(timezone.utc).isoformat(), "transaction_type": payment["transaction_type"],
                "response_code": response_code, "response_message": status,
                "payment_method": {"type": "card", "data": {"brand": "visa", "masked": "434179-xxx-xxx-0044"}},
                "errors": [],
            }
            return payment

    # -- the API -----------------------------------------------------------------------------------

    def api_app(self) -> Flask:
        app = Flask("monri_sandbox")
        fake = self

        def answer(code: int, /, **body) -> Response:
            return Response(json.dumps(body), code, content_type="application/json")

        def invalid(message: str, status: int = 400) -> Response:
            return answer(status, status="invalid-request", message=message)

        def body_json() -> dict:
            try:
                data = json.loads(request.get_data() or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        @app.before_request
        def _authenticate():
            with fake.lock:
                fake.requests.append((request.method, request.full_path.rstrip("?")))
            if request.path == COMPONENTS_PAGE:  # the buyer's browser: no API credentials
                return None
            if request.headers.get("Content-Type") != "application/json" or \
                    request.headers.get("Accept") != "application/json":
                return invalid("Content-Type and Accept must be application/json")
            parts = request.headers.get("Authorization", "").split(" ")
            # The request target exactly as sent: path and query, percent-encoding untouched.
            fullpath = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
            body = request.get_data(as_text=True) if request.method != "GET" else ""
            ok = len(parts) == 4 and parts[0] == "WP3-v2.1" and parts[1] == fake.authenticity_token and \
                parts[2].isdigit()
            if ok:
                expected = hashlib.sha512(
                    (fake.merchant_key + parts[2] + fake.authenticity_token + fullpath + body).encode()).hexdigest()
                ok = hmac.compare_digest(expected, parts[3])
            if not ok:
                with fake.lock:
                    fake.refused_auth += 1
                return invalid("Authorization header is invalid", 401)
            if fake.fail_next:
                fake.fail_next = False
                return answer(500, status="error",
                              message="An error occurred while processing request. Please try later.")
            return None

        @app.route(COMPONENTS_PAGE, methods=["GET", "POST"])
        def components():
            secret = request.args.get("client_secret", "")
            with fake.lock:
                payment = next((p for p in fake.payments.values()
                                if p["client_secret"] == secret and p["payment_status"] == UNPAID), None)
            if payment is None:
                return fake.page(404, "Payment not found", "No payment waits for this client_secret.")
            if request.method == "GET":
                amount = f"{to_major_units(payment['amount'], payment['currency'] or 'EUR')} {payment['currency']}"
                return fake.pay_page("Pay with Monri", [("Order", payment["order_number"]), ("Amount", amount)])
            action = fake.page_action(request.form)
            if action is None:
                return fake.page(400, "Unknown action", "Press Pay, Decline or Cancel.")
            hookhub = fake.hookhub_url
            if action == "cancel":
                return fake.send_buyer(hookhub and f"{hookhub}/result/failure", "You canceled the payment.")
            with fake.lock:
                if payment["payment_status"] != UNPAID:  # paid from another tab meanwhile
                    return fake.page(404, "Payment not found", "This payment is done already.")
                paid = fake.pay_created(payment["id"], "approved" if action == "pay" else "declined")
            if paid.status == "approved":
                fake.notify_hookhub(fake.callback(paid))
            public = fake.public_url
            back = fake.buyer_return(paid, public_url=public) if public else None
            return fake.send_buyer(back and f"{public}{back.target}", f"Payment {paid.status}.")

        @app.post("/v2/payment/new")
        def payment_new():
            data = body_json()
            amount, order_number = data.get("amount"), data.get("order_number")
            if not isinstance(amount, int) or not 0 < amount < 10**11:
                return invalid("Amount is invalid")
            if not isinstance(order_number, str) or not 2 <= len(order_number) <= 40:
                return invalid("Order number is too short (minimum is 2 characters)")
            if data.get("transaction_type") not in ("authorize", "purchase"):
                return invalid("Transaction type is not included in the list")
            with fake.lock:
                if any(p["order_number"] == order_number for p in fake.payments.values()):
                    return invalid("Order number has already been taken")
                payment_id = secrets.token_hex(20)
                fake.payments[payment_id] = {
                    "id": payment_id, "client_secret": secrets.token_hex(20), "amount": amount,
                    "currency": data.get("currency"), "order_number": order_number,
                    "transaction_type": data["transaction_type"], "payment_status": "payment_method_required",
                    "result": None,
                }
                payment = fake.payments[payment_id]
            return answer(200, status="approved", id=payment_id, client_secret=payment["client_secret"])

        @app.post("/v2/payment/<payment_id>/update")
        def payment_update(payment_id):
            amount = body_json().get("amount")
            with fake.lock:
                payment = fake.payments.get(payment_id)
                if payment is None:
                    return invalid("Payment not found", 404)
                if not isinstance(amount, int) or amount <= 0:
                    return invalid("Amount is invalid")
                payment["amount"] = amount
            return answer(200, status="approved", id=payment_id, client_secret=payment["client_secret"],
                          amount=amount, currency=payment["currency"])

        @app.get("/v2/payment/<payment_id>/status")
        def payment_status(payment_id):
            with fake.lock:
                payment = fake.payments.get(payment_id)
            if payment is None:
                return invalid("Payment not found", 404)
            body = {"status": "approved", "payment_status": payment["payment_status"],
                    "client_secret": payment["client_secret"]}
            if payment["result"] is not None:
                body["payment_result"] = payment["result"]
            return answer(200, **body)

        def customer_or_404(uuid_: str):
            customer = fake.customers.get(uuid_)
            return customer if customer and not customer["deleted"] else None

        @app.post("/v2/customers")
        def customer_create():
            data = body_json()
            now = datetime.now(timezone.utc).isoformat()
            customer = {"uuid": str(uuid.uuid4()), "status": "approved", "deleted": False, "created_at": now,
                        "updated_at": now, "deleted_at": None, "metadata": {}}
            for field in ("merchant_customer_id", "description", "email", "name", "phone", "zip_code", "city",
                          "address", "country"):
                customer[field] = data.get(field)
            customer["metadata"] = data.get("metadata") or {}
            with fake.lock:
                fake.customers[customer["uuid"]] = customer
            return answer(200, **customer)

        @app.route("/v2/customers/<uuid_>", methods=["GET", "POST", "DELETE"])
        def customer(uuid_):
            with fake.lock:
                found = customer_or_404(uuid_)
                if found is None:
                    return invalid("Customer not found", 404)
                if request.method == "POST":
                    found.update(body_json())
                    found["updated_at"] = datetime.now(timezone.utc).isoformat()
                elif request.method == "DELETE":
                    found["deleted"] = True
                    found["deleted_at"] = datetime.now(timezone.utc).isoformat()
                    return answer(200, status="approved", id=uuid_, deleted=True)
            return answer(200, **found)

        @app.get("/v2/merchants/customers/<merchant_customer_id>")
        def customer_by_merchant_id(merchant_customer_id):
            with fake.lock:
                found = next((c for c in fake.customers.values()
                              if c["merchant_customer_id"] == merchant_customer_id and not c["deleted"]), None)
            if found is None:
                return invalid("Customer not found", 404)
            return answer(200, **found)

        def paged(items: list[dict]) -> Response:
            try:
                limit = int(request.args.get("limit", 50))
                offset = int(request.args.get("offset", 0))
            except ValueError:
                return invalid("limit and offset must be valid numbers")
            items = sorted(items, key=lambda c: c["created_at"], reverse=True)
            return answer(200, status="approved", data=items[offset:offset + limit])

        @app.get("/v2/customers")
        def customer_list():
            with fake.lock:
                live = [c for c in fake.customers.values() if not c["deleted"]]
            return paged(live)

        @app.get("/v2/customers/<uuid_>/payment-methods")
        def payment_methods(uuid_):
            with fake.lock:
                if customer_or_404(uuid_) is None:
                    return invalid("Customer not found", 404)
                methods = list(fake.payment_methods.get(uuid_, []))
            return paged(methods)

        return app
