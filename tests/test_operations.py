"""Operator commands (``hookhub ...`` / ``flask --app wsgi hookhub ...``), dead letters, replays, and
handlers that fail or hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest

from conftest import SECRET_KEY, Recorder, drain, hub_of, moncash_config
from hookhub import hookimpl
from hookhub.delivery import Deliverer
from hookhub.errors import StoreUnavailable
from hookhub.store import Store

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql")


def run(app, *args):
    result = app.test_cli_runner().invoke(args=["hookhub", *args])
    return result


class Flaky:
    """A second handler, failing until told otherwise."""

    def __init__(self):
        self.failing = True
        self.seen = []

    @hookimpl
    def hookhub_handle_event(self, event):
        if self.failing:
            raise ValueError(f"flaky handler refuses {event.id}")
        self.seen.append(event.id)


@pytest.fixture
def two_handlers(make_app):
    good, flaky = Recorder(), Flaky()
    app = make_app({"HOOKHUB_DELIVERY_MAX_ATTEMPTS": 2}, plugins=[good, flaky])
    return app, good, flaky


def pay(app, moncash, tid="5001", order="order-ops"):
    moncash.add_payment(tid, order, 25)
    response = app.test_client().post("/hooks/moncash", json={"transactionId": tid})
    assert response.status_code == 200
    drain(app)


def test_one_failing_handler_neither_blocks_nor_reruns_the_other(two_handlers, moncash):
    app, good, flaky = two_handlers
    pay(app, moncash)
    [event] = good.events
    states = {d["handler"]: (d["status"], d["attempts"]) for d in hub_of(app).store.list_deliveries()}
    assert states == {"conftest.Recorder": ("done", 1), "test_operations.Flaky": ("dead", 2)}
    dead = hub_of(app).store.list_deliveries(status="dead")[0]
    assert "ValueError: flaky handler refuses" in dead["last_error"] and "Traceback" in dead["last_error"]


def test_dead_letters_are_listed_and_replayed_to_the_failed_handler_only(two_handlers, moncash):
    app, good, flaky = two_handlers
    pay(app, moncash)
    [event] = good.events

    listed = run(app, "deliveries", "dead")
    assert listed.exit_code == 0 and event.id in listed.output and "ValueError: flaky handler refuses" in listed.output
    dead_id = hub_of(app).store.list_deliveries(status="dead")[0]["id"]
    shown = json.loads(run(app, "deliveries", "show", str(dead_id)).output)
    assert shown["status"] == "dead" and shown["last_error"].startswith("Traceback")
    assert run(app, "deliveries", "show", "424242").exit_code == 1

    flaky.failing = False
    replayed = run(app, "events", "replay", "--failed")
    assert replayed.exit_code == 0, replayed.output
    assert "1 deliveries due again" in replayed.output and "1 delivered, 0 failed again" in replayed.output
    assert flaky.seen == [event.id] and good.events == [event]  # the good handler was not called again
    assert {d["status"] for d in hub_of(app).store.list_deliveries()} == {"done"}


def test_replay_one_event_since_a_time_and_for_one_handler(two_handlers, moncash):
    app, good, flaky = two_handlers
    flaky.failing = False
    pay(app, moncash, "6001", "order-a")
    pay(app, moncash, "6002", "order-b")
    first, second = good.events

    assert run(app, "events", "replay", first.id, "--handler", "conftest.Recorder").exit_code == 0
    assert [e.id for e in good.events] == [first.id, second.id, first.id]
    assert flaky.seen == [first.id, second.id]

    assert run(app, "events", "replay", "--since", "1h", "--schedule-only").output.startswith("4 deliveries due")
    drain(app)
    assert len(good.events) == 5 and len(flaky.seen) == 4
    assert run(app, "events", "replay", "--since", "2999-01-01T00:00:00Z").output.startswith("0 deliveries")

    refused = run(app, "events", "replay", "evt_nope")
    assert refused.exit_code != 0 and "no such event: evt_nope" in refused.output
    assert run(app, "events", "replay").exit_code == 2  # says which to replay, or nothing happens
    assert "no handler" in run(app, "events", "replay", first.id, "--handler", "nobody").output


def test_lists_and_shows_with_filters(app, client, moncash, recorder):
    pay(app, moncash, "7001", "order-list")
    client.get("/return/moncash?transactionId=bad%20id")
    drain(app)
    [event] = recorder.events

    listed = run(app, "events", "list", "--provider", "moncash", "--type", "payment.approved")
    assert event.id in listed.output and "order=order-list" in listed.output
    assert run(app, "events", "list", "--type", "payment.refunded").output == ""
    shown = json.loads(run(app, "events", "show", event.id).output)
    assert shown["event"]["amount"] == 2500 and shown["deliveries"][0]["status"] == "done"
    as_json = json.loads(run(app, "events", "list", "--json").output)
    assert [e["id"] for e in as_json] == [event.id]

    calls = run(app, "calls", "list", "--outcome", "malformed_reference")
    assert "return" in calls.output and "moncash" in calls.output and "event" not in calls.output
    call_id = hub_of(app).store.list_calls(outcome="event")[0]["id"]
    detail = json.loads(run(app, "calls", "show", str(call_id)).output)
    assert json.loads(detail["body"]) == {"transactionId": "7001"} and detail["outcome"] == "event"
    assert run(app, "deliveries", "list", "--status", "done").output.count(event.id) == 1
    assert run(app, "calls", "show", "999999").exit_code != 0
    for bad in ("yesterday", "²h", "99999999999d"):
        refused = run(app, "events", "list", "--since", bad)
        assert refused.exit_code == 2 and "neither an ISO 8601 time" in refused.output


def test_rerun_verifies_a_recorded_call_again(make_app, recorder, moncash, monri):
    app = make_app(plugins=[recorder])
    client = app.test_client()
    moncash.add_payment("8001", "order-rerun", 10)
    moncash.outage = True
    assert client.post("/hooks/moncash", json={"transactionId": "8001"}).status_code == 503
    moncash.outage = False
    failed_call = hub_of(app).store.list_calls()[0]

    result = run(app, "calls", "rerun", str(failed_call["id"]))
    assert result.exit_code == 0, result.output
    assert "outcome=event status=approved" in result.output
    drain(app)
    [event] = recorder.events
    assert event.source == "replay"
    assert "outcome=duplicate" in run(app, "calls", "rerun", str(failed_call["id"])).output
    newest = hub_of(app).store.list_calls()[0]
    assert newest["peer"] == f"replay of call {failed_call['id']}"

    raw = json.dumps({"order_number": "o-monri", "amount": 100, "currency": "EUR", "status": "approved",
                      "response_code": "0000", "transaction_type": "purchase", "id": 1}).encode()
    assert client.post("/hooks/monri", data=raw, headers=monri.callback_headers(raw)).status_code == 200
    signed_call = hub_of(app).store.list_calls()[0]
    refused = run(app, "calls", "rerun", str(signed_call["id"]))
    assert refused.exit_code != 0 and "invalid_signature" in refused.output


def wait_until(condition, app, timeout=10.0):
    """Run background work until ``condition()`` holds (a bound on waiting, not a speed goal)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background work did not get there"
        hub_of(app).run_due_work()
        time.sleep(0.02)


