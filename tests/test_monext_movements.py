"""The Monext plugin reports a session's money movements: its payment, captures, refunds, voids and
installments, each with Monext's own id, read from the fake Monext API over HTTP."""

from __future__ import annotations

import logging

import pytest

from hookhub import Movement, ProviderAPIError, ProviderUnavailable, Trigger, Watch
from hookhub_monext import Monext


@pytest.fixture
def provider(monext):
    config = {"merchant_id": monext.merchant_id, "access_key": monext.access_key, "base_url": monext.base_url}
    return Monext(config, timeout=5.0)


def moves(state) -> list[tuple[str, int, str | None]]:
    return [(m.kind, m.amount, m.id) for m in state.movements]


def paid(monext, order_id: str, amount: int, transaction_type: str = "AUTHORIZATION_AND_CAPTURE") -> tuple[str, str]:
    """A session the buyer paid with a transaction of ``transaction_type``, and that transaction's id."""
    session_id = monext.open_session(order_id, amount)
    return session_id, monext.settle(session_id, "ACCEPTED", transaction_type=transaction_type)


def test_a_paid_session_is_one_payment(provider, monext):
    session_id, transaction_id = paid(monext, "order-3001", 4200)

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("payment", 4200, transaction_id)]
    [payment] = state.movements
    assert payment.currency == "EUR" and payment.occurred_at is not None
    assert (state.status, state.transaction_id, state.key, state.order_id, state.amount, state.currency) == (
        "approved", transaction_id, session_id, "order-3001", 4200, "EUR")
    assert state.raw["transactions"][0]["id"] == transaction_id
    assert monext.transaction_fetches() == [transaction_id]


def test_poll_reports_the_same_movements(provider, monext):
    session_id, transaction_id = paid(monext, "order-3002", 1500, "AUTHORIZATION")
    provider.client.capture(transaction_id, 1500)

    watch = Watch(kind="payment", order_id="order-3002", reference=session_id, amount=1500, currency="EUR",
                  key=session_id)
    assert provider.poll(watch) == provider.fetch(Trigger(session_id))
    assert [kind for kind, _, _ in moves(provider.poll(watch))] == ["authorization", "capture"]


def test_partial_captures_of_an_authorization(provider, monext):
    session_id, transaction_id = paid(monext, "order-3003", 6000, "AUTHORIZATION")
    first = provider.client.capture(transaction_id, 2500)["transaction"]["id"]
    second = provider.client.capture(transaction_id, 3500)["transaction"]["id"]

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("authorization", 6000, transaction_id), ("capture", 2500, first),
                            ("capture", 3500, second)]
    assert len({first, second, transaction_id}) == 3
    assert all(m.occurred_at is not None for m in state.movements)
    assert (state.status, state.amount, state.transaction_id) == ("approved", 6000, transaction_id)


def test_partial_refunds_of_a_payment_are_each_a_refund(provider, monext):
    session_id, transaction_id = paid(monext, "order-3004", 10000)
    first = provider.client.refund(transaction_id, 3000)["transaction"]["id"]
    second = provider.client.refund(transaction_id, 2000)["transaction"]["id"]

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("payment", 10000, transaction_id), ("refund", 3000, first), ("refund", 2000, second)]
    # The core derives "refunded" from the movements: the session itself is still an accepted payment.
    assert (state.status, state.amount, state.transaction_id) == ("approved", 10000, transaction_id)


def test_a_credit_is_a_refund(provider, monext):
    session_id, transaction_id = paid(monext, "order-3005", 800)
    credit = monext.add_operation(transaction_id, "CREDIT", 300)

    assert moves(provider.fetch(Trigger(session_id))) == [("payment", 800, transaction_id), ("refund", 300, credit)]


def test_a_refused_refund_is_not_listed(provider, monext):
    session_id, transaction_id = paid(monext, "order-3006", 5000)
    accepted = provider.client.refund(transaction_id, 4000)["transaction"]["id"]
    with pytest.raises(ProviderAPIError):
        provider.client.refund(transaction_id, 2000)  # more than is left: Monext refuses it
    refused = monext.add_operation(transaction_id, "REFUND", 500, status="KO")
    statuses = [a["status"] for a in provider.client.get_transaction(transaction_id)["associatedTransactions"]]
    assert statuses == ["OK", "KO", "KO"]
    monext.requests.clear()

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("payment", 5000, transaction_id), ("refund", 4000, accepted)]
    assert refused not in {m.id for m in state.movements}
    assert monext.transaction_fetches() == [transaction_id]  # the refused ones are not looked up on their own


