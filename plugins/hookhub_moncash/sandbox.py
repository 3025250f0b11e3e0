"""MonCash's sandbox: a fake of the MonCash REST API, following the published API document.

Paths live under ``/Api`` as on MonCash's hosts. ``/oauth/token`` checks HTTP Basic credentials and
issues 59-second bearer tokens; every ``/v1`` route checks the bearer token. Answers have MonCash's
shapes: ``path``, the payload, ``timestamp`` and ``status``, and errors carry ``error`` and
``message``. Money is written as exact JSON number literals, never through a float.

As the buyer and MonCash, the sandbox sends hookhub a return (``?transactionId=``) and an alert
naming the transaction; neither is signed, so hookhub fetches the payment from the fake.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from decimal import Decimal
from urllib.parse import urlencode

from flask import Flask, Response, request

from hookhub import Sandbox, SimulatedPayment, SimulatedRequest, to_major_units

from .client import CURRENCY

# What RetrieveTransactionPayment's ``payment.message`` says of a sandbox payment in each state.
MESSAGES = {"approved": "successful", "declined": "failed", "pending": "pending"}


def _dumps(value) -> str:
    """JSON with Decimals written as their exact literal (independent of hookhub's own helper)."""
    marks: dict[str, str] = {}

    def default(obj):
        if isinstance(obj, Decimal):
            mark = f"__dec_{len(marks)}_{uuid.uuid4().hex}__"
            marks[mark] = str(obj)
            return mark
        raise TypeError(type(obj).__name__)

    text = json.dumps(value, default=default)
    for mark, literal in marks.items():
        text = text.replace(f'"{mark}"', literal)
    return text


class MonCashSandbox(Sandbox):
    name = "moncash"
    currency = "HTG"
    plays = "return"  # the buyer coming back paid: MonCash's usual first sign of a payment
    client_id = "sandbox-client-id"
    client_secret = "sandbox-client-secret-0123456789"

    @property
    def base_url(self) -> str:
        return f"{self.url}/Api"

    @property
    def gateway_url(self) -> str:
        return f"{self.url}/Moncash-middleware"

    def settings(self) -> dict[str, str]:
        return {"HOOKHUB_MONCASH_CLIENT_ID": self.client_id, "HOOKHUB_MONCASH_CLIENT_SECRET": self.client_secret,
                "HOOKHUB_MONCASH_BASE_URL": self.base_url, "HOOKHUB_MONCASH_GATEWAY_URL": self.gateway_url}

    def reset(self) -> None:
        with self.lock:
            self.token_lifetime = 59
            self.tokens: dict[str, float] = {}
            self.token_requests = 0
            self.payments: dict[str, dict] = {}  # transaction_id -> payment
            self.created: list[dict] = []
            self.customers: dict[str, dict] = {}
            self.transfers: dict[str, dict] = {}
            self.full_accounts: set[str] = set()
            self.balance = Decimal("29814021.179999999701976776123046875")
            self.outage = False  # every route answers 503
            self.delay = 0.0  # seconds to wait before answering
            self.requests: list[tuple[str, str]] = []

    # -- playing the buyer and MonCash -------------------------------------------------------------

    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        if currency != CURRENCY:
            raise ValueError(f"MonCash takes {CURRENCY} only")
        transaction_id = str(secrets.randbelow(9 * 10**9) + 10**9)
        self.add_payment(transaction_id, order_id, to_major_units(amount, CURRENCY), message=MESSAGES[status])
        return SimulatedPayment(self.name, order_id, amount, CURRENCY, status, transaction_id)

    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        body = json.dumps({"transactionId": payment.transaction_id}).encode()
        return SimulatedRequest("POST", "/hooks/moncash", headers={"Content-Type": "application/json"}, body=body)

    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        return SimulatedRequest("GET", "/return/moncash", urlencode({"transactionId": payment.transaction_id}))

    # -- test controls ---------------------------------------------------------------------------

    def add_payment(self, transaction_id: str, reference: str, cost, message: str = "successful",
                    payer: str = "50937007294") -> dict:
        payment = {"reference": reference, "transaction_id": transaction_id, "cost": cost,
                   "message": message, "payer": payer}
        with self.lock:
            self.payments[transaction_id] = payment
        return payment

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.requests if p == path)

    # -- the API ---------------------------------------------------------------------------------

    def api_app(self) -> Flask:
        app = Flask("moncash_sandbox")
        fake = self

        def answer(path: str, status: int, **payload) -> Response:
            body = {"path": path, **payload, "timestamp": int(time.time() * 1000), "status": status}
            return Response(_dumps(body), status, content_type="application/json")

        def error(path: str, status: int, name: str, message: str) -> Response:
            return answer(path, status, error=name, message=message)

        def json_body() -> dict:
            try:
                data = json.loads(request.get_data() or b"{}", parse_float=Decimal)
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        @app.before_request
        def _gate():
            with fake.lock:
                fake.requests.append((request.method, request.path))
            if fake.delay:
                time.sleep(fake.delay)
            if fake.outage:
                return Response("<html>503 Service Temporarily Unavailable</html>", 503, content_type="text/html")
            if request.path.startswith("/Api/v1/"):
                auth = request.headers.get("Authorization", "")
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
                with fake.lock:
                    expires = fake.tokens.get(token or "")
                if expires is None or expires < time.monotonic():
                    body = {"error": "invalid_token", "error_description": "Invalid access token"}
                    return Response(json.dumps(body), 401, content_type="application/json")
            return None

        @app.post("/Api/oauth/token")
        def token():
            expected = "Basic " + base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                body = {"error": "unauthorized", "error_description": "Bad credentials"}
                return Response(json.dumps(body), 401, content_type="application/json")
            if request.form.get("grant_type") != "client_credentials" or request.form.get("scope") != "read,write":
                body = {"error": "invalid_request", "error_description": "grant_type and scope are required"}
                return Response(json.dumps(body), 400, content_type="application/json")
            access_token = uuid.uuid4().hex
            with fake.lock:
                fake.token_requests += 1
                fake.tokens[access_token] = time.monotonic() + fake.token_lifetime
            body = {"access_token": access_token, "token_type": "bearer", "expires_in": fake.token_lifetime,
                    "scope": "read,write", "jti": uuid.uuid4().hex}
            return Response(json.dumps(body), 200, content_type="application/json")

        @app.post("/Api/v1/CreatePayment")
        def create_payment():
            data = json_body()
            amount, order_id = data.get("amount"), data.get("orderId")
            if not isinstance(amount, (int, Decimal)) or amount <= 0 or not order_id:
                return error("/v1/CreatePayment", 400, "Bad Request", "amount and orderId are required")
            now = time.strftime("%Y-%m-%d %H:%M:%S:000")
            payment_token = {"expired": now, "created": now, "token": uuid.uuid4().hex}
            with fake.lock:
                fake.created.append({"amount": amount, "orderId": order_id, "token": payment_token["token"]})
            return answer("/v1/CreatePayment", 202, payment_token=payment_token, mode="sandbox")

        def find_payment(path: str, field: str, key: str) -> Response:
            value = json_body().get(field)
            with fake.lock:
                payment = next((p for p in fake.payments.values() if str(p[key]) == str(value)), None)
            if payment is None:
                return error(path, 404, "Not Found", "Can't find this transaction")
            return answer(path, 200, payment=payment)

        @app.post("/Api/v1/RetrieveTransactionPayment")
        def retrieve_transaction():
            return find_payment("/v1/RetrieveTransactionPayment", "transactionId", "transaction_id")

        @app.post("/Api/v1/RetrieveOrderPayment")
        def retrieve_order():
            return find_payment("/v1/RetrieveOrderPayment ", "orderId", "reference")

        @app.post("/Api/v1/CustomerStatus")
        def customer_status():
            account = json_body().get("account")
            with fake.lock:
                customer = fake.customers.get(str(account))
            if customer is None:
                return error("/v1/CustomerStatus", 404, "Not Found", "Customer not found")
            return answer("/v1/CustomerStatus", 200, customerStatus=customer, mode="sandbox")

        @app.post("/Api/v1/Transfert")
        def transfer():
            data = json_body()
            amount, receiver = data.get("amount"), data.get("receiver")
            if not isinstance(amount, (int, Decimal)) or not receiver or not data.get("reference"):
                return error("/Api/v1/Transfert", 400, "Bad Request", "amount, receiver and reference are required")
            if receiver in fake.full_accounts:
                return error("/Api/v1/Transfert", 403, "Forbidden", "Maximum Account Balance")
            transfer = {"transaction_id": str(uuid.uuid4().int)[:8], "amount": amount, "receiver": receiver,
                        "message": "successful", "desc": data.get("desc")}
            with fake.lock:
                fake.transfers[str(data["reference"])] = transfer
                fake.balance -= Decimal(amount)
            return answer("/Api/v1/Transfert", 200, transfer=transfer)

        @app.post("/Api/v1/PrefundedTransactionStatus")
        def prefunded_status():
            reference = json_body().get("reference")
            with fake.lock:
                transfer = fake.transfers.get(str(reference))
            if transfer is None:
                return error("/Api/v1/PrefundedTransactionStatus", 404, "Not Found", "Can't find this transaction")
            return answer("/Api/v1/PrefundedTransactionStatus", 200, transStatus=transfer["message"])

        @app.get("/Api/v1/PrefundedBalance")
        def prefunded_balance():
            return answer("/Api/v1/PrefundedBalance", 200, balance={"balance": fake.balance, "message": "successful"})

        return app
