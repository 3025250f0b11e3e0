"""The sandboxes' payment pages and payout controls, through real HTTP and the plugins' own clients.

A shop creates a payment with the provider's client, its buyer presses Pay, Decline or Cancel on
the sandbox's page, and the sandbox notifies hookhub and sends the browser back as the provider
would. hookhub is played here by a small recording server on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from hookhub import ProviderAPIError, ProviderNotFound, ProviderUnavailable
from hookhub.cli import cli
from hookhub_moncash import MonCashClient
from hookhub_moncash.sandbox import MonCashSandbox
from hookhub_monext import MonextClient
from hookhub_monri import MonriClient
from servers import free_port


class ShopHookhub:
    """Stands for the merchant's hookhub: answers 200 to everything and keeps what it was sent."""

    def __init__(self):
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        with self._lock:
            self.calls.append({"method": request.method, "path": request.path, "args": request.args.to_dict(),
                               "headers": dict(request.headers), "body": request.get_data()})
        return Response("", 200)

    def to(self, path: str) -> list[dict]:
        with self._lock:
            return [call for call in self.calls if call["path"] == path]

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()


@pytest.fixture
def shop():
    """The recording hookhub, where every sandbox notifies and sends buyers."""
    server = ShopHookhub()
    yield server
    server.close()


@pytest.fixture
def sandboxes(hookhub_sandbox, shop):
    for sandbox in hookhub_sandbox.sandboxes.values():
        sandbox.hookhub_url = shop.url
    return hookhub_sandbox


def press(page_url: str, action: str) -> requests.Response:
    """The buyer presses a button of the payment page (a POST of its form), redirects not followed."""
    return requests.post(page_url, data={"action": action}, allow_redirects=False, timeout=5)


def settled(sandbox, shop: ShopHookhub, path: str) -> list[dict]:
    """What ``path`` of the recording hookhub got, once the sandbox's notifications are all sent."""
    sandbox.wait_sent()
    return shop.to(path)


# -- MonCash -------------------------------------------------------------------------------------


@pytest.fixture
def moncash_api(sandboxes):
    s = sandboxes["moncash"].settings()
    return MonCashClient(s["HOOKHUB_MONCASH_CLIENT_ID"], s["HOOKHUB_MONCASH_CLIENT_SECRET"],
                         s["HOOKHUB_MONCASH_BASE_URL"], s["HOOKHUB_MONCASH_GATEWAY_URL"], timeout=5)


def test_moncash_gateway_page_shows_the_created_order_escaped(sandboxes, moncash_api):
    created = moncash_api.create_payment(amount=125050, order_id="<b>o&1</b>")
    assert created["redirect_url"].startswith(f"{sandboxes['moncash'].url}/Moncash-middleware/Payment/Redirect?token=")

    page = requests.get(created["redirect_url"], timeout=5)

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "&lt;b&gt;o&amp;1&lt;/b&gt;" in page.text and "<b>o" not in page.text
    assert "1250.50 HTG" in page.text
    assert all(f'value="{action}"' in page.text for action in ("pay", "decline", "cancel"))


@pytest.mark.parametrize("action,message", [("pay", "successful"), ("decline", "failed")])
def test_moncash_pay_or_decline_records_alerts_and_returns(sandboxes, shop, moncash_api, action, message):
    moncash = sandboxes["moncash"]
    created = moncash_api.create_payment(amount=125050, order_id="order-mc-1")
    with pytest.raises(ProviderNotFound, match="Can't find this transaction"):
        moncash_api.retrieve_order("order-mc-1")

    answer = press(created["redirect_url"], action)

    assert answer.status_code == 303
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{shop.url}/return/moncash"
    [transaction_id] = parse_qs(location.query)["transactionId"]
    assert transaction_id.isdigit()
    payment = moncash_api.retrieve_order("order-mc-1")["payment"]
    assert (payment["reference"], payment["transaction_id"], payment["message"]) == \
        ("order-mc-1", transaction_id, message)
    assert payment["cost"] == Decimal("1250.50")
    assert moncash_api.retrieve_transaction(transaction_id)["payment"] == payment
    [alert] = settled(moncash, shop, "/hooks/moncash")
    assert alert["method"] == "POST" and json.loads(alert["body"]) == {"transactionId": transaction_id}
    assert moncash.sent == [("POST", f"{shop.url}/hooks/moncash", 200)]
    # The token is spent: its page is gone.
    assert requests.get(created["redirect_url"], timeout=5).status_code == 404