class Hangs:
    """A handler whose first call hangs until released, then returns or raises."""

    def __init__(self, then_raise=False):
        self.release = threading.Event()
        self.then_raise = then_raise
        self.calls = 0
        self.running = 0
        self.most_at_once = 0

    @hookimpl
    def hookhub_handle_event(self, event):
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.calls == 1:
                self.release.wait(30)
                if self.then_raise:
                    raise TimeoutError("the ledger never answered")
        finally:
            self.running -= 1


def hung_delivery(app):
    return next(d for d in hub_of(app).store.list_deliveries() if d["handler"].endswith("Hangs"))


def test_hanging_handler_is_cut_off_and_its_late_success_recorded(make_app, moncash):
    hangs, other = Hangs(), Recorder()
    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.2}, plugins=[hangs, other])
    pay(app, moncash, "9001", "order-hang")

    assert len(other.events) == 1  # the other handler was not held up
    overdue = hung_delivery(app)
    assert overdue["status"] == "pending" and "did not return within 0.2s; still running" in overdue["last_error"]
    assert overdue["lease_until"] is not None  # kept: nobody starts it again beside the running call
    hangs.release.set()
    wait_until(lambda: hung_delivery(app)["status"] == "done", app)
    assert (hangs.calls, hangs.most_at_once, hung_delivery(app)["attempts"]) == (1, 1, 1)


