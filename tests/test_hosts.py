"""Several hosts: two separate gunicorn servers (two "hosts", each with its own workers, instance
folder and handler output) on one PostgreSQL database, called at the same time for the same payments."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import PUBLIC_URL
from servers import wait_for_deliveries

pytestmark = pytest.mark.server


def monri_webhook(monri, event: str, n: int, order: str, **payload) -> tuple[bytes, dict]:
    body = {"id": 80_000 + n, "order_number": order, "amount": 500 + n, "currency": "EUR", "status": "approved",
            "response_code": "0000", "transaction_type": "purchase", **payload}
    raw = json.dumps({"event": event, "payload": body}).encode()
    return raw, monri.callback_headers(raw)


def test_two_hosts_on_one_database_make_one_event_per_transition_and_deliver_each_once(start_host, moncash, monri):
    a, b = start_host("host-a"), start_host("host-b")
    payments = [f"h{n:03d}" for n in range(40)]
    orders = [f"two-hosts-{n:03d}" for n in range(20)]
    for tid in payments:
        moncash.add_payment(tid, f"order-{tid}", 7)

    def fire(call):
        kind, host, n = call
        if kind == "moncash-return":
            url = f"{host.url}/return/moncash?transactionId={payments[n]}"
            return requests.get(url, allow_redirects=False, timeout=30).status_code
        if kind == "moncash-callback":
            return requests.post(f"{host.url}/hooks/moncash", json={"transactionId": payments[n]}, timeout=30).status_code
        if kind == "monri-return":
            query = f"amount={500 + n}&currency=EUR&order_number={orders[n]}&response_code=0000"
            signed = monri.signed_return_url(PUBLIC_URL, query)
            return requests.get(host.url + signed[len(PUBLIC_URL):], allow_redirects=False, timeout=30).status_code
        event = "transaction:purchase:approved" if kind == "monri-approved" else "transaction:refund:approved"
        extra = {} if kind == "monri-approved" else {"id": 90_000 + n, "transaction_type": "refund"}
        raw, headers = monri_webhook(monri, event, n, orders[n], **extra)
        return requests.post(f"{host.url}/hooks/monri", data=raw, headers=headers, timeout=30).status_code

    # The same calls at both hosts at once, three times over: MonCash callbacks and returns that
    # each fetch the payment, and Monri's signed webhooks and returns.
    first = [(kind, host, n) for n in range(len(payments)) for host in (a, b) for kind in ("moncash-return", "moncash-callback")]
    first += [(kind, host, n) for n in range(len(orders)) for host in (a, b) for kind in ("monri-approved", "monri-return")]
    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(fire, first * 3))
    assert Counter(statuses).keys() <= {200, 303}
    # Then every Monri order is refunded, again announced to both hosts at once.
    refunds = [("monri-refund", host, n) for n in range(len(orders)) for host in (a, b)] * 3
    with ThreadPoolExecutor(max_workers=24) as pool:
        assert set(pool.map(fire, refunds)) == {200}

    expected = len(payments) + 2 * len(orders)
    delivered = wait_for_deliveries([a, b], expected, timeout=60)
    with a.store() as store:
        events = store.list_events(limit=1000)
        deliveries = store.list_deliveries()
        outcomes = Counter(c["outcome"] for c in store.list_calls(limit=10_000))
    transitions = Counter((e.provider, e.order_id, e.type) for e in events)
    # A Monri return cannot tell an authorization from a purchase: where one came first, the purchase
    # webhook books the capture it implies, once per order.
    expected += sum(1 for e in events if e.type == "payment.captured")
    delivered = wait_for_deliveries([a, b], expected, timeout=30)
    assert len(events) == expected and set(transitions.values()) == {1}
    assert {(p, t) for p, _, t in transitions} - {("monri", "payment.captured")} == {
        ("moncash", "payment.approved"), ("monri", "payment.approved"), ("monri", "payment.refunded")}
    assert outcomes["event"] == expected
    assert outcomes["duplicate"] + outcomes["stale"] == len(first) * 3 + len(refunds) - expected

    # Each (event, handler) delivered exactly once, by whichever host claimed it.
    assert sorted(e["id"] for e in delivered) == sorted(e.id for e in events)
    assert {(d["status"], d["attempts"]) for d in deliveries} == {("done", 1)}
    assert len(deliveries) == expected


def test_a_host_that_dies_loses_none_of_its_claimed_work(start_host, moncash):
    """Host A is killed with deliveries claimed and running; host B finishes them once their leases end."""
    slow = {"HOOKHUB_TEST_HANDLER_DELAY": "0.3", "HOOKHUB_LEASE_SECONDS": "2", "HOOKHUB_HANDLER_TIMEOUT": "1"}
    a = start_host("host-a", **slow)
    payments = [f"d{n:03d}" for n in range(30)]
    for tid in payments:
        moncash.add_payment(tid, f"order-{tid}", 5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(
            lambda tid: requests.post(f"{a.url}/hooks/moncash", json={"transactionId": tid}, timeout=30).status_code,
            payments))
    assert set(statuses) == {200}
    time.sleep(0.5)
    a.kill_everything()
    with a.store() as store:  # what A held when it died: leased, with nobody left to finish it
        abandoned = [d["event_id"] for d in store.list_deliveries(status="pending") if d["lease_owner"]]
    assert abandoned, "host A should have died in the middle of deliveries"

    b = start_host("host-b", HOOKHUB_LEASE_SECONDS="2", HOOKHUB_HANDLER_TIMEOUT="1")
    deadline = time.monotonic() + 60
    while True:
        with b.store() as store:
            pending = store.list_deliveries(status="pending")
        if not pending:
            break
        assert time.monotonic() < deadline, f"{len(pending)} deliveries never finished after host A died"
        time.sleep(0.2)
    with b.store() as store:
        events = {e.id: e.transaction_id for e in store.list_events(limit=1000)}
    assert sorted(events.values()) == payments
    # Host B delivered A's abandoned claims; nothing was lost, and only what A had started can repeat.
    on_b = {e["id"] for e in b.delivered()}
    assert set(abandoned) <= on_b
    assert set(events) == on_b | {e["id"] for e in a.delivered()}
