"""The MonCash client against the fake MonCash API."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from hookhub import (ConfigError, ProviderAPIError, ProviderAuthError, ProviderNotFound, ProviderUnavailable,
                     ValidationError, client as hookhub_client)
from hookhub_moncash import MonCashClient


@pytest.fixture
def mc(moncash):
    return MonCashClient(moncash.client_id, moncash.client_secret, moncash.base_url, moncash.gateway_url,
                         timeout=2.0)


def test_token_is_reused_across_calls_and_threads(mc, moncash):
    moncash.add_payment("1", "o-1", 10)

    def fetch():
        for _ in range(5):
            mc.retrieve_transaction("1")

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert moncash.count("/Api/v1/RetrieveTransactionPayment") == 40
    assert moncash.token_requests == mc.token_requests == 1


def test_token_is_renewed_before_it_expires(mc, moncash):
    moncash.token_lifetime = 2  # renewed at half its life when that is sooner than the margin
    moncash.add_payment("1", "o-1", 10)
    mc.retrieve_transaction("1")
    mc.retrieve_transaction("1")
    assert moncash.token_requests == 1
    time.sleep(1.1)
    mc.retrieve_transaction("1")
    assert moncash.token_requests == 2


def test_revoked_token_is_refreshed_and_the_call_retried_once(mc, moncash):
    moncash.add_payment("1", "o-1", 10)
    mc.retrieve_transaction("1")
    moncash.revoke_tokens()
    assert mc.retrieve_transaction("1")["payment"]["transaction_id"] == "1"
    assert moncash.token_requests == 2


def test_bad_credentials_are_an_auth_error(moncash):
    bad = MonCashClient(moncash.client_id, "wrong", moncash.base_url, moncash.gateway_url)
    with pytest.raises(ProviderAuthError) as info:
        bad.prefunded_balance()
    assert info.value.status == 401 and "Bad credentials" in info.value.message


def test_create_payment_sends_major_units_and_gives_the_gateway_url(mc, moncash):
    answer = mc.create_payment(amount=1050, order_id="order-17")
    [created] = moncash.created
    assert created["amount"] == Decimal("10.50") and created["orderId"] == "order-17"
    assert answer["redirect_url"] == f"{moncash.gateway_url}/Payment/Redirect?token={created['token']}"
    assert answer["status"] == 202 and answer["payment_token"]["token"] == created["token"]


def test_retrieve_transaction_and_order(mc, moncash):
    moncash.add_payment("12874820", "1559796839", Decimal("10.5"))
    by_id = mc.retrieve_transaction("12874820")
    by_order = mc.retrieve_order("1559796839")
    assert by_id["payment"] == by_order["payment"]
    assert by_id["payment"]["cost"] == Decimal("10.5") and isinstance(by_id["payment"]["cost"], Decimal)


def test_unknown_transaction_is_not_found_with_the_providers_message(mc):
    with pytest.raises(ProviderNotFound) as info:
        mc.retrieve_transaction("nope")
    assert (info.value.status, info.value.message) == (404, "Can't find this transaction")


def test_customer_status(mc, moncash):
    moncash.customers["50937007294"] = {"type": "fullkyc", "status": ["registered", "active"]}
    assert mc.customer_status("50937007294")["customerStatus"]["status"] == ["registered", "active"]
    with pytest.raises(ProviderNotFound):
        mc.customer_status("50900000000")


def test_transfer_and_its_status(mc, moncash):
    answer = mc.transfer(amount=10000, receiver="50937007294", desc="Test Api Transfer", reference="payout-1")
    assert answer["transfer"]["amount"] == 100 and answer["transfer"]["message"] == "successful"
    assert mc.prefunded_transaction_status("payout-1")["transStatus"] == "successful"
    with pytest.raises(ProviderNotFound) as info:
        mc.prefunded_transaction_status("payout-unknown")
    assert info.value.message == "Can't find this transaction"


def test_transfer_refused_by_moncash_is_an_api_error(mc, moncash):
    moncash.full_accounts.add("50911111111")
    with pytest.raises(ProviderAPIError) as info:
        mc.transfer(amount=100, receiver="50911111111", desc="d", reference="payout-2")
    assert (info.value.status, info.value.message) == (403, "Maximum Account Balance")


def test_prefunded_balance_is_the_exact_decimal(mc):
    balance = mc.prefunded_balance()
    assert balance == Decimal("29814021.179999999701976776123046875")
    assert str(balance) == "29814021.179999999701976776123046875"


def test_outage_and_timeout_are_unavailable(mc, moncash):
    moncash.outage = True
    with pytest.raises(ProviderUnavailable) as info:
        mc.prefunded_balance()
    assert info.value.status == 503
    moncash.outage = False
    slow = MonCashClient(moncash.client_id, moncash.client_secret, moncash.base_url, moncash.gateway_url,
                         timeout=0.2)
    moncash.delay = 0.5
    with pytest.raises(ProviderUnavailable, match="timed out"):
        slow.prefunded_balance()


def test_unreachable_host_is_unavailable(moncash):
    closed = MonCashClient("a", "b", "http://127.0.0.1:9/Api", moncash.gateway_url, timeout=1)
    with pytest.raises(ProviderUnavailable):
        closed.prefunded_balance()


@pytest.mark.parametrize("call,field", [
    (lambda c: c.create_payment(amount=10.5, order_id="o"), "amount"),
    (lambda c: c.create_payment(amount=0, order_id="o"), "amount"),
    (lambda c: c.create_payment(amount=True, order_id="o"), "amount"),
    (lambda c: c.create_payment(amount=100, order_id=""), "order_id"),
    (lambda c: c.transfer(amount=100, receiver="x" * 40, desc="d", reference="r"), "receiver"),
    (lambda c: c.retrieve_transaction(None), "transaction_id"),
])
def test_invalid_arguments_are_refused_before_sending(mc, moncash, call, field):
    with pytest.raises(ValidationError) as info:
        call(mc)
    assert info.value.field == field
    assert moncash.requests == []


def test_hookhub_client_gives_the_configured_client(app, make_app, moncash):
    moncash.add_payment("5", "o-5", 10)
    with app.app_context():
        assert hookhub_client("moncash").retrieve_transaction("5")["payment"]["reference"] == "o-5"
    assert hookhub_client("moncash", app) is hookhub_client("moncash", app)
    off = make_app(with_moncash=False)
    with pytest.raises(ConfigError, match="HOOKHUB_MONCASH_CLIENT_ID"):
        hookhub_client("moncash", off)
