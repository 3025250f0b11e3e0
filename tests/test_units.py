"""Small pieces: money, JSON, tokens, the state machine, inbound call parsing, retry timing."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from hookhub import InboundCall, InvalidRequest, InvalidResultToken, json_dumps, json_loads, read_result
from hookhub import to_major_units, to_minor_units, tokens
from hookhub.events import Event
from hookhub.retry import RetryPolicy
from hookhub.states import TransactionState, is_transition


@pytest.mark.parametrize("major,currency,minor", [
    (Decimal("10.5"), "HTG", 1050), (10, "HTG", 1000), ("0.01", "EUR", 1), (Decimal("1500"), "JPY", 1500),
    (Decimal("1.234"), "KWD", 1234), (Decimal("10.50"), "htg", 1050),
])
def test_minor_units(major, currency, minor):
    assert to_minor_units(major, currency) == minor
    assert to_minor_units(to_major_units(minor, currency), currency) == minor


@pytest.mark.parametrize("bad", [10.5, Decimal("10.505"), Decimal("-1"), Decimal("NaN"), "ten", True])
def test_minor_units_refuses_what_is_not_money(bad):
    with pytest.raises((TypeError, ValueError)):
        to_minor_units(bad, "HTG")


def test_json_keeps_money_exact_both_ways():
    text = '{"balance": 29814021.179999999701976776123046875, "cost": 10.50, "n": 7}'
    data = json_loads(text)
    assert data == {"balance": Decimal("29814021.179999999701976776123046875"), "cost": Decimal("10.50"), "n": 7}
    assert json_dumps(data) == text


@pytest.mark.parametrize("bad", ["NaN", '{"a": Infinity}', "[" * 100000, b"\xff", "1" * 5000, "{"])
def test_json_refuses_with_one_error_type(bad):
    with pytest.raises(ValueError):
        json_loads(bad)


def test_event_to_dict_is_plain_json():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    event = Event("evt_1", "payment.approved", "moncash", "o", "t", 1050, "HTG", "return", now, now,
                  {"payment": {"cost": Decimal("10.5")}})
    data = json.loads(json.dumps(event.to_dict()))
    assert data["raw"] == {"payment": {"cost": "10.5"}} and data["occurred_at"] == "2026-01-02T03:04:05+00:00"
    assert event.status == "approved"


def test_result_tokens_are_signed_and_expire():
    token = tokens.issue("k", event_id="evt_1", order_id="o", provider="moncash", status="approved", amount=1050,
                         currency="HTG", transaction_id="t1", nonce=None)
    assert read_result(token, secret_key="k")["status"] == "approved"
    with pytest.raises(InvalidResultToken):
        read_result(token, secret_key="other")
    with pytest.raises(InvalidResultToken):
        read_result(token[:-3] + "abc", secret_key="k")
    time.sleep(2.05)  # token timestamps have one-second resolution
    with pytest.raises(InvalidResultToken):
        read_result(token, secret_key="k", max_age=1)


@pytest.mark.parametrize("current,new,real", [
    (None, "pending", True), (None, "approved", True), ("pending", "approved", True),
    ("approved", "pending", False), ("approved", "approved", False), ("approved", "refunded", True),
    ("approved", "canceled", True), ("declined", "approved", True), ("approved", "declined", False),
    ("declined", "pending", False), ("canceled", "approved", False),
    ("refunded", "approved", False), ("mismatch", "approved", False), ("pending", "expired", True),
    ("expired", "approved", True), ("approved", "expired", False), ("expired", "pending", False),
    ("pending", "succeeded", False),  # a payout's status is not a payment's
])
def test_state_machine_only_moves_forward(current, new, real):
    assert is_transition(current, new) is real


@pytest.mark.parametrize("current,new,real", [
    (None, "pending", True), ("pending", "succeeded", True), ("pending", "failed", True),
    ("succeeded", "failed", False), ("failed", "succeeded", False), ("succeeded", "pending", False),
    ("pending", "approved", False),
])
def test_payout_state_machine_only_moves_forward(current, new, real):
    assert is_transition(current, new, "payout") is real


def test_transaction_state_refuses_float_amounts_and_unknown_statuses():
    with pytest.raises(TypeError):
        TransactionState("approved", "t", "o", 10.5, "HTG", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TransactionState("paid", "t", "o", 10, "HTG", {})


def call(query="", body=b"", content_type=""):
    return InboundCall("p", "callback", "POST", "/hooks/p", query, {"Content-Type": content_type}, body,
                       "127.0.0.1", datetime.now(timezone.utc))


def test_param_refuses_conflicting_places():
    assert call("id=1", b'{"id": "1"}', "application/json").param("id") == "1"
    with pytest.raises(InvalidRequest):
        call("id=1&id=2").param("id")
    with pytest.raises(InvalidRequest):
        call("id=1", b"id=2", "application/x-www-form-urlencoded").param("id")
    assert call(body=b'{"id": 5}', content_type="text/plain").param("id") == 5


def test_too_many_query_fields_is_invalid():
    with pytest.raises(InvalidRequest):
        _ = call("&".join(f"f{n}=1" for n in range(500))).query


def test_retry_policy_backs_off_with_jitter_then_stops():
    policy = RetryPolicy(base=2, cap=60, max_attempts=5)
    delays = [policy.delay(n) for n in (1, 2, 3, 4)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8 and 8 <= delays[3] <= 16
    assert 30 <= policy.delay(30) <= 60
    assert policy.next_at(4) is not None and policy.next_at(5) is None


def test_a_forked_process_gets_its_own_http_connections():
    import multiprocessing

    from hookhub import ApiClient

    client = ApiClient("http://127.0.0.1:9")
    parent = client.session
    assert client.session is parent  # reused within a process and thread

    def child(answer):
        answer.put(client.session is parent)

    context = multiprocessing.get_context("fork")
    answer = context.Queue()
    process = context.Process(target=child, args=(answer,))
    process.start()
    process.join(10)
    assert answer.get(timeout=5) is False
