"""Monri callbacks, webhooks and returns through the app: signed, tampered, missing, duplicated."""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

import pytest

from conftest import PUBLIC_URL, SECRET_KEY, drain, hub_of
from hookhub import client as hookhub_client, read_result

DATABASES = ("sqlite", "postgresql")


def callback_body(**overrides) -> dict:
    body = {"id": 996660, "acquirer": "xml-sim", "order_number": "0d4546c748b9c4f", "order_info": "Monri Test",
            "amount": 100, "currency": "EUR", "status": "approved", "response_code": "0000",
            "approval_code": "629762", "transaction_type": "purchase", "masked_pan": "434179-xxx-xxx-0044",
            "created_at": "2019-09-06T14:05:11.190+02:00"}
    body.update(overrides)
    return body


def post_signed(client, monri, payload, headers=None):
    raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return client.post("/hooks/monri", data=raw, headers=headers or monri.callback_headers(raw))


def return_query(**overrides) -> str:
    fields = {"acquirer": "integration_acq", "amount": "100", "approval_code": "629762",
              "authentication": "Y", "cc_type": "visa", "ch_full_name": "John Doe", "currency": "EUR",
              "custom_params": "{a:b, c:d}", "enrollment": "Y", "language": "en",
              "masked_pan": "434179-xxx-xxx-0044", "number_of_installments": "",
              "order_number": "0d4546c748b9c4f", "response_code": "0000"}
    fields.update(overrides)
    return urlencode(fields)


def get_return(client, monri, query):
    signed = monri.signed_return_url(PUBLIC_URL, query)
    return client.get(signed[len(PUBLIC_URL):])


def result_of(response):
    assert response.status_code == 303, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    return location.path, read_result(location.query.split("result=")[1], secret_key=SECRET_KEY)


def test_signed_callback_makes_one_approved_event(app, client, monri, recorder):
    assert post_signed(client, monri, callback_body()).status_code == 200
    assert post_signed(client, monri, callback_body()).status_code == 200
    drain(app)
    [event] = recorder.events
    assert (event.type, event.provider, event.order_id, event.transaction_id) == (
        "payment.approved", "monri", "0d4546c748b9c4f", "996660")
    assert (event.amount, event.currency, event.source) == (100, "EUR", "callback")
    assert event.occurred_at.isoformat() == "2019-09-06T12:05:11.190000+00:00"  # kept in UTC
    calls = hub_of(app).store.list_calls()
    assert [c["outcome"] for c in calls] == ["duplicate", "event"]
    assert calls[0]["headers"]["Authorization"] == "WP3-callback [redacted]"


@pytest.mark.parametrize("tamper", ["body", "digest", "missing", "scheme"])
def test_bad_signature_is_401_recorded_and_never_delivered(app, client, monri, recorder, tamper):
    raw = json.dumps(callback_body()).encode()
    headers = monri.callback_headers(raw)
    if tamper == "body":
        raw = raw.replace(b'"amount": 100', b'"amount": 1')
    elif tamper == "digest":
        headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    elif tamper == "missing":
        del headers["Authorization"]
    else:
        headers["Authorization"] = headers["Authorization"].replace("WP3-callback", "WP3-v2.1")
    response = client.post("/hooks/monri", data=raw, headers=headers)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_signature"
    drain(app)
    assert recorder.events == []
    [call] = hub_of(app).store.list_calls()
    assert (call["outcome"], call["status_code"]) == ("invalid_signature", 401)


@pytest.mark.parametrize("payload,code", [
    (b"[1, 2]", "malformed_json"),
    (b"not json", "malformed_json"),
    (callback_body(order_number=None), "missing_order_number"),
    (callback_body(amount=None), "invalid_amount"),
    (callback_body(amount=10.5), "invalid_amount"),
    (callback_body(currency=None), "missing_currency"),
    ({"event": "transaction:purchase:approved", "payload": "x"}, "invalid_payload"),
    (callback_body(amount="\u00b2"), "invalid_amount"),
    (callback_body(amount=10**30), "invalid_amount"),
    (callback_body(id={"a": 1}), "missing_id"),
    (callback_body(id="9" * 65), "missing_id"),
    ({"event": 7, "payload": callback_body()}, "invalid_event"),
])
def test_signed_but_unusable_body_is_400(app, client, monri, recorder, payload, code):
    response = post_signed(client, monri, payload)
    assert response.status_code == 400 and response.get_json()["error"] == code
    drain(app)
    assert recorder.events == []