def test_moncash_cancel_records_nothing_and_sends_the_buyer_to_the_failure_page(sandboxes, shop, moncash_api):
    created = moncash_api.create_payment(amount=5000, order_id="order-mc-2")

    answer = press(created["redirect_url"], "cancel")

    assert (answer.status_code, answer.headers["Location"]) == (303, f"{shop.url}/result/failure")
    with pytest.raises(ProviderNotFound):
        moncash_api.retrieve_order("order-mc-2")
    assert settled(sandboxes["moncash"], shop, "/hooks/moncash") == []
    assert requests.get(created["redirect_url"], timeout=5).status_code == 404


def test_moncash_without_notify_sends_the_buyer_back_but_no_alert(sandboxes, shop, moncash_api):
    moncash = sandboxes["moncash"]
    moncash.notify = False
    created = moncash_api.create_payment(amount=5000, order_id="order-mc-3")

    answer = press(created["redirect_url"], "pay")

    assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{shop.url}/return/moncash?")
    assert moncash_api.retrieve_order("order-mc-3")["payment"]["message"] == "successful"
    assert moncash.wait_sent() == [] and shop.calls == []
    moncash.reset()
    assert moncash.notify is True


def test_moncash_unknown_token_is_a_404_page(sandboxes):
    answer = requests.get(f"{sandboxes['moncash'].gateway_url}/Payment/Redirect?token=%3Cnope%3E", timeout=5)
    assert answer.status_code == 404 and answer.headers["Content-Type"].startswith("text/html")
    assert "<nope>" not in answer.text


def test_moncash_page_answers_even_when_hookhub_is_down(sandboxes, moncash_api):
    moncash = sandboxes["moncash"]
    moncash.hookhub_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    created = moncash_api.create_payment(amount=5000, order_id="order-mc-4")

    answer = press(created["redirect_url"], "pay")

    assert answer.status_code == 303
    [(method, url, outcome)] = moncash.wait_sent()
    assert (method, url, outcome) == ("POST", f"{moncash.hookhub_url}/hooks/moncash", "ConnectionError")


def test_moncash_make_payment_pays_the_created_order_without_a_page(sandboxes, shop, moncash_api):
    moncash = sandboxes["moncash"]
    created = moncash_api.create_payment(amount=5000, order_id="order-mc-5")

    payment = moncash.pay(order_id="order-mc-5", amount=99, currency="HTG", status="declined")

    assert (payment.from_checkout, payment.amount, payment.status) == (True, 5000, "declined")
    found = moncash_api.retrieve_order("order-mc-5")["payment"]
    assert (found["transaction_id"], found["message"], found["cost"]) == (payment.transaction_id, "failed", 50)
    assert requests.get(created["redirect_url"], timeout=5).status_code == 404
    assert moncash.wait_sent() == [] and shop.calls == []
    # An order nobody created is made up, as before.
    other = moncash.pay(order_id="order-mc-6", amount=700, currency="HTG")
    assert (other.from_checkout, other.amount) == (False, 700)


# MonCash payouts: what Transfert answers, then what PrefundedTransactionStatus says.
@pytest.mark.parametrize("outcome,answered,status", [
    ("succeed", "successful", "successful"),
    ("fail", "failed", "failed"),
    ("pending", "pending", "pending"),
    ("error_after_success", None, "successful"),
])
def test_moncash_payout_outcomes(sandboxes, moncash_api, outcome, answered, status):
    moncash = sandboxes["moncash"]
    if outcome != "succeed":  # succeed is what an unnamed receiver gets
        moncash.payout_outcomes["50937000001"] = outcome
    before = moncash_api.prefunded_balance()

    if answered is None:
        with pytest.raises(ProviderUnavailable):
            moncash_api.transfer(amount=10000, receiver="50937000001", desc="commission", reference="po-1")
    else:
        transfer = moncash_api.transfer(amount=10000, receiver="50937000001", desc="commission", reference="po-1")
        assert transfer["transfer"]["message"] == answered and transfer["transfer"]["amount"] == 100

    assert moncash_api.prefunded_transaction_status("po-1")["transStatus"] == status
    assert before - moncash_api.prefunded_balance() == (0 if outcome == "fail" else 100)


