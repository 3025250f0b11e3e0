"""Signed callbacks answered once on record and reconciled right after, in batches: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from conftest import Recorder, drain, hub_of
from hookhub import hookimpl
from servers import Gunicorn
from test_monri_flow import callback_body, post_signed



def test_a_signed_callback_is_answered_on_record_and_its_event_made_right_after(make_app, monri):
    recorder = Recorder()
    app = make_app(plugins=[recorder])
    hub = hub_of(app)
    response = post_signed(app.test_client(), monri, callback_body())
    assert response.status_code == 200
    [call] = hub.store.list_calls()
    assert (call["outcome"], call["status_code"], call["event_id"]) == ("accepted", 200, None)
    assert hub.store.count_accepted() == 1 and hub.store.list_events() == []

    drain(app)
    [event] = recorder.events
    [call] = hub.store.list_calls()
    assert (call["outcome"], call["event_id"], call["reference"]) == ("event", event.id, "0d4546c748b9c4f")
    assert (event.type, event.source, event.amount, event.transaction_id) == ("payment.approved", "callback", 100,
                                                                               "996660")
    assert event.received_at == call["received_at"]  # the call's own time, not the reconciliation's
    assert hub.store.get_call(call["id"])["accepted_state"] is None and hub.store.count_accepted() == 0


def test_past_a_backlog_the_background_cannot_keep_up_with_callbacks_are_reconciled_before_the_answer(
        make_app, monri):
    app = make_app()
    hub = hub_of(app)
    hub.pipeline.backlog_limit = 2
    _accept(app, monri, "waiting-1", "waiting-2", "waiting-3")
    hub.pipeline.note_backlog(hub.store.count_accepted())  # as a round of background work does
    assert post_signed(app.test_client(), monri, callback_body(id=6100, order_number="inline")).status_code == 200
    assert {c["reference"]: c["outcome"] for c in hub.store.list_calls()}["inline"] == "event"
    drain(app)  # the backlog is worked off: answering on record again
    assert not hub.pipeline.backlogged
    assert post_signed(app.test_client(), monri, callback_body(id=6101, order_number="again")).status_code == 200
    assert {c["reference"]: c["outcome"] for c in hub.store.list_calls()}["again"] == "accepted"


def test_the_backlog_of_answered_calls_is_a_gauge(make_app, monri):
    from test_metrics_and_logs import scraped

    app = make_app({"HOOKHUB_METRICS_TOKEN": None})
    client = app.test_client()
    _accept(app, monri, "gauged-1", "gauged-2")
    assert scraped(client, "hookhub_accepted_calls") == 2
    assert scraped(client, "hookhub_oldest_accepted_call_age_seconds") > 0
    drain(app)
    assert scraped(client, "hookhub_accepted_calls") == 0
    assert scraped(client, "hookhub_oldest_accepted_call_age_seconds") == 0


def test_one_payments_callbacks_are_reconciled_in_the_order_they_came(make_app, monri):
    """An approval, the same approval again, then its refund, all answered before any is reconciled."""
    recorder = Recorder()
    app = make_app(plugins=[recorder])
    client = app.test_client()
    for body in (callback_body(), callback_body(),
                 callback_body(id=996661, status="approved", transaction_type="refund", amount=40)):
        assert post_signed(client, monri, body).status_code == 200
    assert hub_of(app).pipeline.reconcile_accepted() == 3
    outcomes = [c["outcome"] for c in sorted(hub_of(app).store.list_calls(), key=lambda c: c["id"])]
    assert outcomes == ["event", "duplicate", "event"]
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved", "payment.refunded"]
    assert recorder.events[-1].totals == {"authorized": 100, "captured": 100, "refunded": 40}


def test_callbacks_wait_for_their_reconciliation_where_the_shop_judges_payments(make_app, monri):
    """With a ``hookhub_expected_payment`` hook, a callback's answer says what the shop's judgement
    came to, so it is reconciled before the answer, as with ``HOOKHUB_ANSWER_ON_RECORD`` off."""

    class Expects:
        @hookimpl
        def hookhub_expected_payment(self, provider, order_id):
            return (100, "EUR")

    for app in (make_app(plugins=[Expects()]), make_app({"HOOKHUB_ANSWER_ON_RECORD": False})):
        assert post_signed(app.test_client(), monri, callback_body()).status_code == 200
        [call] = hub_of(app).store.list_calls()
        assert call["outcome"] == "event" and hub_of(app).store.count_accepted() == 0


def test_refused_callbacks_are_never_accepted(make_app, monri):
    app = make_app()
    client = app.test_client()
    raw = json.dumps(callback_body()).encode()
    assert client.post("/hooks/monri", data=raw, headers={"Authorization": "WP3-callback " + "0" * 128}).status_code == 401
    assert hub_of(app).store.count_accepted() == 0
    assert [c["outcome"] for c in hub_of(app).store.list_calls()] == ["invalid_signature"]


@pytest.mark.databases("sqlite", "postgresql")
def test_batches_of_two_processes_reconcile_each_call_once(make_app, monri, database, tmp_path):
    """Two processes reconcile the same backlog at once, on one store: each call once, one event each."""
    shared = {"HOOKHUB_DATABASE_URL": database or f"sqlite:///{tmp_path / 'shared.sqlite'}"}
    first, second = make_app(shared), make_app(shared)
    client = first.test_client()
    for n in range(60):
        assert post_signed(client, monri, callback_body(id=7000 + n, order_number=f"two-{n}")).status_code == 200
    # Every third order's callback comes twice: a duplicate must stay a duplicate across batches.
    for n in range(0, 60, 3):
        assert post_signed(client, monri, callback_body(id=7000 + n, order_number=f"two-{n}")).status_code == 200
    start = threading.Barrier(2)

    def reconcile(app):
        start.wait()
        done = 0
        while (batch := hub_of(app).pipeline.reconcile_accepted(limit=7)):
            done += batch
        return done

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(reconcile, (first, second)))
    store = hub_of(first).store
    assert sum(done) == 80 and store.count_accepted() == 0
    events = store.list_events(limit=1000)
    assert sorted(e.order_id for e in events) == sorted(f"two-{n}" for n in range(60))
    outcomes = [c["outcome"] for c in store.list_calls(limit=1000)]
    assert (outcomes.count("event"), outcomes.count("duplicate")) == (60, 20)


def test_calls_answered_before_the_process_died_are_reconciled_after_it(tmp_path, moncash, monri, monext):
    """Every worker is killed after answering calls it never reconciled (its background work is
    off): the next server makes each answered call's event from the record, exactly once."""
    env = {"HOOKHUB_SCHEDULER": "false"}
    server = Gunicorn(tmp_path, moncash, monri, monext, workers=2, env=env, serve=True)
    orders = [f"killed-{n:03d}" for n in range(40)]

    def fire(n_order):
        n, order = n_order
        raw = json.dumps(callback_body(id=8000 + n, order_number=order)).encode()
        return requests.post(f"{server.url}/hooks/monri", data=raw, headers=monri.callback_headers(raw),
                             timeout=20).status_code

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(fire, enumerate(orders))) == {200}
        with server.store() as store:
            assert store.count_accepted() == len(orders) and store.list_events() == []
    finally:
        server.kill_everything()

    restarted = Gunicorn(tmp_path, moncash, monri, monext, workers=2, log_name="restarted.log", serve=True)
    try:
        delivered = restarted.wait_for_deliveries(len(orders))
        assert sorted(e["order_id"] for e in delivered) == orders
        with restarted.store() as store:
            assert store.count_accepted() == 0
            assert sorted(e.order_id for e in store.list_events(limit=1000)) == orders
    finally:
        restarted.close()


