"""MonCash's sandbox: a fake of the MonCash REST API, following the published API document.

Paths live under ``/Api`` as on MonCash's hosts. ``/oauth/token`` checks HTTP Basic credentials and
issues 59-second bearer tokens; every ``/v1`` route checks the bearer token. Answers have MonCash's
shapes: ``path``, the payload, ``timestamp`` and ``status``, and errors carry ``error`` and
``message``. Money is written as exact JSON number literals, never through a float.

As the buyer and MonCash, the sandbox sends hookhub a return (``?transactionId=``) and an alert
naming the transaction; neither is signed, so hookhub fetches the payment from the fake.

The gateway serves the payment page of each ``CreatePayment``: ``/Moncash-middleware/Payment/Redirect
?token=<payment_token.token>``, the ``redirect_url`` hookhub's client gives. Pay or Decline records
the payment for the created ``orderId`` and amount (message ``successful`` or ``failed``), alerts
``{hookhub_url}/hooks/moncash`` with ``{"transactionId": ...}`` and sends the buyer to
``{hookhub_url}/return/moncash?transactionId=...``: MonCash's return URL is set in the business
portal, here it is hookhub's. Cancel records nothing and sends the buyer to hookhub's failure page.

Payouts (``Transfert``) end as ``payout_outcomes[receiver]`` says (see ``PAYOUT_OUTCOMES``):
``succeed`` (the default), ``fail`` (answered and recorded with message ``failed``),
``error_after_success`` (recorded as successful, answered 500) or ``pending`` (message ``pending``
until ``settle_payout``). A receiver in ``full_accounts`` is refused with 403 "Maximum Account Balance".
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from decimal import Decimal, localcontext
from urllib.parse import urlencode

from flask import Flask, Response, request

from hookhub import Sandbox, SimulatedPayment, SimulatedRequest, to_major_units, to_minor_units
from hookhub.sandbox import PAYOUT_OUTCOMES

from .client import CURRENCY

# What RetrieveTransactionPayment's ``payment.message`` says of a sandbox payment in each state.
MESSAGES = {"approved": "successful", "declined": "failed", "pending": "pending"}
# The message a transfer gets for each payout outcome (PrefundedTransactionStatus's ``transStatus``).
TRANSFER_MESSAGES = {"succeed": "successful", "fail": "failed", "error_after_success": "successful",
                     "pending": "pending"}
GATEWAY_PAGE = "/Moncash-middleware/Payment/Redirect"


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


def _display(amount) -> str:
    """A major-unit amount as people read it (``10.50``), or as given when it has odd decimals."""
    try:
        return str(to_major_units(to_minor_units(amount, CURRENCY), CURRENCY))
    except (TypeError, ValueError):
        return str(amount)


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
            # Each CreatePayment: amount, orderId, token, and once the buyer is done with its page,
            # transaction_id (None when canceled).
            self.created: list[dict] = []
            self.customers: dict[str, dict] = {}
            self.transfers: dict[str, dict] = {}  # reference -> transfer
            self.full_accounts: set[str] = set()
            self.payout_outcomes: dict[str, str] = {}  # receiver -> one of PAYOUT_OUTCOMES
            self.balance = Decimal("29814021.179999999701976776123046875")
            self.outage = False  # every route answers 503
            self.delay = 0.0  # seconds to wait before answering
            self.requests: list[tuple[str, str]] = []

    # -- playing the buyer and MonCash -------------------------------------------------------------

    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        """A payment for ``order_id``; when the shop created one for it (CreatePayment) and the buyer
        has not been through its page yet, that one is paid, for the created amount."""
        if currency != CURRENCY:
            raise ValueError(f"MonCash takes {CURRENCY} only")
        with self.lock:
            created = next((c for c in reversed(self.created)
                            if c["orderId"] == order_id and "transaction_id" not in c), None)
            if created is not None:
                transaction_id = self.finish_created(created, MESSAGES[status])
                return SimulatedPayment(self.name, order_id, to_minor_units(created["amount"], CURRENCY), CURRENCY,
                                        status, transaction_id, from_checkout=True)
        transaction_id = self.new_transaction_id()
        self.add_payment(transaction_id, order_id, to_major_units(amount, CURRENCY), message=MESSAGES[status])
        return SimulatedPayment(self.name, order_id, amount, CURRENCY, status, transaction_id)

    def new_transaction_id(self) -> str:
        return str(secrets.randbelow(9 * 10**9) + 10**9)

    def finish_created(self, created: dict, message: str | None) -> str | None:
        """The buyer is done with a created payment's page: paid with ``message``, or canceled (None).

        The payment's ``reference`` is the created ``orderId`` and its ``cost`` the amount exactly as
        given to CreatePayment. Returns the new transaction id (None when canceled).
        """
        with self.lock:
            created["transaction_id"] = None if message is None else self.new_transaction_id()
            if message is not None:
                self.add_payment(created["transaction_id"], created["orderId"], created["amount"], message=message)
            return created["transaction_id"]

    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        return self.alert(payment.transaction_id)

    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        return self.return_request(payment.transaction_id)

    def alert(self, transaction_id: str) -> SimulatedRequest:
        """MonCash's alert to the merchant about a transaction."""
        body = json.dumps({"transactionId": transaction_id}).encode()
        return SimulatedRequest("POST", "/hooks/moncash", headers={"Content-Type": "application/json"}, body=body)

    def return_request(self, transaction_id: str) -> SimulatedRequest:
        """The buyer's browser sent to the return URL after the gateway."""
        return SimulatedRequest("GET", "/return/moncash", urlencode({"transactionId": transaction_id}))

    # -- test controls ---------------------------------------------------------------------------

    def add_payment(self, transaction_id: str, reference: str, cost, message: str = "successful",
                    payer: str = "50937007294") -> dict:
        payment = {"reference": reference, "transaction_id": transaction_id, "cost": cost,
                   "message": message, "payer": payer}
        with self.lock:
            self.payments[transaction_id] = payment
        return payment

    def settle_payout(self, reference: str, status: str) -> None:
        """A pending transfer ends: ``status`` is ``successful`` or ``failed`` (the balance gets it back)."""
        if status not in ("successful", "failed"):
            raise ValueError('status must be "successful" or "failed"')
        with self.lock:
            transfer = self.transfers[reference]
            if transfer["message"] != "pending":
                raise ValueError(f"transfer {reference} is not pending but {transfer['message']}")
            transfer["message"] = status
            if status == "failed":
                self.move_balance(Decimal(transfer["amount"]))

    def move_balance(self, amount: Decimal) -> None:
        """Add ``amount`` to the prefunded balance exactly: the default 28 digits would round it."""
        with self.lock, localcontext() as context:
            context.prec = 100
            self.balance += amount

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

        def created_for(token: str) -> dict | None:
            with fake.lock:
                return next((c for c in fake.created if c["token"] == token and "transaction_id" not in c), None)

        @app.route(GATEWAY_PAGE, methods=["GET", "POST"])
        def gateway():
            created = created_for(request.args.get("token", ""))
            if created is None:
                return fake.page(404, "Payment not found", "This payment token is unknown, or its payment is done.")
            if request.method == "GET":
                return fake.pay_page("Pay with MonCash", [
                    ("Order", str(created["orderId"])), ("Amount", f"{_display(created['amount'])} {CURRENCY}")])
            action = fake.page_action(request.form)
            if action is None:
                return fake.page(400, "Unknown action", "Press Pay, Decline or Cancel.")
            with fake.lock:
                if "transaction_id" in created:  # paid from another tab meanwhile
                    return fake.page(404, "Payment not found", "This payment is done already.")
                transaction_id = fake.finish_created(created, {"pay": "successful", "decline": "failed"}.get(action))
            hookhub = fake.hookhub_url
            if transaction_id is None:
                return fake.send_buyer(hookhub and f"{hookhub}/result/failure", "You canceled the payment.")
            fake.notify_hookhub(fake.alert(transaction_id))
            done = f"MonCash transaction {transaction_id} {'paid' if action == 'pay' else 'declined'}."
            return fake.send_buyer(hookhub and hookhub + fake.return_request(transaction_id).target, done)

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
            outcome = fake.payout_outcomes.get(str(receiver), "succeed")
            if outcome not in PAYOUT_OUTCOMES:
                return error("/Api/v1/Transfert", 500, "Internal Server Error",
                             f"sandbox: payout_outcomes[{receiver!r}] must be one of {', '.join(PAYOUT_OUTCOMES)}")
            transfer = {"transaction_id": str(uuid.uuid4().int)[:8], "amount": amount, "receiver": receiver,
                        "message": TRANSFER_MESSAGES[outcome], "desc": data.get("desc")}
            with fake.lock:
                fake.transfers[str(data["reference"])] = transfer
                if transfer["message"] != "failed":  # a pending transfer holds its money until it ends
                    fake.move_balance(-Decimal(amount))
                answered = dict(transfer)  # as it is now: settle_payout may change the record later
            if outcome == "error_after_success":
                return error("/Api/v1/Transfert", 500, "Internal Server Error", "An internal error has occurred")
            return answer("/Api/v1/Transfert", 200, transfer=answered)

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