def test_hanging_handler_that_then_fails_is_retried(make_app, moncash):
    hangs = Hangs(then_raise=True)
    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.2}, plugins=[hangs])
    pay(app, moncash, "9002", "order-hang-2")
    assert hangs.calls == 1
    hangs.release.set()
    wait_until(lambda: hung_delivery(app)["status"] == "done", app)
    assert (hangs.calls, hangs.most_at_once, hung_delivery(app)["attempts"]) == (2, 1, 2)


def test_handler_stuck_for_a_whole_lease_is_given_up_and_retried(make_app, moncash):
    hangs = Hangs()
    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.1, "HOOKHUB_LEASE_SECONDS": 0.3}, plugins=[hangs])
    try:
        pay(app, moncash, "9003", "order-stuck")
        wait_until(lambda: hung_delivery(app)["status"] == "done", app)
        assert (hangs.calls, hung_delivery(app)["attempts"]) == (2, 2)
    finally:
        hangs.release.set()


class Timed:
    """A handler that takes ``seconds[i]`` on its i-th call (the last value after that), noting who ran what."""

    def __init__(self, who, seconds, log):
        self.who, self.seconds, self.log = who, seconds, log

    @hookimpl
    def hookhub_handle_event(self, event):
        calls = sum(1 for who, _ in self.log if who == self.who)
        self.log.append((self.who, event.id))
        time.sleep(self.seconds[min(calls, len(self.seconds) - 1)])


def two_processes(make_app, database, tmp_path, first_seconds, config):
    log = []
    shared = {"HOOKHUB_DATABASE_URL": database or f"sqlite:///{tmp_path / 'shared.sqlite'}", **config}
    first = make_app(shared, plugins=[Timed("first", first_seconds, log)])
    second = make_app(shared, plugins=[Timed("second", [0.01], log)])
    return first, second, log


def work_beside(first, second, payments, moncash, prefix):
    """Record ``payments`` paid MonCash callbacks, then run one round of ``first``'s background
    work; once it has claimed its batch, ``second`` polls for work all along, as another process would."""
    for i in range(payments):
        moncash.add_payment(f"{prefix}{i}", f"order-{prefix}-{i}", 25)
        assert first.test_client().post("/hooks/moncash", json={"transactionId": f"{prefix}{i}"}).status_code == 200
    batch = threading.Thread(target=hub_of(first).run_due_work)
    batch.start()
    started = time.monotonic()
    while not any(d["lease_owner"] for d in hub_of(first).store.list_deliveries()):
        assert time.monotonic() - started < 10, "the first process never claimed its batch"
        time.sleep(0.005)
    while batch.is_alive():
        hub_of(second).run_due_work()
        time.sleep(0.01)
    batch.join()
    drain(first)
    drain(second)


def test_a_slow_batch_gives_back_what_it_has_not_started(make_app, moncash, database, tmp_path):
    """A process that claimed a batch of slow deliveries keeps them only as long as it works on
    them: another process polling all along delivers the rest, each delivery exactly once."""
    first, second, log = two_processes(make_app, database, tmp_path, [0.15],
                                       {"HOOKHUB_HANDLER_TIMEOUT": 1.0, "HOOKHUB_LEASE_SECONDS": 6.0})
    work_beside(first, second, 12, moncash, "93")
    assert len(log) == 12 and len({event_id for _, event_id in log}) == 12
    assert {who for who, _ in log} == {"first", "second"}  # the batch was not kept from the idle process
    deliveries = hub_of(first).store.list_deliveries()
    assert {(d["status"], d["attempts"]) for d in deliveries} == {("done", 1)}  # given back uncounted


def test_an_overdue_attempt_in_a_batch_is_delivered_once(make_app, moncash, database, tmp_path):
    """The first attempt of a batch runs past its timeout and then succeeds; the process goes on with
    the jobs behind it until its batch time is up, gives back the rest to the other process, and
    records the late success: no delivery runs twice. (The lease outlasts the batch time by seconds,
    as the defaults do by minutes, so a stalled test machine cannot let the lease lapse.)"""
    first, second, log = two_processes(make_app, database, tmp_path, [0.4, 0.1],
                                       {"HOOKHUB_HANDLER_TIMEOUT": 0.2, "HOOKHUB_LEASE_SECONDS": 3.0})
    work_beside(first, second, 12, moncash, "94")
    deadline = time.monotonic() + 10
    while any(d["status"] != "done" for d in hub_of(first).store.list_deliveries()):
        assert time.monotonic() < deadline, "the late success was never recorded"
        hub_of(first).run_due_work()
        time.sleep(0.05)
    assert len(log) == 12 and len({event_id for _, event_id in log}) == 12
    assert {who for who, _ in log} == {"first", "second"}
    assert {d["attempts"] for d in hub_of(first).store.list_deliveries()} == {1}


