"""The providers' sandboxes and the hookhub.testing kit, as a merchant's test suite uses them."""

from __future__ import annotations

import pytest
import requests

from conftest import Recorder
from hookhub.testing import deliver


EXPECTED = {"approved": "payment.approved", "declined": "payment.declined", "pending": "payment.pending"}
PLAYS = [("moncash", "return"), ("moncash", "callback"), ("monri", "callback"), ("monri", "return"),
         ("monext", "callback"), ("monext", "return")]


@pytest.mark.parametrize("provider,plays,status", [
    (provider, plays, status) for provider, plays in PLAYS for status in EXPECTED
    if (provider, plays, status) != ("monri", "callback", "pending")])  # Monri calls back on finished payments only
def test_each_sandbox_plays_each_payment_to_its_event(hookhub_app_factory, hookhub_sandbox, provider, plays, status):
    shop = Recorder()
    app = hookhub_app_factory(plugins=[shop])
    payment, answer = hookhub_sandbox[provider].simulate(app.test_client(), plays=plays, amount=2575, status=status)
    assert answer.status_code == (303 if plays == "return" else 200), answer.get_data(as_text=True)
    deliver(app)
    [event] = shop.events
    assert (event.type, event.provider, event.order_id) == (EXPECTED[status], provider, payment.order_id)
    assert (event.amount, event.currency, event.source) == (2575, payment.currency, plays)
    # Playing the same again is a duplicate: nothing new for the shop.
    request = (hookhub_sandbox[provider].callback(payment) if plays == "callback" else
               hookhub_sandbox[provider].buyer_return(payment, public_url="http://localhost"))
    assert request.send(app.test_client()).status_code < 400
    deliver(app)
    assert len(shop.events) == 1


def test_a_signed_request_from_the_sandbox_fails_when_tampered_with(hookhub_client, hookhub_sandbox):
    monri = hookhub_sandbox["monri"]
    payment = monri.pay(order_id="order-tamper", amount=1000, currency="EUR")
    request = monri.callback(payment)
    forged = request.body.replace(b'"amount":1000', b'"amount":1')
    answer = hookhub_client.post(request.path, data=forged, headers=dict(request.headers))
    assert answer.status_code == 401


@pytest.mark.parametrize("body,message", [
    ({"order_id": "o-1", "amount": 10.5, "currency": "EUR"}, "amount"),
    ({"order_id": "o-1", "amount": 100, "currency": "EURO"}, "currency"),
    ({"order_id": "", "amount": 100, "currency": "EUR"}, "order_id"),
    ({"order_id": "o-1", "amount": 100, "currency": "EUR", "status": "paid"}, "status"),
    ([1, 2], "JSON object"),
])
def test_the_payments_route_refuses_what_no_provider_could_make(hookhub_sandbox, body, message):
    answer = requests.post(f"{hookhub_sandbox['monext'].url}/_sandbox/payments", json=body, timeout=5)
    assert answer.status_code == 400 and message in answer.json()["message"]


def test_moncash_takes_gourdes_only(hookhub_sandbox):
    with pytest.raises(RuntimeError, match="HTG only"):
        hookhub_sandbox["moncash"].pay(order_id="o-usd", amount=100, currency="USD")


def test_sandboxes_keep_their_provider_api_honest(hookhub_sandbox):
    """The fakes check credentials as the providers do: the sandbox is no open door."""
    moncash = hookhub_sandbox["moncash"]
    assert requests.post(f"{moncash.base_url}/v1/RetrieveTransactionPayment", json={"transactionId": "1"},
                         timeout=5).status_code == 401
    assert requests.get(f"{hookhub_sandbox['monext'].url}/v1/checkout/alive", timeout=5).status_code == 401
    assert requests.get(f"{hookhub_sandbox.url}/nowhere", timeout=5).status_code == 404
