"""Every money movement is one event: partial captures and refunds, out of order and repeated, through
the app against the loopback fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading

import pytest

from conftest import PUBLIC_URL, drain, hub_of
from hookhub import hookimpl

DATABASES = ("sqlite", "postgresql")


def webhook(client, monri, kind, order, id, amount, *, currency="EUR", status="approved", when=None, **extra):
    """Monri's signed webhook for one transaction of ``order``; hookhub's answer."""
    payload = {"id": id, "order_number": order, "amount": amount, "currency": currency, "status": status,
               "response_code": "0000" if status == "approved" else "1005", "transaction_type": kind,
               "created_at": when or "2026-11-30T10:00:00Z", **extra}
    raw = json.dumps({"event": f"transaction:{kind}:{status}", "payload": payload}).encode()
    return client.post("/hooks/monri", data=raw, headers=monri.callback_headers(raw))


def buyer_return(client, monri, order, amount):
    """The buyer back from Monri's page, approved: a signed return that names no transaction type."""
    query = f"amount={amount}&currency=EUR&order_number={order}&response_code=0000"
    return client.get(monri.signed_return_url(PUBLIC_URL, query)[len(PUBLIC_URL):])


def booked(recorder):
    return [(e.type, e.amount, e.totals) for e in recorder.events]


def totals(authorized=0, captured=0, refunded=0):
    return {"authorized": authorized, "captured": captured, "refunded": refunded}


def ledger(app, provider, order):
    [payment] = hub_of(app).store.payment_ledgers(provider, order)
    return payment


def test_partial_refunds_are_one_event_each_with_the_totals_after_them(app, client, monri, recorder):
    assert webhook(client, monri, "purchase", "order-r", 1, 10000).status_code == 200
    assert webhook(client, monri, "refund", "order-r", 2, 3000, when="2026-11-30T11:00:00Z").status_code == 200
    assert webhook(client, monri, "refund", "order-r", 3, 2000, when="2026-11-30T12:00:00Z").status_code == 200
    assert webhook(client, monri, "refund", "order-r", 3, 2000, when="2026-11-30T12:00:00Z").status_code == 200
    drain(app)
    assert booked(recorder) == [
        ("payment.approved", 10000, totals(10000, 10000)),
        ("payment.refunded", 3000, totals(10000, 10000, 3000)),
        ("payment.refunded", 2000, totals(10000, 10000, 5000)),
    ]
    assert [e.transaction_id for e in recorder.events] == ["1", "2", "3"]
    payment = ledger(app, "monri", "order-r")
    assert payment["status"] == "approved"  # partly refunded never looks refunded
    assert [c["outcome"] for c in reversed(hub_of(app).store.list_calls())] == ["event", "event", "event", "duplicate"]


def test_a_payment_refunded_in_full_is_refunded(app, client, monri, recorder):
    webhook(client, monri, "purchase", "order-f", 1, 5000)
    webhook(client, monri, "refund", "order-f", 2, 2000)
    webhook(client, monri, "refund", "order-f", 3, 3000)
    drain(app)
    assert ledger(app, "monri", "order-f")["status"] == "refunded"
    assert recorder.events[-1].totals == totals(5000, 5000, 5000)


def test_partial_captures_of_an_authorization(app, client, monri, recorder):
    webhook(client, monri, "authorize", "order-c", 10, 6000)
    webhook(client, monri, "capture", "order-c", 11, 2500)
    webhook(client, monri, "capture", "order-c", 12, 3500)
    webhook(client, monri, "capture", "order-c", 11, 2500)  # notified again
    drain(app)
    assert booked(recorder) == [
        ("payment.approved", 6000, totals(6000)),
        ("payment.captured", 2500, totals(6000, 2500)),
        ("payment.captured", 3500, totals(6000, 6000)),
    ]