def test_a_store_failure_mid_batch_keeps_finished_results_and_gives_back_the_rest(make_app, moncash):
    """The store fails while a batch is half done: what finished is recorded, what never started
    is due again with its attempt uncounted, and the failure reaches the caller."""
    log = []
    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.2}, plugins=[Timed("h", [0.01, 0.6, 0.01], log)])
    hub = hub_of(app)

    class FailsOnOverdue(Store):
        def delivery_overdue(self, job, error, *, lease):
            raise StoreUnavailable("store unavailable: the disk went away")

    failing = FailsOnOverdue(hub.store.engine.url.render_as_string(hide_password=False))
    try:
        for i in range(3):
            moncash.add_payment(f"95{i}", f"order-95-{i}", 25)
            assert app.test_client().post("/hooks/moncash", json={"transactionId": f"95{i}"}).status_code == 200
        deliverer = Deliverer(failing, hub.handlers, hub.deliverer.policy, lease=60, timeout=0.2)
        with pytest.raises(StoreUnavailable):
            deliverer.run()
    finally:
        failing.close()
    first, second, third = sorted(hub.store.list_deliveries(), key=lambda d: d["id"])
    assert (first["status"], first["lease_owner"]) == ("done", None)  # recorded despite the failure after it
    assert second["lease_owner"] is not None and second["attempts"] == 1  # started: its lease runs out
    assert (third["status"], third["attempts"], third["lease_owner"]) == ("pending", 0, None)  # given back
    assert len(log) == 2


def test_replay_here_waits_for_handler_calls_running_past_their_timeout(make_app, moncash):
    class Slow:
        calls = 0

        @hookimpl
        def hookhub_handle_event(self, event):
            Slow.calls += 1
            time.sleep(0.3)

    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.1}, plugins=[Slow()])
    pay(app, moncash, "9005", "order-slow")
    wait_until(lambda: hub_of(app).store.list_deliveries()[0]["status"] == "done", app)
    event_id = hub_of(app).store.list_deliveries()[0]["event_id"]

    replayed = run(app, "events", "replay", event_id)
    assert "waiting for 1 handler calls still running" in replayed.output
    assert "1 delivered, 0 failed again" in replayed.output and Slow.calls == 2


def test_handler_raising_system_exit_is_a_recorded_failure(make_app, moncash):
    class Exits:
        calls = 0

        @hookimpl
        def hookhub_handle_event(self, event):
            Exits.calls += 1
            if Exits.calls == 1:
                raise SystemExit(3)

    app = make_app(plugins=[Exits()])
    pay(app, moncash, "9004", "order-exit")
    [delivery] = hub_of(app).store.list_deliveries()
    assert (delivery["status"], delivery["attempts"], Exits.calls) == ("done", 2, 2)
    assert "HandlerExit: handler raised SystemExit" in delivery["last_error"]  # the failed first attempt


def test_command_line_apps_run_no_background_work(make_app):
    with click.Context(click.Command("hookhub")):
        quiet = make_app({"HOOKHUB_SCHEDULER": True})
    assert not hub_of(quiet).scheduler.running
    serving = make_app({"HOOKHUB_SCHEDULER": True})
    assert hub_of(serving).scheduler.running


@pytest.mark.parametrize("command", [
    lambda: [str(Path(sys.executable).parent / "hookhub")],
    lambda: [sys.executable, "-m", "flask", "--app", "wsgi", "hookhub"],
], ids=["console-script", "flask"])
def test_commands_run_from_a_shell(tmp_path, moncash, command):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}, **moncash_config(moncash),
           "HOOKHUB_INSTANCE_PATH": str(tmp_path), "HOOKHUB_SECRET_KEY": SECRET_KEY,
           # this checkout's code, whatever the environment has installed
           "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "plugins", ROOT / "tests"))}
    listed = subprocess.run([*command(), "events", "list", "--json"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert (tmp_path / "hookhub.sqlite3").exists()
