"""Monext notifications and returns through the app, against the fake Monext API."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import hookhub
from conftest import SECRET_KEY, drain, hub_of
from hookhub import client as provider_client
from hookhub import ProviderAPIError, hookimpl, read_result
from hookhub.pipeline import UNCONFIRMED_RECHECKS

DATABASES = ("sqlite", "postgresql")


class Prices:
    """The merchant's expected price of each order (``hookhub_expected_payment``)."""

    def __init__(self, prices):
        self.prices = prices

    @hookimpl
    def hookhub_expected_payment(self, provider, order_id):
        return self.prices.get(order_id)


def redirect_of(response):
    assert response.status_code == 303, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    return location.path, read_result(parse_qs(location.query)["result"][0], secret_key=SECRET_KEY)


def outcomes(app):
    return [c["outcome"] for c in reversed(hub_of(app).store.list_calls())]


def test_notification_fetches_the_session_and_answers_an_empty_200(app, client, monext, recorder):
    session_id = monext.open_session("order-2001", 1999)
    transaction_id = monext.settle(session_id, "ACCEPTED")

    response = client.get(f"/hooks/monext?token={session_id}&notificationType=WEBTRS")

    assert (response.status_code, response.data) == (200, b"")
    drain(app)
    [event] = recorder.events
    assert (event.type, event.provider, event.source) == ("payment.approved", "monext", "callback")
    assert (event.order_id, event.transaction_id, event.amount, event.currency) == (
        "order-2001", transaction_id, 1999, "EUR")
    assert event.raw["result"]["title"] == "ACCEPTED"
    assert monext.session_fetches(session_id) == 1


@pytest.mark.parametrize("send", [
    lambda c, sid: c.post(f"/hooks/monext?token={sid}"),
    lambda c, sid: c.post("/hooks/monext", data={"token": sid, "notificationType": "WEBTRS"}),
    lambda c, sid: c.post("/hooks/monext", json={"token": sid}),
], ids=["post-query", "form", "json"])
def test_notification_reads_token_from_query_form_or_json(app, client, monext, recorder, send):
    session_id = monext.open_session("order-2002", 500)
    monext.settle(session_id, "ACCEPTED")
    assert send(client, session_id).status_code == 200
    drain(app)
    assert [e.order_id for e in recorder.events] == ["order-2002"]


@pytest.mark.parametrize("query", ["paylinetoken={}", "monext_session_id={}", "paylinetoken=&monext_session_id={}"])
def test_return_with_either_parameter_redirects_by_outcome(app, client, monext, recorder, query):
    session_id = monext.open_session("order-2003", 4200)
    monext.settle(session_id, "ACCEPTED")

    path, result = redirect_of(client.get("/return/monext?" + query.format(session_id)))

    assert (path, result["status"], result["order_id"], result["provider"]) == (
        "/result/success", "approved", "order-2003", "monext")
    drain(app)
    assert [(e.type, e.source, e.id) for e in recorder.events] == [("payment.approved", "return", result["event_id"])]


def test_notification_and_return_for_one_session_make_one_event(app, client, monext, recorder):
    session_id = monext.open_session("order-2004", 100)
    monext.settle(session_id, "ACCEPTED")
    assert client.get(f"/hooks/monext?token={session_id}").status_code == 200
    first = redirect_of(client.get(f"/return/monext?paylinetoken={session_id}"))
    second = redirect_of(client.get(f"/return/monext?monext_session_id={session_id}&paylinetoken={session_id}"))
    assert client.post(f"/hooks/monext?token={session_id}").status_code == 200
    drain(app)
    [event] = recorder.events
    assert first[1]["event_id"] == second[1]["event_id"] == event.id
    assert outcomes(app) == ["event", "duplicate", "duplicate", "duplicate"]


@pytest.mark.parametrize("title, page, event_type", [
    ("ACCEPTED", "success", "payment.approved"),
    ("REFUSED", "failure", "payment.declined"),
    ("ERROR", "failure", "payment.declined"),
    ("CANCELLED", "failure", "payment.canceled"),
    ("INPROGRESS", "pending", "payment.pending"),
    ("ONHOLD_PARTNER", "pending", "payment.pending"),
    ("PENDING_RISK", "pending", "payment.pending"),
])
def test_every_result_title(app, client, monext, recorder, title, page, event_type):
    session_id = monext.open_session(f"order-{title}", 300)
    monext.settle(session_id, title, with_transaction=title not in ("INPROGRESS", "CANCELLED"))

    path, result = redirect_of(client.get(f"/return/monext?paylinetoken={session_id}"))

    assert path == f"/result/{page}"
    drain(app)
    assert [e.type for e in recorder.events] == [event_type]
    event = recorder.events[0]
    assert (event.order_id, event.amount, event.currency) == (f"order-{title}", 300, "EUR")
    if title in ("INPROGRESS", "CANCELLED"):  # no transaction yet: the session names the payment
        assert event.transaction_id == session_id