@pytest.mark.parametrize("ending,returned", [("successful", 0), ("failed", 100)])
def test_moncash_pending_payout_settles(sandboxes, moncash_api, ending, returned):
    moncash = sandboxes["moncash"]
    moncash.payout_outcomes["50937000002"] = "pending"
    before = moncash_api.prefunded_balance()
    moncash_api.transfer(amount=10000, receiver="50937000002", desc="commission", reference="po-2")
    assert moncash_api.prefunded_transaction_status("po-2")["transStatus"] == "pending"

    moncash.settle_payout("po-2", ending)

    assert moncash_api.prefunded_transaction_status("po-2")["transStatus"] == ending
    assert before - moncash_api.prefunded_balance() == 100 - returned
    with pytest.raises(ValueError):
        moncash.settle_payout("po-2", "successful")  # only a pending payout settles


def test_moncash_full_account_is_refused(sandboxes, moncash_api):
    sandboxes["moncash"].full_accounts.add("50937000003")
    with pytest.raises(ProviderAPIError, match="Maximum Account Balance") as refused:
        moncash_api.transfer(amount=100, receiver="50937000003", desc="d", reference="po-3")
    assert refused.value.status == 403
    with pytest.raises(ProviderNotFound):
        moncash_api.prefunded_transaction_status("po-3")


# -- Monext ------------------------------------------------------------------------------------


@pytest.fixture
def monext_api(sandboxes):
    s = sandboxes["monext"].settings()
    return MonextClient(s["HOOKHUB_MONEXT_MERCHANT_ID"], s["HOOKHUB_MONEXT_ACCESS_KEY"],
                        s["HOOKHUB_MONEXT_BASE_URL"], timeout=5)


def monext_session(api, shop, reference="order-mx-1", *, capture="AUTOMATIC", notification=True):
    fields = {"point_of_sale_reference": "POS_WEB-1",
              "order": {"reference": reference, "amount": 1999, "currency": "EUR"},
              "payment": {"payment_type": "ONE_OFF", "capture": capture},
              "return_url": f"{shop.url}/return/monext?shop=1"}
    if notification:
        fields["notification_url"] = f"{shop.url}/hooks/monext?pos=web"
    return api.create_session(**fields)


def test_monext_session_page_is_on_the_sandbox_and_shows_the_order_escaped(sandboxes, shop, monext_api):
    created = monext_session(monext_api, shop, reference="o<b>&1")
    assert created["redirectURL"] == f"{sandboxes['monext'].url}/checkout/pay/{created['sessionId']}"

    page = requests.get(created["redirectURL"], timeout=5)

    assert page.status_code == 200 and "o&lt;b&gt;&amp;1" in page.text and "o<b>" not in page.text
    assert "19.99 EUR" in page.text
    assert monext_api.get_session(created["sessionId"])["result"]["title"] == "INPROGRESS"


@pytest.mark.parametrize("action,title,transaction_types", [
    ("pay", "ACCEPTED", ["AUTHORIZATION_AND_CAPTURE"]),
    ("decline", "REFUSED", ["AUTHORIZATION_AND_CAPTURE"]),
    ("cancel", "CANCELLED", []),
])
def test_monext_page_settles_notifies_and_returns(sandboxes, shop, monext_api, action, title, transaction_types):
    created = monext_session(monext_api, shop)
    session_id = created["sessionId"]

    answer = press(created["redirectURL"], action)

    assert (answer.status_code, answer.headers["Location"]) == \
        (303, f"{shop.url}/return/monext?shop=1&paylinetoken={session_id}")
    session = monext_api.get_session(session_id)
    assert session["result"]["title"] == title
    assert [t["type"] for t in session["transactions"]] == transaction_types
    assert all(t["requestedAmount"] == 1999 for t in session["transactions"])
    [notification] = settled(sandboxes["monext"], shop, "/hooks/monext")
    assert (notification["method"], notification["args"]) == \
        ("GET", {"pos": "web", "token": session_id, "notificationType": "WEBTRS"})
    assert requests.get(created["redirectURL"], timeout=5).status_code == 404  # the session is over