def test_a_cancel_of_an_authorization_is_a_void(provider, monext):
    session_id, transaction_id = paid(monext, "order-3007", 3000, "AUTHORIZATION")
    cancel = provider.client.cancel(transaction_id, 3000)["transaction"]["id"]

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("authorization", 3000, transaction_id), ("void", 3000, cancel)]
    assert state.status == "approved"


def test_a_capture_of_a_one_step_payment_adds_nothing(provider, monext):
    session_id, transaction_id = paid(monext, "order-3008", 2000)
    monext.add_operation(transaction_id, "CAPTURE", 2000)

    assert moves(provider.fetch(Trigger(session_id))) == [("payment", 2000, transaction_id)]


def test_a_declined_session_has_no_movements(provider, monext):
    session_id = monext.open_session("order-3009", 700)
    refused = monext.settle(session_id, "REFUSED")

    state = provider.fetch(Trigger(session_id))

    assert (state.status, state.movements, state.transaction_id, state.amount) == ("declined", (), refused, 700)
    assert monext.transaction_fetches() == []


def test_a_refused_attempt_then_a_paid_one_is_one_payment(provider, monext):
    session_id = monext.open_session("order-3010", 1200)
    monext.settle(session_id, "REFUSED")
    retried = monext.settle(session_id, "ACCEPTED")

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("payment", 1200, retried)]
    assert monext.transaction_fetches() == [retried]


def test_one_transaction_lookup_per_fetch_however_many_operations(provider, monext):
    session_id, transaction_id = paid(monext, "order-3011", 9000, "AUTHORIZATION")
    provider.client.capture(transaction_id, 9000)
    for amount in (1000, 2000, 3000):
        provider.client.refund(transaction_id, amount)
    provider.client.cancel(transaction_id, 100)
    monext.requests.clear()

    state = provider.fetch(Trigger(session_id))
    provider.fetch(Trigger(session_id))

    assert [kind for kind, _, _ in moves(state)] == ["authorization", "capture", "refund", "refund", "refund", "void"]
    assert monext.transaction_fetches() == [transaction_id, transaction_id]
    assert monext.session_fetches(session_id) == 2


def test_an_operation_without_an_id_is_skipped_with_a_warning(provider, monext, caplog):
    session_id, transaction_id = paid(monext, "order-3012", 5000)
    kept = monext.add_operation(transaction_id, "REFUND", 1000)
    monext.add_operation(transaction_id, "REFUND", 2000)
    del monext.transactions[transaction_id]["associated"][-1]["id"]

    with caplog.at_level(logging.WARNING, logger="hookhub"):
        state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("payment", 5000, transaction_id), ("refund", 1000, kept)]
    assert [r.name for r in caplog.records if "no transaction id" in r.getMessage()] == ["hookhub"]


def test_a_payment_transaction_monext_cannot_find_has_no_operations(provider, monext):
    session_id, transaction_id = paid(monext, "order-3013", 2500)
    provider.client.refund(transaction_id, 500)
    del monext.transactions[transaction_id]  # the session still lists it; its own lookup is a 404

    assert moves(provider.fetch(Trigger(session_id))) == [("payment", 2500, transaction_id)]


def test_an_outage_of_the_transaction_lookup_propagates(provider, monext):
    session_id, transaction_id = paid(monext, "order-3014", 2500)
    monext.outage_paths.add(f"/v1/checkout/transactions/{transaction_id}")

    with pytest.raises(ProviderUnavailable) as raised:
        provider.fetch(Trigger(session_id))
    assert raised.value.status == 503


def test_unreadable_operations_make_the_answer_unreadable(provider, monext):
    session_id, transaction_id = paid(monext, "order-3015", 2500)
    monext.add_operation(transaction_id, "REFUND", 500)
    monext.transactions[transaction_id]["associated"][-1]["amount"] = "5.00"

    with pytest.raises(ProviderUnavailable, match="unreadable"):
        provider.fetch(Trigger(session_id))


