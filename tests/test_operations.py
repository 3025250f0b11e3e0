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

import pytest

from conftest import SECRET_KEY, Recorder, drain, hub_of, moncash_config
from hookhub import hookimpl

ROOT = Path(__file__).resolve().parent.parent


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
    assert "neither an ISO 8601 time" in run(app, "events", "list", "--since", "yesterday").output


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


def test_hanging_handler_is_cut_off_recorded_and_retried(make_app, moncash):
    release = threading.Event()

    class Hangs:
        calls = 0

        @hookimpl
        def hookhub_handle_event(self, event):
            Hangs.calls += 1
            if Hangs.calls == 1:
                release.wait(5)  # hangs far longer than the timeout

    other = Recorder()
    app = make_app({"HOOKHUB_HANDLER_TIMEOUT": 0.2}, plugins=[Hangs(), other])
    started = time.monotonic()
    pay(app, moncash, "9001", "order-hang")
    assert time.monotonic() - started < 4
    release.set()
    deliveries = {d["handler"]: d for d in hub_of(app).store.list_deliveries()}
    hung = deliveries["test_operations.test_hanging_handler_is_cut_off_recorded_and_retried.<locals>.Hangs"]
    assert (hung["status"], hung["attempts"], Hangs.calls) == ("done", 2, 2)
    assert len(other.events) == 1


@pytest.mark.parametrize("command", [
    lambda: [str(Path(sys.executable).parent / "hookhub")],
    lambda: [sys.executable, "-m", "flask", "--app", "wsgi", "hookhub"],
], ids=["console-script", "flask"])
def test_commands_run_from_a_shell(tmp_path, moncash, command):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}, **moncash_config(moncash),
           "HOOKHUB_INSTANCE_PATH": str(tmp_path), "HOOKHUB_SECRET_KEY": SECRET_KEY,
           "PYTHONPATH": str(ROOT / "tests")}
    listed = subprocess.run([*command(), "events", "list", "--json"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert (tmp_path / "hookhub.sqlite3").exists()