def test_workers_killed_under_load_between_answer_and_reconciliation_lose_nothing(tmp_path, moncash, monri, monext):
    """Under a steady load of signed callbacks, workers are killed again and again, so some die
    between answering calls and reconciling them: after a restart, every call answered 2xx has
    exactly its one event."""
    server = Gunicorn(tmp_path, moncash, monri, monext, workers=2, serve=True)
    orders = [f"load-{n:04d}" for n in range(400)]

    def fire(n_order):
        n, order = n_order
        raw = json.dumps(callback_body(id=9000 + n, order_number=order)).encode()
        try:
            response = requests.post(f"{server.url}/hooks/monri", data=raw, headers=monri.callback_headers(raw),
                                     timeout=20)
        except requests.RequestException:
            return order, None  # the worker died under this request: Monri would call again
        return order, response.status_code

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(fire, item) for item in enumerate(orders)]
            for _ in range(4):
                time.sleep(0.3)
                for pid in server.workers():
                    os.kill(pid, signal.SIGKILL)
            results = [f.result() for f in futures]
        answered = {order for order, status in results if status == 200}
        assert len(answered) >= len(orders) // 4
    finally:
        server.kill_everything()

    restarted = Gunicorn(tmp_path, moncash, monri, monext, workers=2, log_name="restarted.log", serve=True)
    try:
        deadline = time.monotonic() + 60
        with restarted.store() as store:
            while store.count_accepted():
                assert time.monotonic() < deadline, "answered calls were not all reconciled after the restart"
                time.sleep(0.2)
            events = store.list_events(limit=10_000)
        by_order = [e.order_id for e in events]
        assert len(by_order) == len(set(by_order))  # never two events for one order
        assert answered <= set(by_order)  # and every answered call has its event
    finally:
        restarted.close()


