"""hookhub under a real ``gunicorn wsgi:app`` with several workers, against the fake providers."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import PUBLIC_URL
from servers import Gunicorn

pytestmark = pytest.mark.server


@pytest.fixture(params=[(), ("--preload",)], ids=["plain", "preload"])
def server(request, tmp_path, moncash, monri, monext):
    gunicorn = Gunicorn(tmp_path, moncash, monri, monext, options=request.param)
    yield gunicorn
    gunicorn.close()


def test_return_and_callback_make_exactly_one_approved_event(server, moncash):
    moncash.add_payment("12874820", "1559796839", 10)
    returned = requests.get(f"{server.url}/return/moncash?transactionId=12874820", allow_redirects=False)
    called = requests.post(f"{server.url}/hooks/moncash", json={"transactionId": "12874820"})
    assert returned.status_code == 303 and "/result/success?result=" in returned.headers["Location"]
    assert called.status_code == 200

    [event] = server.wait_for_deliveries(1)
    assert (event["type"], event["order_id"], event["transaction_id"]) == ("payment.approved", "1559796839", "12874820")
    assert (event["amount"], event["currency"], event["provider"]) == (1000, "HTG", "moncash")


def test_concurrent_returns_and_callbacks_make_one_event_per_transaction(server, moncash):
    transactions = [f"9{n:04d}" for n in range(20)]
    for n, tid in enumerate(transactions):
        moncash.add_payment(tid, f"order-{tid}", 100 + n)

    def fire(args):
        kind, tid = args
        if kind == "return":
            return requests.get(f"{server.url}/return/moncash?transactionId={tid}", allow_redirects=False).status_code
        return requests.post(f"{server.url}/hooks/moncash", json={"transactionId": tid}).status_code

    calls = [(kind, tid) for tid in transactions for kind in ("return", "callback") * 4]
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(fire, calls))
    assert sorted(set(statuses)) == [200, 303]

    delivered = server.wait_for_deliveries(len(transactions))
    assert sorted(e["transaction_id"] for e in delivered) == transactions
    assert {e["type"] for e in delivered} == {"payment.approved"}
    with server.store() as store:
        assert len(store.list_events(limit=1000)) == len(transactions)
        assert {d["status"] for d in store.list_deliveries()} == {"done"}
        outcomes = [c["outcome"] for c in store.list_calls(limit=1000)]
        assert outcomes.count("event") == len(transactions)
        assert outcomes.count("duplicate") == len(calls) - len(transactions)


def test_outage_during_return_is_confirmed_in_the_background(server, moncash):
    moncash.add_payment("70001", "order-70001", 10)
    moncash.outage = True
    returned = requests.get(f"{server.url}/return/moncash?transactionId=70001", allow_redirects=False)
    assert "/result/pending?result=" in returned.headers["Location"]
    time.sleep(0.5)
    assert server.delivered() == []
    moncash.outage = False
    [event] = server.wait_for_deliveries(1)
    assert (event["type"], event["source"]) == ("payment.approved", "poll")


def test_chunked_body_over_the_limit_is_413_not_truncated(server, moncash):
    moncash.add_payment("c1", "order-c1", 10)

    def chunks(total):
        body = b"transactionId=c1&pad=" + b"x" * total
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    too_big = requests.post(f"{server.url}/hooks/moncash", data=chunks(100_000), headers=headers)
    assert too_big.status_code == 413 and too_big.json()["error"] == "body_too_large"
    fits = requests.post(f"{server.url}/hooks/moncash", data=chunks(1000), headers=headers)
    assert fits.status_code == 200
    [event] = server.wait_for_deliveries(1)
    assert event["transaction_id"] == "c1"


def test_monri_callbacks_and_returns_racing_make_one_event_per_order(server, monri):
    orders = [f"race-order-{n:03d}" for n in range(10)]

    def fire(args):
        kind, n, order = args
        if kind == "callback":
            raw = json.dumps({"id": 5000 + n, "order_number": order, "amount": 100 + n, "currency": "EUR",
                              "status": "approved", "response_code": "0000",
                              "transaction_type": "purchase"}).encode()
            return requests.post(f"{server.url}/hooks/monri", data=raw, headers=monri.callback_headers(raw)).status_code
        query = f"amount={100 + n}&currency=EUR&order_number={order}&response_code=0000"
        signed = monri.signed_return_url(PUBLIC_URL, query)
        return requests.get(server.url + signed[len(PUBLIC_URL):], allow_redirects=False).status_code

    calls = [(kind, n, order) for n, order in enumerate(orders) for kind in ("callback", "return") * 3]
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(fire, calls))
    assert sorted(set(statuses)) == [200, 303]

    delivered = server.wait_for_deliveries(len(orders))
    approved = [e for e in delivered if e["type"] == "payment.approved"]
    assert sorted(e["order_id"] for e in approved) == orders
    assert sorted(e["amount"] for e in approved) == [100 + n for n in range(10)]
    # A return cannot tell an authorization from a purchase: where it came first, the purchase
    # callback books the capture it implies, once.
    captured = [e for e in delivered if e["type"] == "payment.captured"]
    assert len({e["order_id"] for e in captured}) == len(captured)
    assert all(e["totals"]["captured"] == e["totals"]["authorized"] == e["amount"] for e in captured)
    assert {e["type"] for e in delivered} <= {"payment.approved", "payment.captured"}


def test_monext_notifications_and_returns_racing_make_one_event_per_session(server, monext):
    sessions = [monext.open_session(f"mx-order-{n:03d}", 700 + n) for n in range(10)]
    transactions = {sid: monext.settle(sid, "ACCEPTED") for sid in sessions}

    def fire(args):
        kind, session_id = args
        if kind == "notification":
            response = requests.get(f"{server.url}/hooks/monext?token={session_id}&notificationType=WEBTRS")
            assert response.content == b""
            return response.status_code
        name = "paylinetoken" if kind == "return" else "monext_session_id"
        return requests.get(f"{server.url}/return/monext?{name}={session_id}", allow_redirects=False).status_code

    calls = [(kind, sid) for sid in sessions for kind in ("notification", "return", "newer-return") * 3]
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(fire, calls))
    assert sorted(set(statuses)) == [200, 303]

    delivered = server.wait_for_deliveries(len(sessions))
    assert sorted(e["order_id"] for e in delivered) == [f"mx-order-{n:03d}" for n in range(10)]
    assert all(e["type"] == "payment.approved" and e["provider"] == "monext" for e in delivered)
    assert {e["order_id"]: e["transaction_id"] for e in delivered} == {
        f"mx-order-{n:03d}": transactions[sid] for n, sid in enumerate(sessions)}
    with server.store() as store:
        outcomes = [c["outcome"] for c in store.list_calls(limit=1000)]
        assert outcomes.count("event") == len(sessions)
        assert outcomes.count("duplicate") == len(calls) - len(sessions)


def test_hundreds_of_callback_and_return_rounds_make_one_event_each(server, moncash):
    transactions = [f"r{n:04d}" for n in range(300)]
    for tid in transactions:
        moncash.add_payment(tid, f"order-{tid}", 1)

    def fire(args):
        kind, tid = args
        if kind == "return":
            return requests.get(f"{server.url}/return/moncash?transactionId={tid}", allow_redirects=False).status_code
        return requests.post(f"{server.url}/hooks/moncash", json={"transactionId": tid}).status_code

    # Each round fires a transaction's callback and return together, while other rounds run beside.
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(fire, [(kind, tid) for tid in transactions for kind in ("callback", "return")]))
    assert sorted(set(statuses)) == [200, 303]

    delivered = server.wait_for_deliveries(len(transactions), timeout=60)
    assert sorted(e["transaction_id"] for e in delivered) == transactions
    with server.store() as store:
        assert len(store.list_events(limit=1000)) == len(transactions)


def test_workers_killed_mid_request_lose_nothing_that_was_acknowledged(tmp_path, moncash, monri, monext):
    env = {"HOOKHUB_LEASE_SECONDS": "2", "HOOKHUB_HANDLER_TIMEOUT": "1", "HOOKHUB_TEST_HANDLER_DELAY": "0.02"}
    server = Gunicorn(tmp_path, moncash, monri, monext, workers=2, env=env)
    transactions = [f"k{n:04d}" for n in range(150)]
    for tid in transactions:
        moncash.add_payment(tid, f"order-{tid}", 3)

    def fire(tid):
        try:
            response = requests.post(f"{server.url}/hooks/moncash", json={"transactionId": tid}, timeout=20)
        except requests.RequestException:
            return tid, None  # the worker died under this request: the provider would retry
        return tid, response.status_code

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(fire, tid) for tid in transactions]
            for _ in range(3):
                time.sleep(0.25)
                os.kill(server.workers()[0], signal.SIGKILL)
            results = [f.result() for f in futures]
        acknowledged = {tid for tid, status in results if status == 200}
        assert len(acknowledged) >= len(transactions) // 3
    finally:
        server.kill_everything()  # and then the whole host goes down, deliveries in flight

    restarted = Gunicorn(tmp_path, moncash, monri, monext, workers=2, env=env, log_name="restarted.log")
    try:
        deadline = time.monotonic() + 60
        while not acknowledged <= {e["transaction_id"] for e in restarted.delivered()}:
            assert time.monotonic() < deadline, "acknowledged calls were not all delivered after the restart"
            time.sleep(0.2)
        with restarted.store() as store:
            events = store.list_events(limit=1000)
            by_transaction = {e.transaction_id: e.id for e in events}
            assert len(by_transaction) == len(events)  # never two events for one payment
            assert acknowledged <= set(by_transaction)
            # Redeliveries after a kill are allowed (at least once) but always carry the same event id.
            assert all(by_transaction[e["transaction_id"]] == e["id"] for e in restarted.delivered())
    finally:
        restarted.close()