def test_out_of_order_notifications_end_in_the_same_ledger(app, client, monri, recorder):
    # The refund and a capture are heard of before the authorization they belong to.
    assert webhook(client, monri, "refund", "order-o", 23, 1000).status_code == 200
    assert webhook(client, monri, "capture", "order-o", 22, 4000).status_code == 200
    drain(app)
    assert recorder.events == []
    held = ledger(app, "monri", "order-o")
    assert [(m["kind"], m["status"]) for m in held["movements"]] == [("refund", "held"), ("capture", "held")]
    assert held["status"] == "pending"  # held movements earn the payment nothing: a watch keeps asking
    assert webhook(client, monri, "authorize", "order-o", 21, 4000).status_code == 200
    drain(app)
    assert booked(recorder) == [
        ("payment.approved", 4000, totals(4000)),
        ("payment.captured", 4000, totals(4000, 4000)),
        ("payment.refunded", 1000, totals(4000, 4000, 1000)),
    ]
    assert {m["status"] for m in ledger(app, "monri", "order-o")["movements"]} == {"booked"}


def test_a_refund_racing_the_approval_books_once(make_app, monri, url):
    seen = []

    class Shop:
        @hookimpl
        def hookhub_handle_event(self, event):
            seen.append((event.type, event.amount))

    app = make_app({"HOOKHUB_DATABASE_URL": url}, plugins=[Shop()])
    calls = [("purchase", 31, 8000), ("refund", 32, 500), ("refund", 33, 700)] * 4
    barrier = threading.Barrier(len(calls))

    def send(call):
        barrier.wait()
        kind, id, amount = call
        assert webhook(app.test_client(), monri, kind, "order-race", id, amount).status_code == 200

    threads = [threading.Thread(target=send, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain(app)
    assert sorted(seen) == [("payment.approved", 8000), ("payment.refunded", 500), ("payment.refunded", 700)]
    assert ledger(app, "monri", "order-race")["totals"] == totals(8000, 8000, 1200)


def test_a_return_that_cannot_tell_then_a_capture(app, client, monri, recorder):
    # Monri's return does not say whether the payment was authorized only or paid in one step.
    assert buyer_return(client, monri, "order-ret", 6000).status_code == 303
    webhook(client, monri, "authorize", "order-ret", 81, 6000)
    webhook(client, monri, "capture", "order-ret", 82, 2500)
    drain(app)
    assert booked(recorder) == [("payment.approved", 6000, totals(6000)), ("payment.captured", 2500, totals(6000, 2500))]


def test_a_purchase_heard_of_first_through_its_return_is_captured_once(app, client, monri, recorder):
    assert buyer_return(client, monri, "order-ret2", 3000).status_code == 303
    webhook(client, monri, "purchase", "order-ret2", 91, 3000)
    webhook(client, monri, "purchase", "order-ret2", 91, 3000)
    webhook(client, monri, "refund", "order-ret2", 92, 1000)
    drain(app)
    assert booked(recorder) == [("payment.approved", 3000, totals(3000)), ("payment.captured", 3000, totals(3000, 3000)),
                                ("payment.refunded", 1000, totals(3000, 3000, 1000))]


def test_an_authorization_is_voided_once_and_nothing_is_captured_after(app, client, monri, recorder):
    webhook(client, monri, "authorize", "order-v", 101, 5000)
    webhook(client, monri, "void", "order-v", 102, 5000)
    webhook(client, monri, "capture", "order-v", 103, 1000)
    webhook(client, monri, "void", "order-v", 104, 5000)
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved", "payment.canceled"]
    payment = ledger(app, "monri", "order-v")
    assert payment["status"] == "canceled" and payment["totals"] == totals(5000)
    assert [m["note"] for m in payment["movements"] if m["status"] == "held"] == ["the authorization was voided"]


# -- bad input: never an event that makes the totals wrong --------------------------------------------


def test_a_refund_larger_than_captured_is_acknowledged_and_held(app, client, monri, recorder):
    webhook(client, monri, "purchase", "order-big", 41, 1000)
    assert webhook(client, monri, "refund", "order-big", 42, 1500).status_code == 200  # Monri's word: stop retrying
    drain(app)
    assert booked(recorder) == [("payment.approved", 1000, totals(1000, 1000))]
    [_, refund] = ledger(app, "monri", "order-big")["movements"]
    assert refund["status"] == "held" and "exceed the 1000 captured" in refund["note"]
    assert hub_of(app).store.list_calls()[0]["outcome"] == "held"


def test_a_movement_in_another_currency_is_held(app, client, monri, recorder):
    webhook(client, monri, "purchase", "order-cur", 51, 1000)
    assert webhook(client, monri, "refund", "order-cur", 52, 100, currency="USD").status_code == 200
    drain(app)
    assert len(recorder.events) == 1
    assert "in USD, the payment is in EUR" in ledger(app, "monri", "order-cur")["movements"][1]["note"]


@pytest.mark.parametrize("overrides,code", [
    ({"amount": -500}, "invalid_amount"),
    ({"amount": 0}, "unusable_content"),
    ({"id": None}, "missing_id"),
], ids=["negative", "zero", "no-id"])
def test_a_malformed_signed_refund_is_a_400_and_changes_nothing(app, client, monri, recorder, overrides, code):
    webhook(client, monri, "purchase", "order-bad", 61, 1000)
    body = {"id": 62, "amount": 300, **overrides}
    response = webhook(client, monri, "refund", "order-bad", body["id"], body["amount"])
    assert (response.status_code, response.get_json()["error"]) == (400, code)
    drain(app)
    assert booked(recorder) == [("payment.approved", 1000, totals(1000, 1000))]
    assert ledger(app, "monri", "order-bad")["totals"] == totals(1000, 1000)


# -- other providers ---------------------------------------------------------------------------------


def test_a_monext_installment_order_is_one_approval_and_a_capture_per_part(make_app, monext, recorder):
    class Prices:
        @hookimpl
        def hookhub_expected_payment(self, provider, order_id):
            return (9000, "EUR")

    app = make_app(plugins=[recorder, Prices()])
    client = app.test_client()
    session = monext.open_session("order-inst", 9000)
    monext.pay_in_installments(session, [3000, 3000, 3000], paid=1)
    assert client.get(f"/hooks/monext?token={session}").status_code == 200
    monext.pay_next_installment(session)
    assert client.get(f"/hooks/monext?token={session}").status_code == 200
    drain(app)
    assert booked(recorder) == [
        ("payment.approved", 9000, totals(9000)),
        ("payment.captured", 3000, totals(9000, 3000)),
        ("payment.captured", 3000, totals(9000, 6000)),
    ]


def test_payments_show_lists_movements_totals_and_events(app, client, monri):
    webhook(client, monri, "purchase", "order-show", 71, 4000)
    webhook(client, monri, "refund", "order-show", 72, 1000)
    webhook(client, monri, "refund", "order-show", 73, 9000)  # held: more than was captured
    drain(app)  # signed callbacks are answered on record and reconciled right after
    shown = app.test_cli_runner().invoke(args=["hookhub", "payments", "show", "monri", "order-show"])
    assert shown.exit_code == 0, shown.output
    assert "approved, EUR authorized 4000, captured 4000, refunded 1000" in shown.output
    assert "held: refunds would exceed the 4000 captured" in shown.output
    assert shown.output.count("payment.refunded") == 1
    as_json = json.loads(app.test_cli_runner().invoke(
        args=["hookhub", "payments", "show", "monri", "order-show", "--json"]).output)
    assert [m["kind"] for m in as_json[0]["movements"]] == ["payment", "refund", "refund"]
    missing = app.test_cli_runner().invoke(args=["hookhub", "payments", "show", "monri", "order-none"])
    assert missing.exit_code == 1 and "no monri payment of order 'order-none'" in missing.output