def _accept(app, monri, *orders):
    client = app.test_client()
    for n, order in enumerate(orders):
        assert post_signed(client, monri, callback_body(id=6000 + n, order_number=order)).status_code == 200
    return {c["reference"]: c["id"] for c in hub_of(app).store.list_calls()}


def _keep_state(store, call_id, change):
    """Change what a call's kept state says, as a bug or another version could have left it."""
    with store._write() as conn:
        kept = json.loads(conn.execute(text("SELECT accepted_state FROM inbound_calls WHERE id = :id"),
                                       {"id": call_id}).scalar_one())
        change(kept)
        conn.execute(text("UPDATE inbound_calls SET accepted_state = :kept WHERE id = :id"),
                     {"kept": json.dumps(kept), "id": call_id})


def _due_now(store, call_id):
    with store._write() as conn:
        conn.execute(text("UPDATE inbound_calls SET accepted_retry_at = NULL WHERE id = :id"), {"id": call_id})


def test_a_call_whose_reconciliation_fails_is_undone_and_put_off_while_the_rest_go_on(make_app, monri):
    app = make_app()
    store = hub_of(app).store
    ids = _accept(app, monri, "ok-1", "breaks", "ok-2")
    refund = callback_body(id=6900, order_number="breaks", transaction_type="refund", amount=40)
    assert post_signed(app.test_client(), monri, refund).status_code == 200
    refund_id = max(c["id"] for c in store.list_calls())
    # The store refuses the approval's event half way through its reconciliation (after the
    # transaction's row); the refund of the same payment could be written, but must wait its turn.
    with store._write() as conn:
        conn.execute(text("CREATE TRIGGER refuse_breaks BEFORE INSERT ON events WHEN NEW.order_id = 'breaks' "
                          "AND NEW.type = 'payment.approved' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
    assert hub_of(app).pipeline.reconcile_accepted() == 4
    assert sorted(e.order_id for e in store.list_events()) == ["ok-1", "ok-2"]
    assert "waiting for an earlier call" in store.get_call(refund_id)["error"]
    broken = store.get_call(ids["breaks"])
    assert broken["outcome"] == "accepted" and "reconciliation failed" in broken["error"]
    assert broken["accepted_retry_at"] is not None and broken["accepted_state"] is not None
    assert store.get_transaction("monri", "breaks") is None  # nothing of the failed attempt was kept
    assert hub_of(app).pipeline.reconcile_accepted() == 0  # put off: not tried again at once

    with store._write() as conn:
        conn.execute(text("DROP TRIGGER refuse_breaks"))
    _due_now(store, ids["breaks"])
    _due_now(store, refund_id)
    drain(app)
    assert sorted((e.order_id, e.type) for e in store.list_events()) == [
        ("breaks", "payment.approved"), ("breaks", "payment.refunded"), ("ok-1", "payment.approved"),
        ("ok-2", "payment.approved")]
    assert (store.get_call(ids["breaks"])["outcome"], store.get_call(ids["breaks"])["error"]) == ("event", None)


def test_a_kept_state_this_version_cannot_read_holds_up_nothing(make_app, monri):
    app = make_app()
    store = hub_of(app).store
    ids = _accept(app, monri, "fine", "unreadable")
    _keep_state(store, ids["unreadable"], lambda kept: kept["state"].update(status="no-such-status"))
    drain(app)
    assert [e.order_id for e in store.list_events()] == ["fine"]
    assert "kept state unreadable" in store.get_call(ids["unreadable"])["error"]
    assert store.count_accepted() == 1


def test_a_process_without_the_provider_leaves_its_calls_to_one_that_has_it(make_app, monri, tmp_path):
    shared = {"HOOKHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite'}"}
    with_monri, without = make_app(shared), make_app(shared, with_monri=False)
    ids = _accept(with_monri, monri, "elsewhere")
    assert hub_of(without).pipeline.reconcile_accepted() == 0
    drain(without)
    assert hub_of(without).store.get_call(ids["elsewhere"])["outcome"] == "accepted"
    drain(with_monri)
    assert hub_of(with_monri).store.get_call(ids["elsewhere"])["outcome"] == "event"


def test_pruning_keeps_calls_answered_and_not_yet_reconciled(make_app, monri):
    from datetime import datetime, timedelta, timezone

    app = make_app()
    store = hub_of(app).store
    ids = _accept(app, monri, "kept")
    assert store.prune_calls(before=datetime.now(timezone.utc) + timedelta(days=1)) == 0
    assert store.get_call(ids["kept"])["outcome"] == "accepted"
    drain(app)
    assert store.prune_calls(before=datetime.now(timezone.utc) + timedelta(days=1)) == 1