def test_empty_authorized_amount_means_the_requested_one(make_app, recorder, monext):
    app = make_app(plugins=[recorder, Prices({"order-3001": (5000, "EUR")})])
    session_id = monext.open_session("order-3001", 5000)
    monext.settle(session_id, "ACCEPTED", authorizedAmount=None)  # "empty if equal to the requested amount"
    assert app.test_client().get(f"/hooks/monext?token={session_id}").status_code == 200
    drain(app)
    assert [(e.type, e.amount) for e in recorder.events] == [("payment.approved", 5000)]


def test_a_capture_is_not_the_payment(make_app, recorder, monext):
    app = make_app(plugins=[recorder, Prices({"order-3002": (5000, "EUR")})])
    session_id = monext.open_session("order-3002", 5000)
    authorization = monext.settle(session_id, "ACCEPTED", transaction_type="AUTHORIZATION")
    with app.app_context():
        provider_client("monext").capture(authorization, 3000)  # a partial capture before any notification
    assert app.test_client().get(f"/hooks/monext?token={session_id}").status_code == 200
    drain(app)
    [capture] = [t["id"] for t in monext.sessions[session_id]["transactions"] if t["type"] == "CAPTURE"]
    # The shop's expected price is compared with what was authorized, not with a capture of it.
    assert [(e.type, e.amount, e.transaction_id, e.totals) for e in recorder.events] == [
        ("payment.approved", 5000, authorization, {"authorized": 5000, "captured": 0, "refunded": 0}),
        ("payment.captured", 3000, capture, {"authorized": 5000, "captured": 3000, "refunded": 0})]


def test_pending_session_is_rechecked_until_final(app, client, monext, recorder):
    session_id = monext.open_session("order-2005", 800)
    monext.settle(session_id, "PENDING_RISK")
    path, _ = redirect_of(client.get(f"/return/monext?paylinetoken={session_id}"))
    assert path == "/result/pending"
    time.sleep(0.01)
    drain(app, rounds=1)
    assert [e.type for e in recorder.events] == ["payment.pending"]
    assert monext.session_fetches(session_id) >= 2  # still pending: asked again in the background

    monext.settle(session_id, "ACCEPTED")
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.pending", "return"), ("payment.approved", "poll")]
    assert hub_of(app).store.list_verifications() == []


def test_refused_attempt_then_accepted_retry_in_the_same_session(app, client, monext, recorder):
    session_id = monext.open_session("order-2006", 1000)
    monext.settle(session_id, "REFUSED")
    client.get(f"/hooks/monext?token={session_id}")
    retried = monext.settle(session_id, "ACCEPTED")
    client.get(f"/hooks/monext?token={session_id}")
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.declined", "payment.approved"]
    assert recorder.events[1].transaction_id == retried


@pytest.mark.parametrize("action, paid_as, event_type", [("refund", "AUTHORIZATION_AND_CAPTURE", "payment.refunded"),
                                                         ("cancel", "AUTHORIZATION", "payment.canceled")])
def test_accepted_refund_or_cancel_changes_the_payment(app, client, monext, recorder, action, paid_as, event_type):
    session_id = monext.open_session("order-2007", 6000)
    transaction_id = monext.settle(session_id, "ACCEPTED", transaction_type=paid_as)
    client.get(f"/hooks/monext?token={session_id}")
    with app.app_context():
        answer = getattr(provider_client("monext"), action)(transaction_id, 2500)

    client.get(f"/hooks/monext?token={session_id}")
    client.get(f"/hooks/monext?token={session_id}")  # Monext notifies more than once
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved", event_type]
    changed = recorder.events[1]
    assert (changed.transaction_id, changed.amount, changed.order_id) == (answer["transaction"]["id"], 2500, "order-2007")
    assert outcomes(app) == ["event", "event", "duplicate"]


def test_refused_refund_leaves_the_payment_approved(app, client, monext, recorder):
    session_id = monext.open_session("order-2012", 6000)
    transaction_id = monext.settle(session_id, "ACCEPTED", transaction_type="AUTHORIZATION")
    client.get(f"/hooks/monext?token={session_id}")
    with app.app_context(), pytest.raises(ProviderAPIError):
        provider_client("monext").refund(transaction_id, 9000)

    assert client.get(f"/hooks/monext?token={session_id}").status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved"]
    assert outcomes(app) == ["event", "duplicate"]
    # the refused refund is known from the payment's associated transactions, never looked up on its own
    refused = monext.sessions[session_id]["transactions"][-1]["id"]
    assert monext.requests.count(("GET", f"/v1/checkout/transactions/{refused}")) == 0


def test_unknown_session_notification_is_404_and_creates_nothing(app, client, monext, recorder):
    response = client.get("/hooks/monext?token=never-created-session")
    assert response.status_code == 404 and response.get_json()["error"] == "unknown_transaction"
    [call] = hub_of(app).store.list_calls()
    assert call["outcome"] == "unknown_transaction" and "02304" not in json.dumps(response.get_json())
    drain(app)
    assert recorder.events == [] and hub_of(app).store.list_events() == []