def test_monext_manual_capture_is_an_authorization(sandboxes, shop, monext_api):
    created = monext_session(monext_api, shop, capture="MANUAL")
    press(created["redirectURL"], "pay")
    [transaction] = monext_api.get_session(created["sessionId"])["transactions"]
    assert (transaction["type"], transaction["capture"]) == ("AUTHORIZATION", "MANUAL")


def test_monext_without_notify_returns_but_does_not_notify(sandboxes, shop, monext_api):
    sandboxes["monext"].notify = False
    created = monext_session(monext_api, shop)

    answer = press(created["redirectURL"], "pay")

    assert answer.status_code == 303 and "paylinetoken=" in answer.headers["Location"]
    assert monext_api.get_session(created["sessionId"])["result"]["title"] == "ACCEPTED"
    assert sandboxes["monext"].wait_sent() == [] and shop.calls == []


def test_monext_session_without_notification_url_notifies_hookhub(sandboxes, shop, monext_api):
    """As a point of sale configured with hookhub's notification URL."""
    created = monext_session(monext_api, shop, notification=False)
    press(created["redirectURL"], "pay")
    [notification] = settled(sandboxes["monext"], shop, "/hooks/monext")
    assert notification["args"] == {"token": created["sessionId"], "notificationType": "WEBTRS"}


def test_monext_make_payment_pays_the_created_session(sandboxes, shop, monext_api):
    monext = sandboxes["monext"]
    created = monext_session(monext_api, shop, reference="order-mx-9")

    payment = monext.pay(order_id="order-mx-9", amount=5, currency="EUR")

    assert (payment.from_checkout, payment.details["session_id"], payment.amount) == \
        (True, created["sessionId"], 1999)
    session = monext_api.get_session(created["sessionId"])
    assert session["result"]["title"] == "ACCEPTED"
    assert [t["id"] for t in session["transactions"]] == [payment.transaction_id]
    assert monext.wait_sent() == [] and shop.calls == []


SEPA = {"payer_bank_account": {"payment_method_id": "BANK_TRANSFER_1"},
        "payee_bank_account": {"bic": "BDFEFR2L", "holder_name": "Jane Roe", "iban": "FR7630001007941234567890185"}}


@pytest.mark.parametrize("key", ["FR7630001007941234567890185", "Jane Roe"])
@pytest.mark.parametrize("outcome,answered,later", [
    ("succeed", "INPROGRESS", "ACCEPTED"),
    ("fail", "REFUSED", "REFUSED"),
    ("pending", "INPROGRESS", "INPROGRESS"),
    ("error_after_success", None, "ACCEPTED"),
])
def test_monext_payout_outcomes(sandboxes, monext_api, key, outcome, answered, later):
    monext = sandboxes["monext"]
    monext.payout_outcomes[key] = outcome

    if answered is None:
        with pytest.raises(ProviderUnavailable) as failed:
            monext_api.create_sepa_transfer(25000, "EUR", **SEPA)
        assert failed.value.status == 500
        [transaction_id] = monext.payouts  # done all the same
    else:
        created = monext_api.create_sepa_transfer(25000, "EUR", **SEPA)
        assert created["result"]["title"] == answered
        transaction_id = created["transaction"]["id"]

    fetched = monext_api.get_payout(transaction_id)
    assert fetched["result"]["title"] == later and fetched["transaction"]["amount"] == 25000


@pytest.mark.parametrize("title", ["ACCEPTED", "REFUSED"])
def test_monext_pending_payout_settles(sandboxes, monext_api, title):
    monext = sandboxes["monext"]
    monext.payout_outcomes["Jane Roe"] = "pending"
    transaction_id = monext_api.create_sepa_transfer(25000, "EUR", **SEPA)["transaction"]["id"]

    monext.settle_payout(transaction_id, title)

    assert monext_api.get_payout(transaction_id)["result"]["title"] == title
    with pytest.raises(ValueError):
        monext.settle_payout(transaction_id, "ACCEPTED")


