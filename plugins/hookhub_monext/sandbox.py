"""Monext's sandbox: a fake of Monext's Checkout and Payout REST APIs, following its OpenAPI documents.

Every request must carry ``Authorization: Basic base64(merchant_id:access_key)``. Wrong credentials
get 401 with a ``result`` whose title is ``Unauthorized``, or, with ``unauthorized_as_200`` set, the
same body with status 200, as Monext sometimes answers. Answers have the documents' shapes:
``{"result": {"title", "code", "detail"}, ...}``; a 400 is a ``BadRequestResult`` with
``invalidParams``; an unknown session or transaction is 404 with result code 02304.

The OpenAPI documents name no collection route; the seed's pagination (``size``/``page``/``sort``
in, ``count``/``startIndex``/``endIndex``/``recordTotal`` out) is served on the collection that
the documents' ``POST .../paymentinstruments`` implies: ``GET .../paymentinstruments``.

As Monext and the buyer, the sandbox sends hookhub a notification (``?token=<sessionId>``) and a
return (``?paylinetoken=<sessionId>``); neither is signed, so hookhub fetches the session.

A session's ``redirectURL`` is the sandbox's own payment page, ``/checkout/pay/<sessionId>``. Pay
makes the session ACCEPTED with a transaction (AUTHORIZATION_AND_CAPTURE, or AUTHORIZATION for a
MANUAL capture), Decline REFUSED with a refused transaction, Cancel CANCELLED with none; a session
nobody has paid stays INPROGRESS. Monext then GETs the session's ``notificationURL`` (else, as a
point of sale's configured one, ``{hookhub_url}/hooks/monext``) with ``?token=<sessionId>
&notificationType=WEBTRS``, and sends the buyer to its ``returnURL`` with ``paylinetoken=<sessionId>``.

Payment transactions and their operations. ``GET /v1/checkout/transactions/{id}`` lists, as
``associatedTransactions``, every capture, refund and cancel made on the transaction through the
``.../captures|refunds|cancels`` routes (status OK, or KO for one Monext refused: more than the
transaction allows) or put there by ``add_operation``; each is a transaction of its own too, listed in
the session's ``transactions``.

Installments (``pay_in_installments``, ``pay_next_installment``) take the shapes of Monext's OpenAPI
document: the session's transaction is the first part's (``paymentType`` MX_INSTALLMENT,
``requestedAmount`` that part), and the session answer's ``paymentPlan`` (``PaymentPlan``) lists
every ``Installment`` with its ``number``, ``amount``, ``status`` (UPCOMING until Monext takes it, then
ACCEPTED or REFUSED) and, once executed, its ``transaction`` (``id``, ``date``). Parts after the
first are Monext's own transactions, not the buyer's on the session's page: they are in the plan, not
in the session's ``transactions``.

SEPA payouts end as ``payout_outcomes[iban or holderName]`` says (see ``PAYOUT_OUTCOMES``): ``succeed``
(the default: INPROGRESS in the creating answer, ACCEPTED from the first GET on), ``fail``
(REFUSED in both), ``error_after_success`` (recorded, ACCEPTED from the first GET on, but the
creating call answers 500) or ``pending`` (INPROGRESS until ``settle_payout``).
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from flask import Flask, Response, request

from hookhub import Sandbox, SimulatedPayment, SimulatedRequest, to_major_units
from hookhub.sandbox import PAYOUT_OUTCOMES

# result for each title, with a return code of that family (Monext's "Return codes" page).
RESULTS = {
    "ACCEPTED": ("00000", "Transaction approved"),
    "REFUSED": ("01100", "Do not honor"),
    "ERROR": ("02101", "Internal Error"),
    "CANCELLED": ("02319", "Payment cancelled by the buyer"),
    "INPROGRESS": ("02306", "Customer has to fill his payment data"),
    "ONHOLD_PARTNER": ("02000", "Transaction in progress, awaiting the partner"),
    "PENDING_RISK": ("02533", "Transaction pending risk analysis"),
}


def result(title: str, code: str | None = None, detail: str | None = None) -> dict:
    known = RESULTS.get(title, ("02101", title))
    return {"title": title, "code": code or known[0], "detail": detail or known[1]}


def now(days: int = 0) -> str:
    """The current time (or ``days`` later), as Monext writes dates."""
    moment = datetime.now(timezone.utc) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The session's result title for a sandbox payment in each state.
TITLE_FOR = {"approved": "ACCEPTED", "declined": "REFUSED", "pending": "ONHOLD_PARTNER"}
# The session's result title for each button of the payment page.
TITLE_FOR_ACTION = {"pay": "ACCEPTED", "decline": "REFUSED", "cancel": "CANCELLED"}
PAY_PAGE = "/checkout/pay/"
# A payout's result: in the creating answer, then in GET /v1/payout/transactions/{id}, per outcome.
PAYOUT_TITLES = {"succeed": ("INPROGRESS", "ACCEPTED"), "fail": ("REFUSED", "REFUSED"),
                 "error_after_success": ("ERROR", "ACCEPTED"), "pending": ("INPROGRESS", "INPROGRESS")}
# TransactionType values an operation on a transaction may have (AssociatedTransaction.type).
OPERATION_TYPES = ("CAPTURE", "REFUND", "CREDIT", "CANCEL")
OPERATION_OF_ROUTE = {"captures": "CAPTURE", "refunds": "REFUND", "cancels": "CANCEL"}
INSTALLMENT_DAYS = 30  # the sandbox's plans are MONTHLY
PAYOUT_RESULTS = {"ACCEPTED": ("00000", "Transfer done"), "INPROGRESS": ("02500", "Transfer in progress"),
                  "REFUSED": ("01100", "Transfer refused")}


class MonextSandbox(Sandbox):
    name = "monext"
    merchant_id = "1234567890123"
    access_key = "sandbox-monext-access-key-9876543210"

    def settings(self) -> dict[str, str]:
        return {"HOOKHUB_MONEXT_MERCHANT_ID": self.merchant_id, "HOOKHUB_MONEXT_ACCESS_KEY": self.access_key,
                "HOOKHUB_MONEXT_BASE_URL": self.base_url}

    def reset(self) -> None:
        with self.lock:
            self.sessions: dict[str, dict] = {}
            self.transactions: dict[str, dict] = {}
            self.wallets: dict[str, dict] = {}
            self.wallet_sessions: dict[str, dict] = {}
            self.payouts: dict[str, dict] = {}  # transaction id -> transaction
            self.payout_results: dict[str, str] = {}  # transaction id -> its result title
            self.payout_outcomes: dict[str, str] = {}  # payee IBAN or holderName -> one of PAYOUT_OUTCOMES
            self.requests: list[tuple[str, str]] = []
            self.bodies: list[dict] = []
            self.refused_auth = 0
            self.max_page_size = 100  # Monext may serve fewer items per page than asked for
            self.broken_paging = False  # a server that ignores page and gives no totals
            self.unauthorized_as_200 = False
            self.outage = False
            self.outage_paths: set[str] = set()  # API paths answering 503 while the rest works
            self.delay = 0.0

    def session_fetches(self, session_id: str) -> int:
        return self.requests.count(("GET", f"/v1/checkout/payments/sessions/{session_id}"))

    def transaction_fetches(self) -> list[str]:
        """The ids of the transactions ``GET /v1/checkout/transactions/{id}`` was asked for, in order."""
        prefix = "/v1/checkout/transactions/"
        return [path.removeprefix(prefix) for method, path in self.requests
                if method == "GET" and path.startswith(prefix)]

    # -- playing the buyer and Monext --------------------------------------------------------------

    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        """A payment for ``order_id``; when a session for it is in progress (the shop created it and
        nobody has paid), that one is paid, for its order's amount and currency."""
        with self.lock:
            session_id = next((i for i, s in reversed(self.sessions.items())
                               if s["order"]["reference"] == order_id and s["result"]["title"] == "INPROGRESS"), None)
            from_checkout = session_id is not None
            if session_id is None:
                session_id = self.open_session(order_id, amount, currency)
            transaction_id = self.settle(session_id, TITLE_FOR[status], **self.capture_of(session_id))
            order = self.sessions[session_id]["order"]
        assert transaction_id is not None
        return SimulatedPayment(self.name, order_id, order["amount"], order["currency"], status, transaction_id,
                                {"session_id": session_id}, from_checkout=from_checkout)

    def capture_of(self, session_id: str) -> dict:
        """The transaction type and capture mode the session's ``payment.capture`` asks for."""
        with self.lock:
            payment = self.sessions[session_id].get("request", {}).get("payment")
        capture = payment.get("capture") if isinstance(payment, dict) else None
        if capture in ("MANUAL", "DEFERRED"):
            return {"transaction_type": "AUTHORIZATION", "capture": capture}
        return {}

    def settle_payout(self, transaction_id: str, title: str) -> None:
        """A pending payout ends: ``title`` is ``ACCEPTED`` or ``REFUSED``."""
        if title not in ("ACCEPTED", "REFUSED"):
            raise ValueError('title must be "ACCEPTED" or "REFUSED"')
        with self.lock:
            now_title = self.payout_results[transaction_id]
            if now_title != "INPROGRESS":
                raise ValueError(f"payout {transaction_id} is not in progress but {now_title}")
            self.payout_results[transaction_id] = title

    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        query = urlencode({"token": payment.details["session_id"], "notificationType": "WEBTRS"})
        return SimulatedRequest("GET", "/hooks/monext", query)

    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        return SimulatedRequest("GET", "/return/monext", urlencode({"paylinetoken": payment.details["session_id"]}))

    # -- what happens on Monext's side -------------------------------------------------------------

    def open_session(self, reference: str, amount: int, currency: str = "EUR", session_id: str | None = None) -> str:
        """A payment session as ``POST /v1/checkout/payments/sessions`` makes it: in progress."""
        session_id = session_id or secrets.token_hex(16)
        with self.lock:
            self.sessions[session_id] = {
                "result": result("INPROGRESS"), "transactions": [],
                "order": {"reference": reference, "amount": amount, "currency": currency, "date": now()},
            }
        return session_id

    def settle(self, session_id: str, title: str, *, transaction_type: str = "AUTHORIZATION_AND_CAPTURE",
               amount: int | None = None, with_transaction: bool = True, **extra) -> str | None:
        """The buyer paid, was refused, gave up...: the session gets ``title`` and maybe a transaction."""
        with self.lock:
            session = self.sessions[session_id]
            session["result"] = result(title)
            if not with_transaction:
                return None
            transaction = self._payment_transaction(session_id, session["result"], transaction_type, amount, **extra)
            session["transactions"].append(transaction)
            return transaction["id"]

    def _payment_transaction(self, session_id: str, outcome: dict, transaction_type: str, amount: int | None,
                             **extra) -> dict:
        """A payment transaction of the session's order, known to ``GET /v1/checkout/transactions/{id}``."""
        with self.lock:
            order = self.sessions[session_id]["order"]
            transaction = {
                "id": str(10**13 + len(self.transactions) + secrets.randbelow(10**9)), "date": now(),
                "type": transaction_type, "currency": order["currency"], "paymentType": "ONE_OFF",
                "capture": "AUTOMATIC", "requestedAmount": order["amount"] if amount is None else amount,
                "paymentMethodId": "CB01",
                "paymentInstrumentData": {"usedPaymentInstrument": "UsedCard",
                                          "paymentInstrumentType": {"code": "CB", "name": "CB"},
                                          "maskedNumber": "497010XXXXXX0055", "expirationDate": "1230"},
                **extra,
            }
            self.transactions[transaction["id"]] = {"transaction": transaction, "session": session_id,
                                                    "result": outcome, "associated": []}
            return transaction

    def add_operation(self, transaction_id: str, type: str, amount: int, status: str = "OK") -> str:
        """A capture, refund, credit or cancel (``type``) of ``amount`` on the transaction, as Monext
        records it whoever made it: listed in its ``associatedTransactions`` with ``status`` OK or KO
        (refused), and in the session's transactions. No limit is checked. Returns the operation's id."""
        if type not in OPERATION_TYPES:
            raise ValueError(f"type must be one of {OPERATION_TYPES}, not {type!r}")
        if status not in ("OK", "KO"):
            raise ValueError('status must be "OK" or "KO"')
        outcome = result("ACCEPTED") if status == "OK" else result("REFUSED")
        return self._operation(transaction_id, type, amount, outcome)

    def _operation(self, transaction_id: str, type: str, amount: int, outcome: dict) -> str:
        with self.lock:
            found = self.transactions[transaction_id]
            new = {"id": str(2 * 10**13 + len(self.transactions)), "date": now(), "type": type,
                   "currency": found["transaction"]["currency"], "requestedAmount": amount}
            self.sessions[found["session"]]["transactions"].append(new)
            self.transactions[new["id"]] = {"transaction": new, "session": found["session"], "result": outcome,
                                            "associated": []}
            found["associated"].append({"id": new["id"], "type": type, "date": new["date"], "amount": amount,
                                        "status": "OK" if outcome["title"] == "ACCEPTED" else "KO",
                                        "originTransactionId": transaction_id})
            return new["id"]

    def pay_in_installments(self, session_id: str, amounts: list[int], paid: int = 1) -> list[str]:
        """The buyer pays the session's order in ``len(amounts)`` parts (payment type MX_INSTALLMENT):
        the first on the payment page, then Monext takes the next ``paid - 1`` on schedule.

        The session becomes ACCEPTED with the first part's transaction (AUTHORIZATION_AND_CAPTURE of
        ``amounts[0]``) and gets a ``paymentPlan`` listing every part; the parts must add up to the
        order's amount. Returns the transaction ids of the parts paid, in order.
        """
        with self.lock:
            order = self.sessions[session_id]["order"]
            if not amounts or any(not isinstance(a, int) or a <= 0 for a in amounts) or sum(amounts) != order["amount"]:
                raise ValueError(f"amounts must be positive ints adding up to the order's {order['amount']}")
            if not 1 <= paid <= len(amounts):
                raise ValueError(f"paid must be from 1 to {len(amounts)}")
            plan_id = str(5 * 10**13 + len(self.sessions) + secrets.randbelow(10**9))
            self.sessions[session_id]["paymentPlan"] = {
                "id": plan_id, "firstInstallmentAmount": amounts[0], "installmentAmount": amounts[-1],
                "totalInstallments": len(amounts), "frequency": "MONTHLY",
                "installmentDate": datetime.now(timezone.utc).day, "startDate": now(), "status": "ACTIVE",
                "installments": [
                    {"paymentPlanId": plan_id, "number": number, "amount": amount,
                     "dueDate": now(INSTALLMENT_DAYS * (number - 1)), "attempts": 0, "status": "UPCOMING",
                     "active": True}
                    for number, amount in enumerate(amounts, start=1)],
            }
            first = self.settle(session_id, "ACCEPTED", amount=amounts[0], paymentType="MX_INSTALLMENT")
            assert first is not None
            self._installment_done(session_id, first, "ACCEPTED")
            return [first] + [self.pay_next_installment(session_id) for _ in range(paid - 1)]

    def pay_next_installment(self, session_id: str, status: str = "ACCEPTED") -> str:
        """Monext takes the session's next UPCOMING installment: it becomes ``status`` (ACCEPTED, or
        REFUSED), with a transaction of its own. Returns that transaction's id."""
        if status not in ("ACCEPTED", "REFUSED"):
            raise ValueError('status must be "ACCEPTED" or "REFUSED"')
        with self.lock:
            plan = self.sessions[session_id].get("paymentPlan")
            upcoming = [i for i in (plan or {}).get("installments", []) if i["status"] == "UPCOMING"]
            if not upcoming:
                raise ValueError(f"session {session_id} has no installment to pay")
            transaction = self._payment_transaction(session_id, result(status), "AUTHORIZATION_AND_CAPTURE",
                                                    upcoming[0]["amount"], paymentType="MX_INSTALLMENT")
            self._installment_done(session_id, transaction["id"], status)
            return transaction["id"]

    def _installment_done(self, session_id: str, transaction_id: str, status: str) -> None:
        """The plan's next UPCOMING installment was executed by ``transaction_id``."""
        with self.lock:
            installment = next(i for i in self.sessions[session_id]["paymentPlan"]["installments"]
                               if i["status"] == "UPCOMING")
            date = self.transactions[transaction_id]["transaction"]["date"]
            installment.update({"status": status, "attempts": installment["attempts"] + 1, "dueDate": date,
                                "lastUpdate": date, "transaction": {"id": transaction_id, "date": date}})

    # -- the API -----------------------------------------------------------------------------------

    def api_app(self) -> Flask:  # noqa: C901 - one route table, read top to bottom
        app = Flask("monext_sandbox")
        fake = self

        def answer(code: int, body: dict) -> Response:
            return Response(json.dumps(body), code, content_type="application/json")

        def error(code: int, title: str, result_code: str, detail: str, invalid: list | None = None) -> Response:
            body: dict = {"result": result(title, result_code, detail)}
            if invalid:
                body["invalidParams"] = [{"name": n, "reason": r} for n, r in invalid]
            return answer(code, body)

        def bad_request(*invalid: tuple[str, str]) -> Response:
            return error(400, "ERROR", "02305", "Invalid field format, please refer to the user guide", list(invalid))

        def not_found(what: str) -> Response:
            return error(404, "ERROR", "02304", f"No {what} found for this identifier")

        def body_json() -> dict:
            try:
                data = json.loads(request.get_data() or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        def amount_ok(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**18

        @app.before_request
        def _authenticate():
            with fake.lock:
                # The request target as sent, percent-encoding untouched, below where the sandbox is mounted.
                target = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
                fake.requests.append((request.method, target.removeprefix(request.script_root)))
                if request.method in ("POST", "PUT") and request.get_data():
                    fake.bodies.append(body_json())
            if fake.delay:
                time.sleep(fake.delay)
            if request.path.startswith(PAY_PAGE):  # the buyer's browser: no API credentials, Monext's page
                return fake.page(503, "Unavailable", "Monext is down.") if fake.outage else None
            expected = "Basic " + base64.b64encode(f"{fake.merchant_id}:{fake.access_key}".encode()).decode()
            if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
                with fake.lock:
                    fake.refused_auth += 1
                return error(200 if fake.unauthorized_as_200 else 401, "Unauthorized", "04001",
                             "Authentication failed: wrong merchant id or access key")
            if fake.outage or request.path in fake.outage_paths:
                return error(503, "ERROR", "02101", "Internal Error")
            if request.method in ("POST", "PUT") and request.get_data() and \
                    request.headers.get("Content-Type") != "application/json":
                return bad_request(("Content-Type", "must be application/json"))
            return None

        @app.get("/v1/checkout/alive")
        def alive():
            return answer(200, {"result": result("ACCEPTED", "00000", "Alive")})

        # -- sessions and transactions ---------------------------------------------------------------

        @app.post("/v1/checkout/payments/sessions")
        def session_create():
            data = body_json()
            order = data.get("order") if isinstance(data.get("order"), dict) else {}
            missing = [(name, "must not be null") for name in ("pointOfSaleReference", "returnURL") if not data.get(name)]
            if not order.get("reference"):
                missing.append(("order.reference", "must not be null"))
            if not amount_ok(order.get("amount")):
                missing.append(("order.amount", "must be an integer in the smallest currency unit"))
            if missing:
                return bad_request(*missing)
            session_id = fake.open_session(order["reference"], order["amount"], order.get("currency", "EUR"))
            with fake.lock:
                fake.sessions[session_id]["request"] = data
            # The payment page is the sandbox's own, at the address this call came to.
            return answer(201, {"result": result("ACCEPTED", "00000", "Successful"), "sessionId": session_id,
                                "redirectURL": f"{request.url_root.rstrip('/')}{PAY_PAGE}{session_id}"})

        @app.route(PAY_PAGE + "<session_id>", methods=["GET", "POST"])
        def payment_page(session_id):
            with fake.lock:
                session = fake.sessions.get(session_id)
                if session is None or session["result"]["title"] != "INPROGRESS":
                    return fake.page(404, "Payment not found", "No payment is in progress for this session.")
                order, asked = dict(session["order"]), dict(session.get("request", {}))
            if request.method == "GET":
                amount = f"{to_major_units(order['amount'], order['currency'])} {order['currency']}"
                return fake.pay_page("Pay with Monext", [("Order", str(order["reference"])), ("Amount", amount)])
            action = fake.page_action(request.form)
            if action is None:
                return fake.page(400, "Unknown action", "Press Pay, Decline or Cancel.")
            title = TITLE_FOR_ACTION[action]
            with fake.lock:
                if session["result"]["title"] != "INPROGRESS":  # paid from another tab meanwhile
                    return fake.page(404, "Payment not found", "This payment is done already.")
                fake.settle(session_id, title, with_transaction=title != "CANCELLED", **fake.capture_of(session_id))
            hookhub = fake.hookhub_url
            notification = asked.get("notificationURL") or (hookhub and f"{hookhub}/hooks/monext")
            if notification:
                fake.send_later("GET", fake.with_query(notification, token=session_id, notificationType="WEBTRS"))
            back = asked.get("returnURL") or (hookhub and f"{hookhub}/return/monext")
            return fake.send_buyer(back and fake.with_query(back, paylinetoken=session_id),
                                   f"Payment {title.lower()}.")

        @app.get("/v1/checkout/payments/sessions/<session_id>")
        def session_get(session_id):
            with fake.lock:
                session = fake.sessions.get(session_id)
                if session is None:
                    return not_found("session")
                body = {"result": session["result"], "order": session["order"],
                        "transactions": list(session["transactions"])}
                if "paymentPlan" in session:
                    body["paymentPlan"] = copy.deepcopy(session["paymentPlan"])
            return answer(200, body)

        @app.get("/v1/checkout/transactions/<transaction_id>")
        def transaction_get(transaction_id):
            with fake.lock:
                found = fake.transactions.get(transaction_id)
                if found is None:
                    return not_found("transaction")
                order = fake.sessions[found["session"]]["order"]
                body = {"result": found["result"], "transaction": found["transaction"], "order": order,
                        "associatedTransactions": list(found["associated"])}
            return answer(200, body)

        @app.post("/v1/checkout/transactions/<transaction_id>/<action>")
        def transaction_action(transaction_id, action):
            if action not in OPERATION_OF_ROUTE:
                return not_found("operation")
            kind = OPERATION_OF_ROUTE[action]
            data = body_json()
            if not amount_ok(data.get("amount")):
                return bad_request(("amount", "must be an integer in the smallest currency unit"))
            with fake.lock:
                found = fake.transactions.get(transaction_id)
                if found is None:
                    return not_found("transaction")
                original = found["transaction"]
                done = sum(a["amount"] for a in found["associated"] if a["type"] == kind and a["status"] == "OK")
                refused = found["result"]["title"] != "ACCEPTED" or done + data["amount"] > original["requestedAmount"]
                # A refused operation is a transaction too: it shows in the session, with its own result.
                outcome = result("REFUSED", "01913", "The amount exceeds what the transaction allows") if refused \
                    else result("ACCEPTED")
                new = fake.transactions[fake._operation(transaction_id, kind, data["amount"], outcome)]["transaction"]
            if refused:
                return answer(422, {"result": outcome})
            return answer(201, {"result": outcome, "transaction": {"id": new["id"], "date": new["date"],
                                                                  "type": new["type"]}})

        # -- MX wallets -----------------------------------------------------------------------------

        wallets = "/v1/checkout/merchants/<merchant_id>/mxwallets"

        def wallet_or_error(merchant_id, wallet_id):
            if merchant_id != fake.merchant_id:
                return None, error(403, "ERROR", "02303", "This merchant is not yours")
            wallet = fake.wallets.get(wallet_id)
            return wallet, (None if wallet else not_found("wallet"))

        def instrument_from(origin, rank: int) -> tuple[dict | None, Response | None]:
            if not isinstance(origin, dict) or origin.get("origin") != "ExistingTransaction":
                return None, bad_request(("paymentInstrumentOrigin.origin", "must be ExistingTransaction"))
            found = fake.transactions.get(origin.get("transactionId"))
            if found is None or found["result"]["title"] != "ACCEPTED":
                return None, error(422, "ERROR", "02624", "The transaction cannot give a payment instrument")
            card = found["transaction"]["paymentInstrumentData"]
            return {"rank": rank, "category": "CardInstrument", "status": "ACTIVE", "state": "STORED",
                    "isDefault": rank == 1, "paymentInstrumentType": card["paymentInstrumentType"],
                    "maskedNumber": card["maskedNumber"], "expirationDate": card["expirationDate"]}, None

        def wallet_body(wallet):
            return {"result": result("ACCEPTED"), "mxWallet": wallet}

        @app.post(wallets)
        def wallet_create(merchant_id):
            data = body_json()
            if merchant_id != fake.merchant_id:
                return error(403, "ERROR", "02303", "This merchant is not yours")
            if not isinstance(data.get("mxWalletId"), str):
                return bad_request(("mxWalletId", "must not be null"))
            with fake.lock:
                if data["mxWalletId"] in fake.wallets:
                    return error(409, "ERROR", "02502", "A wallet with this identifier already exists")
                instrument, problem = instrument_from(data.get("paymentInstrumentOrigin"), 1)
                if problem:
                    return problem
                wallet = {"id": data["mxWalletId"], "paymentInstruments": [instrument]}
                for field in ("holder", "comment"):
                    if field in data:
                        wallet[field] = data[field]
                fake.wallets[wallet["id"]] = wallet
            return answer(201, wallet_body(wallet))

        @app.route(wallets + "/<wallet_id>", methods=["GET", "PUT"])
        def wallet(merchant_id, wallet_id):
            with fake.lock:
                found, problem = wallet_or_error(merchant_id, wallet_id)
                if problem:
                    return problem
                if request.method == "PUT":
                    found.update({k: v for k, v in body_json().items() if k in ("holder", "comment")})
                return answer(200, wallet_body(found))

        @app.put(wallets + "/<wallet_id>/status")
        def wallet_status(merchant_id, wallet_id):
            status = body_json().get("status")
            if status not in ("ACTIVE", "INACTIVE"):
                return bad_request(("status", "must be ACTIVE or INACTIVE"))
            with fake.lock:
                found, problem = wallet_or_error(merchant_id, wallet_id)
                if problem:
                    return problem
                found["status"] = status
            return answer(200, {"result": result("ACCEPTED"), "status": status})

        @app.route(wallets + "/<wallet_id>/paymentinstruments", methods=["GET", "POST"])
        def instruments(merchant_id, wallet_id):
            with fake.lock:
                found, problem = wallet_or_error(merchant_id, wallet_id)
                if problem:
                    return problem
                listed = found["paymentInstruments"]
                if request.method == "POST":
                    instrument, problem = instrument_from(body_json().get("paymentInstrumentOrigin"),
                                                          max(i["rank"] for i in listed) + 1)
                    if problem:
                        return problem
                    listed.append(instrument)
                    return answer(201, {"result": result("ACCEPTED"), "paymentInstrument": instrument})
                listed = list(listed)
            return paginated(listed, "paymentInstruments")

        def paginated(items: list[dict], name: str) -> Response:
            try:
                size = int(request.args.get("size", 10))
                page = int(request.args.get("page", 0))
            except ValueError:
                return bad_request(("size", "must be a number"))
            if size < 1 or page < 0:
                return bad_request(("size", "must be positive"))
            size = min(size, fake.max_page_size)
            field, _, direction = request.args.get("sort", "rank,asc").partition(",")
            items = sorted(items, key=lambda i: i.get(field, 0), reverse=direction.lower() == "desc")
            if fake.broken_paging:
                return answer(200, {"result": result("ACCEPTED"), name: items[:size]})
            chunk = items[page * size:(page + 1) * size]
            start = page * size
            return answer(200, {"result": result("ACCEPTED"), name: chunk, "count": len(chunk), "startIndex": start,
                                "endIndex": start + len(chunk) - 1, "recordTotal": len(items)})

        @app.route(wallets + "/<wallet_id>/paymentinstruments/<int:rank>", methods=["GET", "PUT"])
        def instrument(merchant_id, wallet_id, rank):
            with fake.lock:
                found, problem = wallet_or_error(merchant_id, wallet_id)
                if problem:
                    return problem
                listed = found["paymentInstruments"]
                index = next((n for n, i in enumerate(listed) if i["rank"] == rank), None)
                if index is None:
                    return not_found("payment instrument")
                if request.method == "PUT":
                    replacement, problem = instrument_from(body_json().get("paymentInstrumentOrigin"), rank)
                    if problem:
                        return problem
                    replacement["isDefault"] = listed[index]["isDefault"]
                    listed[index] = replacement
                return answer(200, {"result": result("ACCEPTED"), "paymentInstrument": listed[index]})

        @app.put(wallets + "/<wallet_id>/paymentinstruments/<int:rank>/<what>")
        def instrument_change(merchant_id, wallet_id, rank, what):
            status = body_json().get("status")
            if what == "status" and status not in ("ACTIVE", "INACTIVE"):
                return bad_request(("status", "must be ACTIVE or INACTIVE"))
            with fake.lock:
                found, problem = wallet_or_error(merchant_id, wallet_id)
                if problem:
                    return problem
                target = next((i for i in found["paymentInstruments"] if i["rank"] == rank), None)
                if target is None or what not in ("status", "default"):
                    return not_found("payment instrument")
                if what == "status":
                    target["status"] = status
                    return answer(200, {"result": result("ACCEPTED"), "status": status})
                for other in found["paymentInstruments"]:
                    other["isDefault"] = other is target
                return answer(200, {"result": result("ACCEPTED"), "paymentInstrument": target})

        @app.post("/v1/checkout/mxwallets/sessions")
        def wallet_session_create():
            data = body_json()
            missing = [(n, "must not be null") for n in ("pointOfSaleReference", "paymentMethodIDs", "mxWalletId",
                                                         "returnURL") if not data.get(n)]
            if missing:
                return bad_request(*missing)
            session_id = secrets.token_hex(16)
            with fake.lock:
                fake.wallet_sessions[session_id] = data
            return answer(201, {"result": result("ACCEPTED"), "mxWalletSessionId": session_id,
                                "redirectURL": f"https://homologation-webpayment.payline.com/v2/?token={session_id}"})

        @app.get("/v1/checkout/mxwallets/sessions/<session_id>")
        def wallet_session_get(session_id):
            with fake.lock:
                data = fake.wallet_sessions.get(session_id)
                if data is None:
                    return not_found("session")
                wallet = fake.wallets.get(data["mxWalletId"], {"id": data["mxWalletId"], "paymentInstruments": []})
            return answer(200, {"result": result("ACCEPTED"), "mxWallet": wallet})

        # -- payouts --------------------------------------------------------------------------------

        @app.post("/v1/payout/sepatransfers")
        def sepa_transfer():
            data = body_json()
            payee = data.get("payeeBankAccount") if isinstance(data.get("payeeBankAccount"), dict) else {}
            payer = data.get("payerBankAccount") if isinstance(data.get("payerBankAccount"), dict) else {}
            missing = [(f"payeeBankAccount.{n}", "must not be null") for n in ("bic", "holderName", "iban")
                       if not payee.get(n)]
            if not payer.get("paymentMethodId"):
                missing.append(("payerBankAccount.paymentMethodId", "must not be null"))
            if not amount_ok(data.get("amount")) or data.get("amount") == 0:
                missing.append(("amount", "must be a positive integer in the smallest currency unit"))
            if missing:
                return bad_request(*missing)
            with fake.lock:
                outcomes = fake.payout_outcomes
                outcome = outcomes.get(payee["iban"]) or outcomes.get(payee["holderName"]) or "succeed"
            if outcome not in PAYOUT_OUTCOMES:
                return error(500, "ERROR", "02101", f"sandbox: payout_outcomes must give one of "
                                                    f"{', '.join(PAYOUT_OUTCOMES)}, not {outcome!r}")
            answered, kept = PAYOUT_TITLES[outcome]
            transaction = {
                "id": str(3 * 10**13 + len(fake.payouts)), "date": now(), "type": "TRANSFER",
                "amount": data["amount"], "currency": data.get("currency"), "comment": data.get("comment", ""),
                "usedBankAccounts": {
                    "payerBankAccount": {"bic": "MONEXTFR", "maskedIban": "FR76XXXXXXXXXXXXXXXXXXXXX01"},
                    "payeeBankAccount": {"bic": payee["bic"], "holderName": payee["holderName"],
                                         "maskedIban": payee["iban"][:4] + "X" * (len(payee["iban"]) - 6) +
                                         payee["iban"][-2:]},
                },
            }
            with fake.lock:
                fake.payouts[transaction["id"]] = transaction
                fake.payout_results[transaction["id"]] = kept
            if answered == "ERROR":  # done, but the merchant cannot know: a 5xx says nothing of the transfer
                return error(500, "ERROR", "02101", "Internal Error")
            return answer(201, {"result": result(answered, *PAYOUT_RESULTS[answered]), "transaction": transaction})

        @app.get("/v1/payout/transactions/<transaction_id>")
        def payout_get(transaction_id):
            with fake.lock:
                transaction = fake.payouts.get(transaction_id)
                title = fake.payout_results.get(transaction_id, "ACCEPTED")
            if transaction is None:
                return not_found("transaction")
            return answer(200, {"result": result(title, *PAYOUT_RESULTS[title]), "transaction": transaction})

        return app
