"""Faults caused for real in one process: a locked or broken store, and stale or out-of-order answers."""

from __future__ import annotations

import json
import sqlite3
import time

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import drain, hub_of
from test_monri_flow import callback_body, get_return, return_query
from hookhub.states import FINAL_STATUSES, PAYMENT_STATUSES, is_transition


def database_path(app) -> str:
    return hub_of(app).store.engine.url.database


def test_locked_store_answers_503_and_never_a_200(make_app, recorder, moncash):
    app = make_app({"HOOKHUB_STORE_TIMEOUT": 0.2}, plugins=[recorder])
    client = app.test_client()
    moncash.add_payment("locked-1", "order-locked", 10)
    holder = sqlite3.connect(database_path(app), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock past the timeout
    try:
        response = client.post("/hooks/moncash", json={"transactionId": "locked-1"})
        assert response.status_code == 503 and response.get_json()["error"] == "store_unavailable"
        assert response.headers["Retry-After"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.post("/hooks/moncash", json={"transactionId": "locked-1"}).status_code == 200
    drain(app)
    assert [e.transaction_id for e in recorder.events] == ["locked-1"]
    assert [c["outcome"] for c in hub_of(app).store.list_calls()] == ["event"]  # the 503 left nothing


@pytest.mark.databases("postgresql")
def test_a_transaction_locked_past_the_timeout_answers_503_on_postgresql(make_app, recorder, moncash, database):
    """Another host holds this transaction's row lock too long: the call is recorded, then refused with 503."""
    app = make_app({"HOOKHUB_STORE_TIMEOUT": 0.3}, plugins=[recorder])
    client = app.test_client()
    moncash.add_payment("locked-2", "order-locked-2", 10)
    with psycopg.connect(database) as holder:
        holder.execute("INSERT INTO transaction_locks (provider, key) VALUES ('moncash', 'locked-2')")
        holder.commit()
        holder.execute("SELECT * FROM transaction_locks WHERE key = 'locked-2' FOR UPDATE")
        response = client.post("/hooks/moncash", json={"transactionId": "locked-2"})
        assert response.status_code == 503 and response.get_json()["error"] == "store_unavailable"
        assert response.headers["Retry-After"]
        [call] = hub_of(app).store.list_calls()  # other transactions go on: the call was recorded
        assert (call["outcome"], call["status_code"]) == ("store_unavailable", 503)
        assert call["error"] and hub_of(app).store.list_events() == []
    assert client.post("/hooks/moncash", json={"transactionId": "locked-2"}).status_code == 200
    drain(app)
    assert [e.transaction_id for e in recorder.events] == ["locked-2"]


@pytest.mark.databases("postgresql")
def test_a_store_failure_after_the_outcome_is_committed_records_the_call_once(make_app, recorder, monri, database):
    """A pending Monri return is reconciled, then its re-check cannot be scheduled (the table is
    locked past the timeout): the buyer gets 503, and the call stays on record once, as decided."""
    app = make_app({"HOOKHUB_STORE_TIMEOUT": 0.3}, plugins=[recorder])
    with psycopg.connect(database) as holder:
        holder.execute("LOCK TABLE verifications IN ACCESS EXCLUSIVE MODE")
        response = get_return(app.test_client(), monri, return_query(response_code="pending"))
        assert response.status_code == 503
    [call] = hub_of(app).store.list_calls()
    assert (call["outcome"], call["status_code"]) == ("event", 303) and call["event_id"]


def test_a_locked_store_answers_503_within_its_timeout_once(make_app, recorder, monri, tmp_path):
    """The call's failure is recorded only briefly after the store timed out: the caller waits
    for the store once (a bound on waiting, not a speed goal)."""
    database = tmp_path / "locked.sqlite"
    app = make_app({"HOOKHUB_DATABASE_URL": f"sqlite:///{database}", "HOOKHUB_STORE_TIMEOUT": 1.0},
                   plugins=[recorder])
    raw = json.dumps(callback_body(order_number="locked-3")).encode()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = app.test_client().post("/hooks/monri", data=raw, headers=monri.callback_headers(raw))
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503 and 1.0 <= waited < 1.8


def test_broken_store_answers_503_on_every_route(make_app, recorder, moncash):
    app = make_app(plugins=[recorder])
    client = app.test_client()
    hub_of(app).store.engine.dispose()
    with open(database_path(app), "r+b") as handle:  # the disk under the store gives garbage
        handle.write(b"this is no longer a database" * 100)
    for method, path in (("post", "/hooks/moncash"), ("get", "/return/moncash?transactionId=1"),
                         ("get", "/healthz")):
        response = getattr(client, method)(path, json={"transactionId": "1"} if method == "post" else None)
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        assert b"Traceback" not in response.data and b"sqlite" not in response.data.lower()


def test_stale_and_out_of_order_answers_never_move_a_payment_back(app, client, moncash, recorder):
    moncash.add_payment("ooo-1", "order-ooo", 100, message="successful")
    client.get("/return/moncash?transactionId=ooo-1")
    for message in ("processing", "failed", "processing"):  # answers from before the approval, late
        moncash.add_payment("ooo-1", "order-ooo", 100, message=message)
        assert client.post("/hooks/moncash", json={"transactionId": "ooo-1"}).status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved"]
    assert [c["outcome"] for c in reversed(hub_of(app).store.list_calls())] == ["event", "stale", "stale", "stale"]
    assert hub_of(app).store.get_transaction("moncash", "ooo-1").status == "approved"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PAYMENT_STATUSES), max_size=12))
def test_state_machine_only_moves_forward(answers):
    current, events = None, []
    for status in answers:
        if is_transition(current, status):
            events.append(status)
            current = status
    # Nothing ever leaves a final state, approved never goes back to pending or declined,
    # and no status makes two events in a row.
    for before, after in zip(events, events[1:]):
        assert before not in FINAL_STATUSES
        assert before != after
        assert not (before in ("approved", "mismatch") and after in ("pending", "declined", "approved", "mismatch"))
        assert after != "pending"
    if events:
        assert events.count("pending") <= 1 and (events[0] == "pending" or "pending" not in events)