# -- Monri -------------------------------------------------------------------------------------


@pytest.fixture
def monri_api(sandboxes):
    s = sandboxes["monri"].settings()
    return MonriClient(s["HOOKHUB_MONRI_MERCHANT_KEY"], s["HOOKHUB_MONRI_AUTHENTICITY_TOKEN"],
                       s["HOOKHUB_MONRI_BASE_URL"], timeout=5)


def monri_payment(api, order_number="order-mr-1", transaction_type="purchase"):
    return api.create_payment(amount=1999, order_number=order_number, currency="EUR",
                              transaction_type=transaction_type, order_info="sandbox test")


def test_monri_components_page_shows_the_created_order_escaped(sandboxes, monri_api):
    monri = sandboxes["monri"]
    created = monri_payment(monri_api, order_number="o<b>&1")
    url = monri.components_url(created["client_secret"])
    assert url == f"{monri.url}/components/pay?client_secret={created['client_secret']}"

    page = requests.get(url, timeout=5)

    assert page.status_code == 200 and "o&lt;b&gt;&amp;1" in page.text and "o<b>" not in page.text
    assert "19.99 EUR" in page.text
    assert requests.get(monri.components_url("nope"), timeout=5).status_code == 404


def check_signed_return(monri, location: str, public_url: str) -> dict:
    """The success URL's digest is Monri's: sha512(merchant_key + URL without ``&digest=``)."""
    unsigned, digest = location.rsplit("&digest=", 1)
    assert unsigned.startswith(f"{public_url}/return/monri?")
    assert hashlib.sha512((monri.merchant_key + unsigned).encode()).hexdigest() == digest
    return {k: v[0] for k, v in parse_qs(urlsplit(unsigned).query).items()}


@pytest.mark.parametrize("transaction_type", ["purchase", "authorize"])
def test_monri_pay_approves_calls_back_and_returns_signed(sandboxes, shop, monri_api, transaction_type):
    monri = sandboxes["monri"]
    monri.public_url = "https://shop.example/hh"  # what the shop's hookhub signs returns over
    created = monri_payment(monri_api, transaction_type=transaction_type)
    assert monri_api.payment_status(created["id"])["payment_status"] == "payment_method_required"

    answer = press(monri.components_url(created["client_secret"]), "pay")

    assert answer.status_code == 303
    query = check_signed_return(monri, answer.headers["Location"], "https://shop.example/hh")
    assert (query["order_number"], query["amount"], query["currency"], query["response_code"]) == \
        ("order-mr-1", "1999", "EUR", "0000")
    status = monri_api.payment_status(created["id"])
    result = status["payment_result"]
    assert status["payment_status"] == "approved"
    assert (result["order_number"], result["amount"], result["currency"], result["status"],
            result["transaction_type"]) == ("order-mr-1", 1999, "EUR", "approved", transaction_type)
    assert isinstance(result["id"], int)
    [callback] = settled(monri, shop, "/hooks/monri")
    digest = hashlib.sha512(monri.merchant_key.encode() + callback["body"]).hexdigest()
    assert callback["headers"]["Authorization"] == f"WP3-callback {digest}"
    body = json.loads(callback["body"])
    assert (body["id"], body["order_number"], body["amount"], body["status"], body["transaction_type"]) == \
        (result["id"], "order-mr-1", 1999, "approved", transaction_type)


def test_monri_decline_returns_declined_without_a_callback(sandboxes, shop, monri_api):
    """Monri calls back about approved transactions; a declined one only comes back with the buyer."""
    monri = sandboxes["monri"]
    created = monri_payment(monri_api)

    answer = press(monri.components_url(created["client_secret"]), "decline")

    assert answer.status_code == 303
    assert check_signed_return(monri, answer.headers["Location"], shop.url)["response_code"] == "1005"
    status = monri_api.payment_status(created["id"])
    assert (status["payment_status"], status["payment_result"]["status"]) == ("declined", "declined")
    assert monri.wait_sent() == [] and shop.calls == []