def test_a_made_up_session_return_is_never_rechecked(app, client, monext, recorder):
    path, result = redirect_of(client.get("/return/monext?paylinetoken=made-up-session"))
    assert (path, result["status"]) == ("/result/pending", "pending")
    drain(app)
    assert recorder.events == []
    assert monext.session_fetches("made-up-session") == 1


def test_a_session_hookhub_started_is_rechecked_a_few_times_when_monext_does_not_know_it(app, client, monext):
    checkout = hookhub.start_payment("monext", order_id="order-lost", amount=100, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1")
    with monext.lock:
        del monext.sessions[checkout.reference]  # Monext lost it, or has not replicated it yet
    client.get(f"/return/monext?paylinetoken={checkout.reference}")
    drain(app)
    [recheck] = [v for v in hub_of(app).store.list_verifications() if v["kind"] == "recheck"]
    assert recheck["status"] == "gave_up"
    assert monext.session_fetches(checkout.reference) == 1 + UNCONFIRMED_RECHECKS


def test_200_unauthorized_never_becomes_a_state(make_app, recorder, monext):
    monext.unauthorized_as_200 = True
    app = make_app({"HOOKHUB_MONEXT_ACCESS_KEY": "revoked-access-key-0000"}, plugins=[recorder])
    client = app.test_client()
    session_id = monext.open_session("order-2008", 100)
    monext.settle(session_id, "ACCEPTED")

    response = client.get(f"/hooks/monext?token={session_id}")
    assert response.status_code == 503 and response.headers["Retry-After"]
    path, _ = redirect_of(client.get(f"/return/monext?paylinetoken={session_id}"))
    assert path == "/result/pending"
    drain(app)
    assert recorder.events == [] and monext.refused_auth >= 2
    stored = json.dumps(hub_of(app).store.list_calls(), default=str) + response.get_data(as_text=True)
    basic = base64.b64encode(f"{monext.merchant_id}:revoked-access-key-0000".encode()).decode()
    assert "revoked-access-key-0000" not in stored and basic not in stored
    assert basic in hub_of(app).secrets  # what the log filter and stored payloads are scrubbed of


def test_provider_outage_is_503_for_notifications(app, client, monext, recorder):
    session_id = monext.open_session("order-2009", 100)
    monext.settle(session_id, "ACCEPTED")
    monext.outage = True
    response = client.get(f"/hooks/monext?token={session_id}")
    assert response.status_code == 503 and response.get_json()["error"] == "provider_unavailable"
    monext.outage = False
    assert client.get(f"/hooks/monext?token={session_id}").status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved"]


def test_unreadable_session_answer_creates_nothing(app, client, monext, recorder):
    session_id = monext.open_session("order-2010", 100)
    monext.sessions[session_id]["result"] = {"title": "SOMETHING_NEW", "code": "09999", "detail": "?"}
    assert client.get(f"/hooks/monext?token={session_id}").status_code == 503
    drain(app)
    assert recorder.events == []


@pytest.mark.parametrize("request_path, code", [
    ("/hooks/monext", "missing_token"),
    ("/hooks/monext?token=", "missing_token"),
    ("/hooks/monext?notificationType=WEBTRS", "missing_token"),
    ("/hooks/monext?token=" + "a" * 51, "reference_too_long"),
    ("/hooks/monext?token=a&token=b", "ambiguous_token"),
    ("/hooks/monext?token=%3Cscript%3E", "malformed_session_id"),
    ("/return/monext", "missing_paylinetoken"),
    ("/return/monext?paylinetoken=a&monext_session_id=b", "ambiguous_session"),
    ("/return/monext?paylinetoken=&monext_session_id=", "missing_paylinetoken"),
    ("/hooks/monext?token=..", "malformed_session_id"),
    ("/return/monext?paylinetoken=..%2F..%2Fsomething", "malformed_session_id"),
])
def test_bad_calls_are_400_recorded_and_never_fetched(app, client, monext, recorder, request_path, code):
    response = client.get(request_path)
    assert (response.status_code, response.get_json()["error"]) == (400, code)
    assert hub_of(app).store.list_calls()[0]["outcome"] == code
    assert monext.requests == [] and recorder.events == []


def test_json_token_that_is_not_a_string_is_400(app, client, monext):
    response = client.post("/hooks/monext", json={"token": 12345})
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_token")


def test_price_different_from_the_merchants_is_a_mismatch(make_app, recorder, monext):
    app = make_app(plugins=[recorder, Prices({"order-2011": (2000, "EUR")})])
    session_id = monext.open_session("order-2011", 20)
    monext.settle(session_id, "ACCEPTED")
    path, result = redirect_of(app.test_client().get(f"/return/monext?paylinetoken={session_id}"))
    drain(app)
    assert (path, result["status"]) == ("/result/pending", "mismatch")
    assert [e.type for e in recorder.events] == ["payment.mismatch"]


def test_client_is_reachable_through_the_public_api(app, monext):
    with app.app_context():
        api = provider_client("monext")
        created = api.create_session(point_of_sale_reference="POS1", order={"reference": "o-1", "amount": 1,
                                     "currency": "EUR"}, return_url="https://shop.example/return")
    assert created["sessionId"] in monext.sessions