# -- installments ------------------------------------------------------------------------------------


def test_an_installment_order_is_one_authorization_and_a_capture_per_part_paid(provider, monext):
    session_id = monext.open_session("order-3020", 9000)
    first, second = monext.pay_in_installments(session_id, [3000, 3000, 3000], paid=2)

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("authorization", 9000, first), ("capture", 3000, first), ("capture", 3000, second)]
    # The approval is the whole order, as the shop expects it: never a mismatch of the first part.
    assert (state.status, state.amount, state.transaction_id, state.order_id) == ("approved", 9000, first, "order-3020")
    assert monext.transaction_fetches() == [first]

    third = monext.pay_next_installment(session_id)
    assert moves(provider.fetch(Trigger(session_id)))[1:] == [("capture", 3000, first), ("capture", 3000, second),
                                                              ("capture", 3000, third)]


def test_the_sandbox_gives_installments_the_openapi_shapes(provider, monext):
    session_id = monext.open_session("order-3021", 10000)
    first, _ = monext.pay_in_installments(session_id, [4000, 3000, 3000], paid=2)

    answer = provider.client.get_session(session_id)

    [transaction] = answer["transactions"]
    assert (transaction["id"], transaction["paymentType"], transaction["requestedAmount"]) == (
        first, "MX_INSTALLMENT", 4000)
    plan = answer["paymentPlan"]
    assert (plan["totalInstallments"], plan["firstInstallmentAmount"], plan["status"]) == (3, 4000, "ACTIVE")
    assert [(i["number"], i["amount"], i["status"], "transaction" in i) for i in plan["installments"]] == [
        (1, 4000, "ACCEPTED", True), (2, 3000, "ACCEPTED", True), (3, 3000, "UPCOMING", False)]


def test_a_refused_installment_is_not_a_capture(provider, monext):
    session_id = monext.open_session("order-3022", 6000)
    [first] = monext.pay_in_installments(session_id, [2000, 2000, 2000], paid=1)
    monext.pay_next_installment(session_id, status="REFUSED")

    assert moves(provider.fetch(Trigger(session_id))) == [("authorization", 6000, first), ("capture", 2000, first)]


def test_later_installments_listed_in_the_session_are_no_second_approval(provider, monext):
    session_id = monext.open_session("order-3023", 6000)
    first, second = monext.pay_in_installments(session_id, [3000, 3000], paid=2)
    # Should Monext list the scheduled part among the session's transactions too, it is still a part.
    monext.sessions[session_id]["transactions"].append(monext.transactions[second]["transaction"])

    state = provider.fetch(Trigger(session_id))

    assert moves(state) == [("authorization", 6000, first), ("capture", 3000, first), ("capture", 3000, second)]
    assert state.transaction_id == first


def test_an_installment_refund_is_a_refund_of_the_order(provider, monext):
    session_id = monext.open_session("order-3024", 6000)
    first, _ = monext.pay_in_installments(session_id, [3000, 3000], paid=2)
    refund = provider.client.refund(first, 1000)["transaction"]["id"]

    state = provider.fetch(Trigger(session_id))

    assert [m for m in state.movements if m.kind == "refund"] == [
        Movement("refund", 1000, refund, "EUR", state.movements[-1].occurred_at)]
    assert [m.kind for m in state.movements].count("authorization") == 1


def test_an_installment_payment_without_its_plan_counts_the_first_part(provider, monext):
    session_id = monext.open_session("order-3025", 9000)
    [first] = monext.pay_in_installments(session_id, [3000, 3000, 3000], paid=1)
    del monext.sessions[session_id]["paymentPlan"]

    assert moves(provider.fetch(Trigger(session_id))) == [("authorization", 9000, first), ("capture", 3000, first)]


def test_a_declined_installment_order_has_no_movements(provider, monext):
    session_id = monext.open_session("order-3026", 9000)
    monext.settle(session_id, "REFUSED", paymentType="MX_INSTALLMENT")

    state = provider.fetch(Trigger(session_id))

    assert (state.status, state.movements, state.amount) == ("declined", (), 9000)
