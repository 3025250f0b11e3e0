"""The Monri client against the fake, which checks every WP3-v2.1 signature the way Monri does."""

from __future__ import annotations

import pytest

from hookhub import (ConfigError, ProviderAPIError, ProviderAuthError, ProviderNotFound, ProviderUnavailable,
                     ValidationError, client as hookhub_client)
from hookhub_monri import MonriClient

PAYMENT = dict(amount=1024, order_number="order-1001", currency="EUR", transaction_type="purchase",
               order_info="Two books")


@pytest.fixture
def mc(monri):
    return MonriClient(monri.merchant_key, monri.authenticity_token, monri.base_url, timeout=2.0)


def test_create_update_and_status_of_a_payment(mc, monri):
    created = mc.create_payment(**PAYMENT, ch_full_name="John Doe", ch_country="BA", language="hr",
                                supported_payment_methods=["card"])
    assert created["status"] == "approved" and len(created["id"]) == 40 and created["client_secret"]
    updated = mc.update_payment(created["id"], 2048)
    assert (updated["amount"], updated["currency"]) == (2048, "EUR")
    assert mc.payment_status(created["id"])["payment_status"] == "payment_method_required"
    monri.complete(created["id"])
    result = mc.payment_status(created["id"])["payment_result"]
    assert (result["status"], result["amount"], result["order_number"]) == ("approved", 2048, "order-1001")
    assert monri.refused_auth == 0


def test_customers_end_to_end(mc, monri):
    made = mc.create_customer(merchant_customer_id="cust-1", email="a@b.example", name="Test", country="BA",
                              zip_code="71000", metadata={"key": "value"})
    uuid = made["uuid"]
    assert mc.get_customer(uuid)["email"] == "a@b.example"
    assert mc.get_customer_by_merchant_id("cust-1")["uuid"] == uuid
    assert mc.update_customer(uuid, city="Sarajevo")["city"] == "Sarajevo"
    mc.create_customer(merchant_customer_id="cust-2")
    assert [c["merchant_customer_id"] for c in mc.list_customers(limit=1, offset=1)["data"]] == ["cust-1"]
    monri.payment_methods[uuid] = [{"status": "approved", "id": "tok1", "masked_pan": "405840******0005",
                                    "created_at": "2019-02-12T11:22:33Z", "customer_uuid": uuid}]
    assert mc.list_payment_methods(uuid, limit=10, offset=0)["data"][0]["masked_pan"] == "405840******0005"
    assert mc.delete_customer(uuid) == {"status": "approved", "id": uuid, "deleted": True}
    with pytest.raises(ProviderNotFound):
        mc.get_customer(uuid)
    assert monri.refused_auth == 0
    # the query string is part of what was signed
    assert ("GET", "/v2/customers?limit=1&offset=1") in monri.requests


def test_wrong_key_is_an_auth_error_that_says_so(monri):
    wrong = MonriClient("not-the-key", monri.authenticity_token, monri.base_url)
    with pytest.raises(ProviderAuthError, match="Authorization header"):
        wrong.payment_status("x" * 40)
    assert monri.refused_auth == 1


def test_invalid_request_and_error_answers_are_typed(mc, monri):
    mc.create_payment(**PAYMENT)
    with pytest.raises(ProviderAPIError) as info:
        mc.create_payment(**PAYMENT)
    assert (info.value.status, info.value.code, info.value.message) == (
        400, "invalid-request", "Order number has already been taken")
    monri.fail_next = True
    with pytest.raises(ProviderUnavailable) as outage:
        mc.list_customers()
    assert outage.value.status == 500 and "try later" in outage.value.message
    with pytest.raises(ProviderNotFound):
        mc.payment_status("f" * 40)


@pytest.mark.parametrize("change,field", [
    ({"amount": 10.24}, "amount"),
    ({"amount": 10**11}, "amount"),
    ({"amount": 0}, "amount"),
    ({"order_number": "x"}, "order_number"),
    ({"order_number": "x" * 41}, "order_number"),
    ({"currency": "eur"}, "currency"),
    ({"currency": "EUR\n"}, "currency"),
    ({"transaction_type": "sale"}, "transaction_type"),
    ({"order_info": "ab"}, "order_info"),
    ({"order_info": "x" * 101}, "order_info"),
    ({"scenario": "refund"}, "scenario"),
    ({"ch_country": "XX"}, "ch_country"),
    ({"unknown_field": "1"}, "unknown_field"),
])
def test_payment_requests_are_validated_before_sending(mc, monri, change, field):
    with pytest.raises(ValidationError) as info:
        mc.create_payment(**{**PAYMENT, **change})
    assert info.value.field == field
    assert monri.requests == []


@pytest.mark.parametrize("fields,field", [
    ({"name": "x" * 51}, "name"), ({"country": "Bosnia"}, "country"), ({"city": "ab"}, "city"),
    ({"zip_code": "1234567890"}, "zip_code"), ({"metadata": ["a"]}, "metadata"), ({"nickname": "x"}, "nickname"),
    ({"metadata": {"a": {1, 2}}}, "metadata"),
])
def test_customer_requests_are_validated_before_sending(mc, monri, fields, field):
    with pytest.raises(ValidationError) as info:
        mc.create_customer(**fields)
    assert info.value.field == field
    with pytest.raises(ValidationError):
        mc.list_customers(limit=-1)
    assert monri.requests == []


def test_hookhub_client_remembers_payments_it_creates(app, monri):
    with app.app_context():
        created = hookhub_client("monri").create_payment(**PAYMENT)
    provider = app.extensions["hookhub"].registry.get("monri")
    assert provider.memo.get("payment:order-1001") == created["id"]


def test_monri_without_public_url_refuses_to_start(make_app, monri):
    with pytest.raises(ConfigError, match="HOOKHUB_PUBLIC_URL"):
        make_app({"HOOKHUB_PUBLIC_URL": ""})
