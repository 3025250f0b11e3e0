"""The Monext client against the fake Monext API: Basic auth, OpenAPI request checks, typed errors,
sessions, transactions, MX wallets, payouts and pagination."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hookhub import ProviderAPIError, ProviderAuthError, ProviderNotFound, ProviderUnavailable, ValidationError
from hookhub_monext import MonextClient
from hookhub_monext.schema import Spec, snake_case

SESSION = {
    "point_of_sale_reference": "POS_WEB-1",
    "order": {"reference": "order-1001", "amount": 1999, "currency": "EUR"},
    "payment": {"payment_type": "ONE_OFF", "capture": "AUTOMATIC"},
    "return_url": "https://hooks.shop.example/hh/return/monext",
    "notification_url": "https://hooks.shop.example/hh/hooks/monext",
}


@pytest.fixture
def api(monext):
    return MonextClient(monext.merchant_id, monext.access_key, monext.base_url, timeout=2.0)


@pytest.fixture
def paid(monext):
    """A session the buyer paid, and its transaction id."""
    session_id = monext.open_session("order-paid", 5000)
    return session_id, monext.settle(session_id, "ACCEPTED", transaction_type="AUTHORIZATION")


def test_create_session_sends_monext_names_and_basic_auth(api, monext):
    answer = api.create_session(**SESSION)

    assert answer["result"]["title"] == "ACCEPTED"
    assert answer["redirectURL"].endswith(answer["sessionId"])
    assert monext.refused_auth == 0
    assert monext.bodies[-1] == {
        "pointOfSaleReference": "POS_WEB-1", "order": {"reference": "order-1001", "amount": 1999, "currency": "EUR"},
        "payment": {"paymentType": "ONE_OFF", "capture": "AUTOMATIC"},
        "returnURL": "https://hooks.shop.example/hh/return/monext",
        "notificationURL": "https://hooks.shop.example/hh/hooks/monext",
    }
    session = api.get_session(answer["sessionId"])
    assert session["result"]["title"] == "INPROGRESS" and session["order"]["amount"] == 1999


@pytest.mark.parametrize("change, field", [
    ({"return_url": None}, "returnURL"),
    ({"order": {"reference": "o-1", "amount": 19.99, "currency": "EUR"}}, "order.amount"),
    ({"order": {"reference": "o-1", "amount": -1, "currency": "EUR"}}, "order.amount"),
    ({"order": {"reference": "o-1", "amount": True, "currency": "EUR"}}, "order.amount"),
    ({"order": {"reference": "o-1", "amount": 100, "currency": "EURO"}}, "order.currency"),
    ({"order": {"reference": "o/1", "amount": 100, "currency": "EUR"}}, "order.reference"),
    ({"order": {"reference": "o" * 51, "amount": 100, "currency": "EUR"}}, "order.reference"),
    ({"order": {"amount": 100, "currency": "EUR"}}, "order.reference"),
    ({"point_of_sale_reference": "-starts-badly"}, "pointOfSaleReference"),
    ({"payment": {"payment_type": "SOMETIMES", "capture": "AUTOMATIC"}}, "payment.paymentType"),
    ({"payment": {"payment_type": "ONE_OFF"}}, "payment.capture"),
    ({"notifcation_url": "https://typo.example/"}, "notifcation_url"),
    ({"private_data": {"channel": 7}}, "privateData.channel"),
    ({"buyer": {"email": "not-an-address"}}, "buyer.email"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_create_session_is_checked_against_the_openapi_schema_before_sending(api, monext, change, field):
    with pytest.raises(ValidationError) as refused:
        api.create_session(**{**SESSION, **change})
    assert refused.value.field == field
    assert monext.requests == []


def test_schema_names_and_java_patterns():
    assert snake_case("returnURL") == "return_url"
    assert snake_case("paymentMethodIDs") == "payment_method_ids"
    assert snake_case("mxWalletId") == "mx_wallet_id"
    spec = Spec.load("CheckoutAPI.json")
    person = spec.resolve("#/components/schemas/Person")
    assert spec.prepare(person, {"email": "john.doe@mail.com", "first_name": "John"}) == {
        "email": "john.doe@mail.com", "firstName": "John"}
    with pytest.raises(ValidationError, match="given twice"):
        spec.prepare(person, {"firstName": "John", "first_name": "Jack"})
    for address in ("jöhn@mail.com", "张伟@mail.com", "john@mail"):  # Java's \w is ASCII; whole value
        with pytest.raises(ValidationError):
            spec.prepare(person, {"email": address})
    # CardManualEntry requires a "type" it never declares: accepted as given, and still required.
    card = spec.resolve("#/components/schemas/CardManualEntry")
    assert spec.prepare(card, {"type": "CB", "encrypted_data": "eyJ..."}) == {"type": "CB", "encryptedData": "eyJ..."}
    with pytest.raises(ValidationError, match="required"):
        spec.prepare(card, {"encrypted_data": "eyJ..."})


def test_naive_times_are_utc_and_acronyms_may_be_split():
    spec = Spec.load("CheckoutAPI.json")
    dated = {"type": "string", "format": "date-time"}
    assert spec.prepare(dated, datetime(2024, 1, 1, 12, 0)) == "2024-01-01T12:00:00Z"
    assert spec.prepare(dated, datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == \
        "2024-01-01T10:00:00Z"
    shape = {"type": "object", "properties": {"threeDSMethodNotificationURL": {"type": "string"},
                                              "paymentMethodIDs": {"type": "array"}}}
    assert spec.prepare(shape, {"three_ds_method_notification_url": "u", "payment_method_ids": []}) == {
        "threeDSMethodNotificationURL": "u", "paymentMethodIDs": []}
    assert spec.prepare(shape, {"three_dsmethod_notification_url": "u"}) == {"threeDSMethodNotificationURL": "u"}


def test_wrong_credentials_are_an_auth_error_with_monext_code(monext):
    intruder = MonextClient(monext.merchant_id, "wrong-key", monext.base_url, timeout=2.0)
    with pytest.raises(ProviderAuthError) as refused:
        intruder.get_session("anything")
    assert (refused.value.status, refused.value.code) == (401, "04001")
    assert monext.refused_auth == 1


def test_a_200_titled_unauthorized_is_an_auth_error_not_an_answer(monext):
    monext.unauthorized_as_200 = True
    intruder = MonextClient(monext.merchant_id, "wrong-key", monext.base_url, timeout=2.0)
    with pytest.raises(ProviderAuthError) as refused:
        intruder.get_session(monext.open_session("order-x", 100))
    assert refused.value.status == 200 and "Authentication failed" in refused.value.message


def test_unknown_session_is_not_found_with_result_code_and_detail(api):
    with pytest.raises(ProviderNotFound) as missing:
        api.get_session("no-such-session")
    assert (missing.value.status, missing.value.code) == (404, "02304")
    assert missing.value.message == "No session found for this identifier"


def test_server_side_refusal_lists_invalid_params(api):
    with pytest.raises(ProviderAPIError) as refused:
        api.call("POST", "/v1/checkout/payments/sessions", json={"order": {}})
    assert (refused.value.status, refused.value.code) == (400, "02305")
    assert "returnURL: must not be null" in refused.value.message


def test_outage_and_slowness_are_unavailable(monext):
    monext.outage = True
    with pytest.raises(ProviderUnavailable) as down:
        MonextClient(monext.merchant_id, monext.access_key, monext.base_url, timeout=2.0).alive()
    assert down.value.status == 503
    monext.outage, monext.delay = False, 0.5
    with pytest.raises(ProviderUnavailable, match="timed out"):
        MonextClient(monext.merchant_id, monext.access_key, monext.base_url, timeout=0.1).alive()


def test_transaction_capture_refund_and_cancel(api, monext, paid):
    session_id, transaction_id = paid
    detail = api.get_transaction(transaction_id)
    assert detail["transaction"]["type"] == "AUTHORIZATION" and detail["order"]["reference"] == "order-paid"

    captured = api.capture(transaction_id, 5000, option="FINAL")
    assert captured["transaction"]["type"] == "CAPTURE"
    assert monext.bodies[-1] == {"amount": 5000, "option": "FINAL"}
    refund = api.refund(transaction_id, 1500, comment="damaged item")
    assert refund["result"]["title"] == "ACCEPTED" and refund["transaction"]["type"] == "REFUND"
    with pytest.raises(ProviderAPIError) as too_much:
        api.refund(transaction_id, 4000)
    assert (too_much.value.status, too_much.value.code) == (422, "01913")
    assert api.cancel(transaction_id, 100)["transaction"]["type"] == "CANCEL"

    associated = api.get_transaction(transaction_id)["associatedTransactions"]
    assert [(a["type"], a["amount"], a["status"]) for a in associated] == [
        ("CAPTURE", 5000, "OK"), ("REFUND", 1500, "OK"), ("REFUND", 4000, "KO"), ("CANCEL", 100, "OK")]
    assert [t["type"] for t in api.get_session(session_id)["transactions"]] == [
        "AUTHORIZATION", "CAPTURE", "REFUND", "REFUND", "CANCEL"]


@pytest.mark.parametrize("call, field", [
    (lambda api: api.refund("123", 10.5), "amount"),
    (lambda api: api.refund("123", 100, comment="<script>"), "comment"),
    (lambda api: api.refund("123", 100, comment="x" * 256), "comment"),
    (lambda api: api.capture("123", 100, option="LATER"), "option"),
    (lambda api: api.get_transaction(""), "id"),
    (lambda api: api.get_transaction("9" * 201), "id"),
    (lambda api: api.get_wallet("bad wallet id"), "mxWalletId"),
    (lambda api: api.get_payment_instrument("WALLET1", "1"), "paymentInstrumentRank"),
    (lambda api: api.set_wallet_status("WALLET1", "PAUSED"), "status"),
    (lambda api: api.create_sepa_transfer(100, "EUR", {"payment_method_id": "BT1"},
                                          {"bic": "BDFEFR2L", "holder_name": "J Doe"}), "payeeBankAccount.iban"),
    (lambda api: api.operation("DELETE", "/v1/checkout/payments/sessions/{sessionId}", sessionId="s"), "operation"),
], ids=["float-amount", "comment-markup", "comment-long", "capture-option", "empty-id", "long-id",
       "wallet-id", "rank-type", "wallet-status", "payee-iban", "undocumented"])
def test_other_requests_are_checked_before_sending(api, monext, call, field):
    with pytest.raises(ValidationError) as refused:
        call(api)
    assert refused.value.field == field
    assert monext.requests == []


def test_path_values_are_escaped(api, monext):
    with pytest.raises(ProviderNotFound):
        api.get_session("a/../../v1/payout/transactions/1")
    assert monext.requests == [("GET", "/v1/checkout/payments/sessions/a%2F..%2F..%2Fv1%2Fpayout%2Ftransactions%2F1")]
    for dots in (".", ".."):  # escaping leaves dot segments, which URLs resolve to the parent path
        with pytest.raises(ValidationError):
            api.get_session(dots)
    assert len(monext.requests) == 1


def test_mx_wallet_lifecycle(api, monext, paid):
    _, transaction_id = paid
    origin = {"origin": "ExistingTransaction", "transaction_id": transaction_id}
    created = api.create_wallet("WALLET-42", origin, holder={"first_name": "Ana", "last_name": "Lopez"})
    assert monext.bodies[-1]["paymentInstrumentOrigin"] == {"origin": "ExistingTransaction",
                                                            "transactionId": transaction_id}
    [first] = created["mxWallet"]["paymentInstruments"]
    assert (first["rank"], first["isDefault"], first["maskedNumber"]) == (1, True, "497010XXXXXX0055")

    assert api.update_wallet("WALLET-42", comment="loyal buyer")["mxWallet"]["comment"] == "loyal buyer"
    assert api.get_wallet("WALLET-42")["mxWallet"]["holder"] == {"firstName": "Ana", "lastName": "Lopez"}
    assert api.set_wallet_status("WALLET-42", "INACTIVE")["status"] == "INACTIVE"

    second = api.add_payment_instrument("WALLET-42", origin)["paymentInstrument"]
    assert second["rank"] == 2 and not second["isDefault"]
    assert api.set_default_payment_instrument("WALLET-42", 2)["paymentInstrument"]["isDefault"] is True
    assert api.get_payment_instrument("WALLET-42", 1)["paymentInstrument"]["isDefault"] is False
    assert api.set_payment_instrument_status("WALLET-42", 1, "INACTIVE")["status"] == "INACTIVE"
    replaced = api.update_payment_instrument("WALLET-42", 1, origin, comment="renewed card")
    assert replaced["paymentInstrument"]["rank"] == 1
    with pytest.raises(ProviderNotFound):
        api.get_payment_instrument("WALLET-42", 9)
    with pytest.raises(ProviderAPIError) as taken:
        api.create_wallet("WALLET-42", origin)
    assert taken.value.status == 409

    session = api.create_wallet_session(point_of_sale_reference="POS_WEB-1", payment_method_ids=["CB01"],
                                        mx_wallet_id="WALLET-42", return_url="https://shop.example/wallet")
    assert monext.bodies[-1]["paymentMethodIDs"] == ["CB01"]
    detail = api.get_wallet_session(session["mxWalletSessionId"])
    assert [i["rank"] for i in detail["mxWallet"]["paymentInstruments"]] == [1, 2]


def test_sepa_payout_create_and_get(api, monext):
    created = api.create_sepa_transfer(
        25000, "EUR", {"payment_method_id": "BANK_TRANSFER_1"},
        {"bic": "BDFEFR2L", "holder_name": "John Do", "iban": "FR7630001007941234567890185"},
        comment="March commission", cross_reference={"order_reference": "order-1001"})
    assert monext.bodies[-1]["crossReference"] == {"orderReference": "order-1001"}
    transaction = created["transaction"]
    assert (transaction["type"], transaction["amount"], created["result"]["title"]) == ("TRANSFER", 25000, "INPROGRESS")
    fetched = api.get_payout(transaction["id"])
    assert fetched["transaction"]["usedBankAccounts"]["payeeBankAccount"]["maskedIban"].startswith("FR76X")
    with pytest.raises(ProviderNotFound):
        api.get_payout("404404")


def test_pagination_pages_and_iterator(api, monext, paid):
    _, transaction_id = paid
    origin = {"origin": "ExistingTransaction", "transaction_id": transaction_id}
    api.create_wallet("WALLET-P", origin)
    for _ in range(6):
        api.add_payment_instrument("WALLET-P", origin)
    path = f"/v1/checkout/merchants/{monext.merchant_id}/mxwallets/WALLET-P/paymentinstruments"

    page = api.list_page(path, page=1, size=3, sort="rank,asc")
    assert [i["rank"] for i in page.items] == [4, 5, 6]
    assert (page.count, page.start_index, page.end_index, page.record_total) == (3, 3, 5, 7)
    assert monext.requests[-1] == ("GET", path + "?size=3&page=1&sort=rank%2Casc")

    monext.requests.clear()
    assert [i["rank"] for i in api.iterate(path, size=3, sort="rank,desc")] == [7, 6, 5, 4, 3, 2, 1]
    assert len(monext.requests) == 3
    monext.requests.clear()
    assert len(list(api.iterate(path, size=7))) == 7
    assert len(monext.requests) == 1  # recordTotal reached: no empty page asked for

    monext.max_page_size = 2  # fewer per page than asked for: the walk goes on to recordTotal
    assert [i["rank"] for i in api.iterate(path, size=3)] == [1, 2, 3, 4, 5, 6, 7]
    monext.broken_paging = True  # the same full page whatever page is asked, and no totals
    with pytest.raises(ProviderUnavailable, match="repeats"):
        list(api.iterate(path, size=2))
    with pytest.raises(ValidationError):
        api.list_page(path, sort="rank; DROP TABLE")
    with pytest.raises(ValidationError):
        api.list_page(path, size=0)