def test_monri_cancel_leaves_the_payment_unpaid(sandboxes, shop, monri_api):
    monri = sandboxes["monri"]
    created = monri_payment(monri_api)
    url = monri.components_url(created["client_secret"])

    answer = press(url, "cancel")

    assert (answer.status_code, answer.headers["Location"]) == (303, f"{shop.url}/result/failure")
    assert "payment_result" not in monri_api.payment_status(created["id"])
    assert monri.wait_sent() == [] and shop.calls == []
    assert requests.get(url, timeout=5).status_code == 200  # the buyer may come back and pay


def test_monri_without_notify_returns_but_does_not_call_back(sandboxes, shop, monri_api):
    monri = sandboxes["monri"]
    monri.notify = False
    created = monri_payment(monri_api)

    answer = press(monri.components_url(created["client_secret"]), "pay")

    assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{shop.url}/return/monri?")
    assert monri_api.payment_status(created["id"])["payment_status"] == "approved"
    assert monri.wait_sent() == [] and shop.calls == []


def test_monri_make_payment_pays_the_created_payment(sandboxes, shop, monri_api):
    monri = sandboxes["monri"]
    created = monri_payment(monri_api, order_number="order-mr-9", transaction_type="authorize")

    payment = monri.pay(order_id="order-mr-9", amount=5, currency="BAM")

    assert (payment.from_checkout, payment.details["payment_id"], payment.amount, payment.currency) == \
        (True, created["id"], 1999, "EUR")
    result = monri_api.payment_status(created["id"])["payment_result"]
    assert (result["status"], str(result["id"]), result["transaction_type"]) == \
        ("approved", payment.transaction_id, "authorize")
    assert monri.wait_sent() == [] and shop.calls == []
    with pytest.raises(RuntimeError, match="already been taken"):  # paid once is paid
        monri.pay(order_id="order-mr-9", amount=1999, currency="EUR")


# -- the commands --------------------------------------------------------------------------------


def test_simulate_completes_an_order_the_shop_created(sandboxes, shop, monri_api, tmp_path):
    created = monri_payment(monri_api, order_number="order-cli-1")
    environ = {k: None for k in os.environ if k.startswith("HOOKHUB_")}
    environ["HOOKHUB_INSTANCE_PATH"] = str(tmp_path / "instance")

    result = CliRunner().invoke(cli, ["simulate", "monri", "--order", "order-cli-1", "--amount", "5",
                                      "--hookhub", shop.url, "--sandbox", sandboxes.url], env=environ)

    assert result.exit_code == 0, result.output
    assert "completed the payment your code created for order order-cli-1" in result.output
    assert "do not apply" in result.output  # --amount 5 was not what was created
    assert monri_api.payment_status(created["id"])["payment_status"] == "approved"
    [callback] = shop.to("/hooks/monri")
    assert (json.loads(callback["body"])["order_number"], json.loads(callback["body"])["amount"]) == \
        ("order-cli-1", 1999)


def test_the_sandbox_command_sends_buyers_and_alerts_to_its_hookhub(shop, tmp_path):
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    environ["HOOKHUB_INSTANCE_PATH"] = str(tmp_path / "instance")
    hookhub = str(Path(sys.executable).with_name("hookhub"))
    with open(tmp_path / "sandbox.log", "wb") as log:
        process = subprocess.Popen([hookhub, "sandbox", "--bind", f"127.0.0.1:{port}", "--hookhub", shop.url],
                                   env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/moncash"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "sandbox.log").read_text()
                time.sleep(0.1)
        api = MonCashClient(MonCashSandbox.client_id, MonCashSandbox.client_secret, f"{base}/Api",
                            f"{base}/Moncash-middleware", timeout=5)
        created = api.create_payment(amount=5000, order_id="order-cmd-1")

        answer = press(created["redirect_url"], "pay")

        assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{shop.url}/return/moncash?")
        deadline = time.monotonic() + 10
        while not shop.to("/hooks/moncash") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(shop.to("/hooks/moncash")) == 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