def test_webhooks_follow_the_payment_through_refund(app, client, monri, recorder):
    def webhook(event, **overrides):
        return post_signed(client, monri, {"event": event, "payload": callback_body(**overrides)})

    assert webhook("transaction:purchase:approved").status_code == 200
    assert webhook("transaction:refund:declined", transaction_type="refund", id=2).status_code == 200
    assert webhook("transaction:refund:approved", transaction_type="refund", id=3, amount=100).status_code == 200
    assert webhook("transaction:purchase:approved").status_code == 200  # late replay: never undoes the refund
    assert webhook("payment-method:tokenized").status_code == 200
    drain(app)
    assert [(e.type, e.transaction_id) for e in recorder.events] == [("payment.approved", "996660"),
                                                                     ("payment.refunded", "3")]
    assert hub_of(app).store.list_calls()[0]["outcome"] == "ignored"


@pytest.mark.parametrize("event,expected", [
    ("transaction:purchase:declined", "payment.declined"),
    ("transaction:authorize:approved", "payment.approved"),
    ("transaction:declined", "payment.declined"),
])
def test_webhook_events_map_to_normalized_types(app, client, monri, recorder, event, expected):
    assert post_signed(client, monri, {"event": event, "payload": callback_body()}).status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == [expected]


def test_a_void_seen_before_its_approval_waits_for_it(app, client, monri, recorder):
    void = {"event": "transaction:void:approved", "payload": callback_body(id=77, transaction_type="void")}
    assert post_signed(client, monri, void).status_code == 200  # Monri's word: acknowledged, kept
    drain(app)
    assert recorder.events == [] and hub_of(app).store.list_calls()[0]["outcome"] == "held"
    authorized = {"event": "transaction:authorize:approved", "payload": callback_body()}
    assert post_signed(client, monri, authorized).status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved", "payment.canceled"]


def test_signed_return_redirects_and_makes_the_event(app, client, monri, recorder):
    path, result = result_of(get_return(client, monri, return_query()))
    assert (path, result["status"], result["order_id"]) == ("/result/success", "approved", "0d4546c748b9c4f")
    drain(app)
    [event] = recorder.events
    assert (event.type, event.amount, event.currency, event.source) == ("payment.approved", 100, "EUR", "return")


def test_declined_return_goes_to_the_failure_page(app, client, monri, recorder):
    path, result = result_of(get_return(client, monri, return_query(response_code="1050")))
    assert (path, result["status"]) == ("/result/failure", "declined")


@pytest.mark.parametrize("mangle", [
    lambda url: url.replace("amount=100", "amount=1"),
    lambda url: url.replace("response_code=1050", "response_code=0000"),
    lambda url: url.split("&digest=")[0],
    lambda url: url + "&digest=" + "0" * 128,
    lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),
])
def test_tampered_return_is_rejected_and_creates_nothing(app, client, monri, recorder, mangle):
    signed = monri.signed_return_url(PUBLIC_URL, return_query(response_code="1050"))
    response = client.get(mangle(signed)[len(PUBLIC_URL):])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_signature"
    drain(app)
    assert recorder.events == []


def test_return_uses_the_public_url_not_the_host_header(app, client, monri, recorder):
    # signed for exactly the URL the request arrives at: http, this Host, no prefix
    signed = monri.signed_return_url("http://attacker.example", return_query())
    response = client.get(signed[len("http://attacker.example"):], headers={"Host": "attacker.example"})
    assert response.status_code == 401


