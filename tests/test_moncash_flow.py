"""MonCash returns and callbacks through the app, against the fake MonCash API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import SECRET_KEY, Recorder, drain, hub_of
from hookhub import hookimpl, read_result

DATABASES = ("sqlite", "postgresql")


def result_of(response):
    assert response.status_code == 303, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    token = parse_qs(location.query)["result"][0]
    return location.path, read_result(token, secret_key=SECRET_KEY)


def test_return_redirects_to_success_and_delivers_one_approved_event(app, client, moncash, recorder):
    moncash.add_payment("12874820", "order-1", 10)

    path, result = result_of(client.get("/return/moncash?transactionId=12874820"))

    assert path == "/result/success"
    assert result["status"] == "approved" and result["order_id"] == "order-1" and result["provider"] == "moncash"
    drain(app)
    [event] = recorder.events
    assert (event.type, event.order_id, event.transaction_id) == ("payment.approved", "order-1", "12874820")
    assert (event.amount, event.currency, event.source) == (1000, "HTG", "return")
    assert result["event_id"] == event.id
    assert event.raw["payment"]["payer"] == "50937007294"


def test_fractional_cost_becomes_minor_units(app, client, moncash, recorder):
    moncash.add_payment("555", "order-frac", "10.5")
    client.get("/return/moncash?transactionId=555")
    drain(app)
    assert recorder.events[0].amount == 1050


@pytest.mark.parametrize("send", [
    lambda c: c.post("/hooks/moncash", json={"transactionId": "777"}),
    lambda c: c.post("/hooks/moncash", data={"transactionId": "777"}),
    lambda c: c.post("/hooks/moncash?transactionId=777"),
    lambda c: c.get("/hooks/moncash?transactionId=777"),
    lambda c: c.post("/hooks/moncash", json={"transactionId": 777}),
], ids=["json", "form", "post-query", "get-query", "json-number"])
def test_callback_reads_transaction_id_from_query_form_or_json(app, client, moncash, recorder, send):
    moncash.add_payment("777", "order-7", 250)
    response = send(client)
    assert response.status_code == 200, response.get_json()
    drain(app)
    assert [(e.type, e.transaction_id, e.source) for e in recorder.events] == [("payment.approved", "777", "callback")]


def test_repeated_return_and_callback_make_one_event(app, client, moncash, recorder):
    moncash.add_payment("42", "order-42", 100)
    assert client.post("/hooks/moncash", json={"transactionId": "42"}).status_code == 200
    assert client.post("/hooks/moncash", json={"transactionId": "42"}).status_code == 200
    first = result_of(client.get("/return/moncash?transactionId=42"))
    second = result_of(client.get("/return/moncash?transactionId=42"))
    drain(app)
    assert len(recorder.events) == 1
    # every return points at the one event that made the transaction approved
    assert first[1]["event_id"] == second[1]["event_id"] == recorder.events[0].id
    outcomes = [c["outcome"] for c in reversed(hub_of(app).store.list_calls())]
    assert outcomes == ["event", "duplicate", "duplicate", "duplicate"]


def test_declined_payment_goes_to_failure_page(app, client, moncash, recorder):
    moncash.add_payment("9", "order-9", 100, message="failed")
    path, result = result_of(client.get("/return/moncash?transactionId=9"))
    assert (path, result["status"]) == ("/result/failure", "declined")
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.declined"]


def test_unrecognized_message_stays_pending_and_is_rechecked(app, client, moncash, recorder):
    moncash.add_payment("31", "order-31", 100, message="processing")
    path, result = result_of(client.get("/return/moncash?transactionId=31"))
    assert (path, result["status"]) == ("/result/pending", "pending")
    drain(app, rounds=1)
    assert [e.type for e in recorder.events] == ["payment.pending"]

    moncash.add_payment("31", "order-31", 100, message="successful")
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.pending", "return"), ("payment.approved", "poll")]
    assert hub_of(app).store.list_verifications() == []


def test_stale_pending_never_overwrites_approved(app, client, moncash, recorder):
    moncash.add_payment("60", "order-60", 100, message="successful")
    client.post("/hooks/moncash", json={"transactionId": "60"})
    moncash.add_payment("60", "order-60", 100, message="processing")
    client.post("/hooks/moncash", json={"transactionId": "60"})
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved"]
    assert hub_of(app).store.list_calls()[0]["outcome"] == "stale"


@pytest.mark.parametrize("query,code", [
    ("", "missing_transaction_id"),
    ("?transactionId=", "missing_transaction_id"),
    ("?transactionId=1&transactionId=2", "ambiguous_transactionId"),
    ("?transactionId=" + "9" * 129, "reference_too_long"),
    ("?transactionId=%3Cscript%3E", "malformed_reference"),
    ("?transactionId=%ff", "malformed_query"),
])
def test_bad_return_is_a_recorded_400_and_makes_nothing(app, client, moncash, recorder, query, code):
    response = client.get(f"/return/moncash{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == code
    drain(app)
    assert recorder.events == []
    [call] = hub_of(app).store.list_calls()
    assert (call["outcome"], call["status_code"]) == (code, 400)
    assert moncash.count("/Api/v1/RetrieveTransactionPayment") == 0


@pytest.mark.parametrize("body,content_type", [
    (b'{"transactionId": ', "application/json"),
    (b'{"transactionId": [1]}', "application/json"),
    (b'{"transactionId": NaN}', "application/json"),
    (b'{"other": 1}', "application/json"),
    (b"\xff\xfe", "application/x-www-form-urlencoded"),
    (b'{"transactionId": ' + b"[" * 50000, "application/json"),
])
def test_bad_callback_body_is_400(app, client, recorder, body, content_type):
    response = client.post("/hooks/moncash", data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"]
    drain(app)
    assert recorder.events == []


def test_oversized_body_is_413_and_recorded(make_app, recorder):
    app = make_app({"HOOKHUB_MAX_BODY_BYTES": 1024}, plugins=[recorder])
    response = app.test_client().post("/hooks/moncash", data=b"x" * 2048)
    assert response.status_code == 413
    assert response.get_json()["error"] == "body_too_large"
    [call] = hub_of(app).store.list_calls()
    assert (call["outcome"], call["status_code"], call["body"]) == ("body_too_large", 413, b"")


def test_unknown_transaction_return_is_pending_not_success_and_callback_is_404(app, client, moncash, recorder):
    path, result = result_of(client.get("/return/moncash?transactionId=404404"))
    assert (path, result["status"], result["event_id"]) == ("/result/pending", "pending", None)
    response = client.post("/hooks/moncash", json={"transactionId": "404404"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_transaction"
    drain(app)
    assert recorder.events == []


def test_outage_return_shows_pending_then_event_arrives_once_when_back(app, client, moncash, recorder):
    moncash.add_payment("88", "order-88", 300)
    moncash.outage = True
    path, result = result_of(client.get("/return/moncash?transactionId=88"))
    assert (path, result["status"]) == ("/result/pending", "pending")
    drain(app, rounds=3)
    assert recorder.events == []
    [job] = hub_of(app).store.list_verifications()
    assert job["status"] == "pending" and job["attempts"] >= 1 and "503" in job["last_error"]

    moncash.outage = False
    drain(app)
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.approved", "poll")]
    assert hub_of(app).store.list_verifications() == []


def test_outage_callback_is_503_and_creates_nothing(app, client, moncash, recorder):
    moncash.add_payment("89", "order-89", 300)
    moncash.outage = True
    response = client.post("/hooks/moncash", json={"transactionId": "89"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "provider_unavailable"
    moncash.outage = False
    assert client.post("/hooks/moncash", json={"transactionId": "89"}).status_code == 200
    drain(app)
    assert len(recorder.events) == 1


def test_slow_provider_times_out_into_503(make_app, moncash, recorder):
    app = make_app({"HOOKHUB_HTTP_TIMEOUT": 0.2}, plugins=[recorder])
    moncash.add_payment("90", "order-90", 300)
    moncash.delay = 0.5
    assert app.test_client().post("/hooks/moncash", json={"transactionId": "90"}).status_code == 503


def test_expected_payment_mismatch_is_never_approved(make_app, moncash, recorder):
    class Orders:
        @hookimpl
        def hookhub_expected_payment(self, provider, order_id):
            return {"order-m": (5000, "HTG"), "order-ok": (1000, "htg")}.get(order_id)

    app = make_app(plugins=[recorder, Orders()])
    moncash.add_payment("m1", "order-m", 10)
    moncash.add_payment("ok1", "order-ok", 10)
    client = app.test_client()
    path, result = result_of(client.get("/return/moncash?transactionId=m1"))
    assert result["status"] == "mismatch" and path == "/result/pending"
    client.get("/return/moncash?transactionId=ok1")
    drain(app)
    assert [(e.type, e.order_id) for e in recorder.events] == [("payment.mismatch", "order-m"),
                                                               ("payment.approved", "order-ok")]
    assert recorder.events[0].expected == {"amount": 5000, "currency": "HTG"}
    assert recorder.events[0].amount == 1000


def test_return_response_hook_shapes_the_buyer_page(make_app, moncash, recorder):
    class Page:
        @hookimpl
        def hookhub_return_response(self, event, request):
            return f"thanks for {event.order_id} via {request.args['transactionId']}", 200

    app = make_app(plugins=[recorder, Page()])
    moncash.add_payment("p1", "order-p", 10)
    response = app.test_client().get("/return/moncash?transactionId=p1")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "thanks for order-p via p1")


def test_configured_pages_receive_the_signed_result(make_app, moncash):
    app = make_app({"HOOKHUB_SUCCESS_URL": "https://shop.example/paid?lang=fr"})
    moncash.add_payment("s1", "order-s", 10)
    response = app.test_client().get("/return/moncash?transactionId=s1")
    location = response.headers["Location"]
    assert location.startswith("https://shop.example/paid?lang=fr&result=")
    assert read_result(parse_qs(urlsplit(location).query)["result"][0], secret_key=SECRET_KEY)["status"] == "approved"


def test_result_page_trusts_only_the_signed_status(app, client, moncash):
    moncash.add_payment("d1", "order-d", 10, message="failed")
    location = client.get("/return/moncash?transactionId=d1").headers["Location"]
    token = parse_qs(urlsplit(location).query)["result"][0]
    page = client.get(f"/result/success?result={token}")
    assert "did not go through" in page.get_data(as_text=True)
    forged = client.get("/result/success?result=" + token[:-2] + "xx")
    assert forged.status_code == 400 and "confirmed" not in forged.get_data(as_text=True)


def test_raising_handler_neither_blocks_nor_reruns_another(make_app, moncash):
    class Failing(Recorder):  # its own class, so its own handler name
        pass

    failing, healthy = Failing(fail_times=2), Recorder()
    app = make_app(plugins=[failing, healthy])
    moncash.add_payment("h1", "order-h", 10)
    app.test_client().get("/return/moncash?transactionId=h1")
    drain(app)
    assert healthy.calls == 1 and len(healthy.events) == 1
    assert failing.calls == 3 and len(failing.events) == 1
    deliveries = {d["handler"]: d for d in hub_of(app).store.list_deliveries()}
    failed = next(d for name, d in deliveries.items() if name.endswith("Failing"))
    assert (failed["status"], failed["attempts"]) == ("done", 3)
    assert "handler failure number 2" in failed["last_error"] and "Traceback" in failed["last_error"]


def test_handler_that_always_fails_is_dead_lettered(make_app, moncash):
    broken = Recorder(fail_times=10**6)
    app = make_app({"HOOKHUB_DELIVERY_MAX_ATTEMPTS": 3}, plugins=[broken])
    moncash.add_payment("x1", "order-x", 10)
    app.test_client().get("/return/moncash?transactionId=x1")
    drain(app)
    [delivery] = hub_of(app).store.list_deliveries()
    assert (delivery["status"], delivery["attempts"], broken.calls) == ("dead", 3, 3)


def test_secrets_are_not_stored_with_the_call(app, client, moncash):
    moncash.add_payment("k1", "order-k", 10)
    client.post("/hooks/moncash", json={"transactionId": "k1"},
                headers={"Authorization": "Bearer caller-secret-token", "X-Api-Key": "k-123"})
    [call] = hub_of(app).store.list_calls()
    assert call["headers"]["Authorization"] == "Bearer [redacted]"
    assert call["headers"]["X-Api-Key"] == "[redacted]"


def test_callback_that_sees_pending_is_rechecked_until_final(app, client, moncash, recorder):
    moncash.add_payment("c31", "order-c31", 100, message="processing")
    assert client.post("/hooks/moncash", json={"transactionId": "c31"}).status_code == 200
    drain(app, rounds=1)
    moncash.add_payment("c31", "order-c31", 100, message="successful")
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.pending", "callback"),
                                                             ("payment.approved", "poll")]


@pytest.mark.parametrize("route", ["/hooks/moncash", "/return/moncash"])
def test_long_reference_is_400_not_500(app, client, route):
    response = client.get(f"{route}?transactionId={'A' * 101}")
    assert response.status_code == 400 and response.get_json()["error"] == "reference_too_long"


def test_made_up_return_reference_is_never_rechecked(app, client, moncash):
    response = client.get("/return/moncash?transactionId=junk1")
    assert response.status_code == 303 and "/result/pending" in response.headers["Location"]
    drain(app)
    assert hub_of(app).store.list_verifications() == []
    assert moncash.count("/Api/v1/RetrieveTransactionPayment") == 1
    [call] = hub_of(app).store.list_calls()
    assert call["outcome"] == "unknown_transaction"


def test_failing_merchant_hook_costs_a_retry_and_leaks_nothing(make_app, moncash, recorder):
    class Orders:
        @hookimpl
        def hookhub_expected_payment(self, provider, order_id):
            raise RuntimeError("db at postgresql://merchant:hunter2@10.0.0.5/shop unreachable")

    app = make_app(plugins=[recorder, Orders()])
    moncash.add_payment("e1", "order-e", 10)
    response = app.test_client().post("/hooks/moncash", json={"transactionId": "e1"})
    assert response.status_code == 503
    assert "hunter2" not in response.get_data(as_text=True)
    [call] = hub_of(app).store.list_calls()
    assert "hunter2" not in call["error"] and "RuntimeError" in call["error"]
    drain(app)
    assert recorder.events == []


def test_token_revoked_mid_flow_is_renewed_transparently(app, client, moncash, recorder):
    moncash.add_payment("r1", "order-r", 10)
    client.get("/return/moncash?transactionId=r1")
    moncash.revoke_tokens()
    moncash.add_payment("r2", "order-r2", 10)
    client.get("/return/moncash?transactionId=r2")
    drain(app)
    assert len(recorder.events) == 2 and moncash.token_requests == 2


def test_duplicate_of_a_settled_payment_does_not_ask_the_merchant_again(make_app, moncash, recorder):
    asked = []

    class Orders:
        @hookimpl
        def hookhub_expected_payment(self, provider, order_id):
            asked.append(order_id)
            return (1000, "HTG")

    app = make_app(plugins=[recorder, Orders()])
    moncash.add_payment("q1", "order-q", 10)
    client = app.test_client()
    for _ in range(3):
        assert client.post("/hooks/moncash", json={"transactionId": "q1"}).status_code == 200
    assert asked == ["order-q"]
