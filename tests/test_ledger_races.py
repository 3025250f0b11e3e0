"""The same movement notifications in any order, any number of times, sent at once to two worker
processes of a real gunicorn server, always end in the same ledger: property-based."""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookhub.store import Store
from servers import Gunicorn

pytestmark = pytest.mark.server

# One payment's movements as Monri notifies them: (transaction type, id, amount).
MOVEMENTS = [("authorize", 1, 6000), ("capture", 2, 2500), ("capture", 3, 3500), ("refund", 4, 1000),
             ("refund", 5, 500)]
EXPECTED_EVENTS = {("payment.approved", "1", 6000), ("payment.captured", "2", 2500),
                   ("payment.captured", "3", 3500), ("payment.refunded", "4", 1000), ("payment.refunded", "5", 500)}
_orders = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, moncash_server, monri_server, monext_server):
    env = {}
    if request.param == "postgresql":
        from conftest import new_postgresql_schema

        env["HOOKHUB_DATABASE_URL"] = new_postgresql_schema(request.getfixturevalue("postgresql_database"))
    host = Gunicorn(tmp_path_factory.mktemp(f"ledger-{request.param}"), moncash_server, monri_server,
                    monext_server, workers=2, env=env)
    store = Store(host.database_url)
    yield host, store
    store.close()
    host.close()


def notify(host, monri, order: str, index: int) -> int:
    kind, id, amount = MOVEMENTS[index]
    payload = {"id": id, "order_number": order, "amount": amount, "currency": "EUR", "status": "approved",
               "response_code": "0000", "transaction_type": kind, "created_at": f"2026-11-30T10:00:0{index}Z"}
    raw = json.dumps({"event": f"transaction:{kind}:approved", "payload": payload}).encode()
    return requests.post(f"{host.url}/hooks/monri", data=raw, headers=monri.callback_headers(raw), timeout=30).status_code


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(MOVEMENTS))),
       repeats=st.lists(st.integers(0, len(MOVEMENTS) - 1), max_size=6),
       sides=st.lists(st.booleans(), min_size=len(MOVEMENTS) + 6, max_size=len(MOVEMENTS) + 6))
def test_any_interleaving_and_repetition_books_the_same_ledger(server, monri_server, order, repeats, sides):
    host, store = server
    order_number = f"prop-{next(_orders)}"
    sent = list(order) + repeats
    # Two senders at once, each to whichever worker takes its connection.
    streams = [[i for i, side in zip(sent, sides) if side], [i for i, side in zip(sent, sides) if not side]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda stream: [notify(host, monri_server, order_number, i) for i in stream], streams))
    assert {code for codes in answers for code in codes} == {200}
    deadline = time.monotonic() + 30
    while store.count_accepted():  # answered on record; the servers reconcile them right after
        assert time.monotonic() < deadline, "answered callbacks were not reconciled"
        time.sleep(0.05)
    [payment] = store.payment_ledgers("monri", order_number)
    assert payment["totals"] == {"authorized": 6000, "captured": 6000, "refunded": 1500}
    events = [(e.type, e.transaction_id, e.amount) for e in payment["events"]]
    assert len(events) == len(EXPECTED_EVENTS) and set(events) == EXPECTED_EVENTS
    assert {m["status"] for m in payment["movements"]} == {"booked"}