def test_return_digest_is_checked_over_the_raw_query_as_sent(app, client, monri, recorder):
    # lower-case escapes and %20 are what some encoders produce and Python's would not
    query = ("amount=100&currency=EUR&ch_full_name=John%20Doe&custom_params=%7ba%3ab%2c%20c%3ad%7d"
             "&order_number=0d4546c748b9c4f&response_code=0000")
    path, result = result_of(get_return(client, monri, query))
    assert result["status"] == "approved"


def test_return_with_a_repeated_parameter_is_400(app, client, monri, recorder):
    response = get_return(client, monri, return_query() + "&amount=1")
    assert response.status_code == 400 and response.get_json()["error"] == "ambiguous_parameter"


def test_callback_then_return_make_one_event(app, client, monri, recorder):
    assert post_signed(client, monri, callback_body()).status_code == 200
    path, result = result_of(get_return(client, monri, return_query()))
    drain(app)
    [event] = recorder.events
    assert result["event_id"] == event.id and event.source == "callback"


def test_return_of_a_payment_made_through_hookhub_is_confirmed_with_payment_status(app, client, monri, recorder):
    with app.app_context():
        created = hookhub_client("monri").create_payment(
            amount=100, order_number="0d4546c748b9c4f", currency="EUR", transaction_type="purchase",
            order_info="Monri Test")
    monri.complete(created["id"], status="declined", response_code="1050")
    # the redirect claims success, the API says declined: the API is the truth
    path, result = result_of(get_return(client, monri, return_query()))
    assert (path, result["status"]) == ("/result/failure", "declined")
    assert ("GET", f"/v2/payment/{created['id']}/status") in monri.requests
    drain(app)
    assert [(e.type, e.transaction_id) for e in recorder.events] == [("payment.declined", created["id"])]


def test_return_before_the_buyer_paid_is_pending_and_rechecked(app, client, monri, recorder):
    with app.app_context():
        created = hookhub_client("monri").create_payment(
            amount=100, order_number="0d4546c748b9c4f", currency="EUR", transaction_type="purchase",
            order_info="Monri Test")
    path, result = result_of(get_return(client, monri, return_query()))
    assert (path, result["status"]) == ("/result/pending", "pending")
    monri.complete(created["id"])
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.approved", "poll")]


@pytest.mark.parametrize("payload", [
    {"event": "payment-method:tokenized", "payload": {"token": "abc"}},
    {"event": "customer:created", "payload": {"uuid": "x"}},
    {"event": "transaction:refund:declined", "payload": callback_body(transaction_type="refund", amount=30)},
    {"event": "transaction:void:declined", "payload": callback_body(transaction_type="void")},
    {"event": "transaction:capture:declined", "payload": callback_body(transaction_type="capture")},
    callback_body(transaction_type="refund", status="declined", response_code="1050"),
])
def test_signed_events_that_change_no_payment_are_acknowledged_and_ignored(app, client, monri, recorder, payload):
    response = post_signed(client, monri, payload)
    assert response.status_code == 200
    drain(app)
    assert recorder.events == []
    assert hub_of(app).store.list_calls()[0]["outcome"] == "ignored"


def test_a_retry_after_a_decline_is_paid_and_a_late_decline_changes_nothing(app, client, monri, recorder):
    def webhook(event, **overrides):
        return post_signed(client, monri, {"event": event, "payload": callback_body(**overrides)})

    webhook("transaction:purchase:declined", id=8, status="declined", response_code="1050")
    webhook("transaction:purchase:approved", id=9)
    webhook("transaction:purchase:declined", id=8, status="declined", response_code="1050")  # late replay
    drain(app)
    assert [(e.type, e.transaction_id) for e in recorder.events] == [("payment.declined", "8"),
                                                                     ("payment.approved", "9")]


def test_unusable_created_at_falls_back_to_the_receipt_time(app, client, monri, recorder):
    assert post_signed(client, monri, callback_body(created_at="0001-01-01T00:00:00+01:00")).status_code == 200
    drain(app)
    [event] = recorder.events
    assert event.occurred_at == event.received_at
