"""The outbound half: payments and payouts a shop starts through hookhub, watched until final."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

import hookhub
from conftest import PUBLIC_URL, drain, hub_of
from hookhub import ConfigError, ProviderAPIError, ValidationError
from hookhub.cli import cli
from hookhub.cli.context import HubSource, environment_hub
from hookhub.store import schema, utcnow

DATABASES = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def watching(make_app, recorder):
    """An app whose watches ask the provider as soon as they are due, again some 10-50 ms later (so a
    drain asks a few times, not thousands), and give up after 10 minutes, far beyond any test."""

    def make(**config):
        return make_app({"HOOKHUB_WATCH_AFTER_SECONDS": 0, "HOOKHUB_WATCH_GIVE_UP_SECONDS": 600,
                         "HOOKHUB_RETRY_BASE_SECONDS": 0.02, "HOOKHUB_RETRY_MAX_SECONDS": 0.05, **config},
                        plugins=[recorder])

    return make


def watch_of(app, provider, order_id, kind=None):
    return hub_of(app).store.get_watch(provider, order_id, kind)


def kinds(recorder):
    return [(e.type, e.order_id, e.amount, e.source) for e in recorder.events]


# -- payments ------------------------------------------------------------------------------------------


def test_a_moncash_payment_paid_with_no_callback_nor_return_is_found_by_asking(watching, moncash, recorder):
    app = watching()
    checkout = hookhub.start_payment("moncash", order_id="shop-1", amount=12550, currency="HTG", app=app)
    assert checkout.redirect_url.startswith(f"{moncash.gateway_url}/Payment/Redirect?token=")
    assert (checkout.provider, checkout.order_id, checkout.amount, checkout.watched) == ("moncash", "shop-1", 12550, True)
    assert watch_of(app, "moncash", "shop-1")["status"] == "pending"

    drain(app)  # not paid yet: MonCash does not know the order, and nothing is made of that
    assert recorder.events == [] and watch_of(app, "moncash", "shop-1")["last_answer"].startswith("not known")

    moncash.make_payment(order_id="shop-1", amount=12550, currency="HTG", status="approved")
    _due_now(app, "moncash", "shop-1")
    drain(app)
    assert kinds(recorder) == [("payment.approved", "shop-1", 12550, "poll")]
    assert watch_of(app, "moncash", "shop-1")["status"] == "settled"
    asked = moncash.count("/Api/v1/RetrieveOrderPayment")
    _due_now(app, "moncash", "shop-1")
    drain(app)
    assert moncash.count("/Api/v1/RetrieveOrderPayment") == asked == watch_of(app, "moncash", "shop-1")["attempts"]


def _due_now(app, provider, order_id):
    """Make a watch due now (the tests' stand-in for waiting out its backoff)."""
    v = schema.verifications
    with hub_of(app).store._write() as conn:
        conn.execute(update(v).where(v.c.provider == provider, v.c.reference == order_id)
                     .values(next_attempt_at=utcnow()))


def test_a_payment_settled_by_its_callback_costs_no_call_to_the_provider(watching, moncash, recorder):
    app = watching(HOOKHUB_WATCH_AFTER_SECONDS=3600)
    client = app.test_client()
    hookhub.start_payment("moncash", order_id="shop-2", amount=500, currency="HTG", app=app)
    paid = moncash.make_payment(order_id="shop-2", amount=500, currency="HTG", status="approved")
    assert client.post("/hooks/moncash", json={"transactionId": paid.transaction_id}).status_code == 200
    _due_now(app, "moncash", "shop-2")
    drain(app)
    assert kinds(recorder) == [("payment.approved", "shop-2", 500, "callback")]
    assert watch_of(app, "moncash", "shop-2")["status"] == "settled"
    assert moncash.count("/Api/v1/RetrieveOrderPayment") == 0


def test_a_payment_never_paid_expires_and_a_later_payment_still_counts(watching, moncash, recorder):
    app = watching(HOOKHUB_WATCH_GIVE_UP_SECONDS=0.3)
    client = app.test_client()
    hookhub.start_payment("moncash", order_id="shop-3", amount=700, currency="HTG", app=app)
    deadline = time.monotonic() + 10
    while watch_of(app, "moncash", "shop-3")["status"] == "pending" and time.monotonic() < deadline:
        drain(app)
        time.sleep(0.05)
    assert watch_of(app, "moncash", "shop-3")["status"] == "expired"
    assert kinds(recorder) == [("payment.expired", "shop-3", 700, "poll")]

    paid = moncash.make_payment(order_id="shop-3", amount=700, currency="HTG", status="approved")
    assert client.get(f"/return/moncash?transactionId={paid.transaction_id}").status_code == 303
    drain(app)
    assert kinds(recorder)[1:] == [("payment.approved", "shop-3", 700, "return")]


def test_a_monext_session_expires_on_its_own_state_machine_and_can_still_be_paid(watching, monext, recorder):
    app = watching(HOOKHUB_WATCH_GIVE_UP_SECONDS=0.3, HOOKHUB_PUBLIC_URL=PUBLIC_URL)
    checkout = hookhub.start_payment("monext", order_id="shop-mx", amount=4200, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1")
    assert checkout.redirect_url.startswith(monext.url) and checkout.reference
    deadline = time.monotonic() + 10
    while watch_of(app, "monext", "shop-mx")["status"] == "pending" and time.monotonic() < deadline:
        drain(app)
        time.sleep(0.05)
    assert kinds(recorder) == [("payment.expired", "shop-mx", 4200, "poll")]
    # The buyer pays the same session late: Monext's notification approves the expired payment.
    monext.make_payment(order_id="shop-mx", amount=4200, currency="EUR", status="approved")
    client = app.test_client()
    assert client.get(f"/hooks/monext?token={checkout.reference}").status_code == 200
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.expired", "payment.approved"]
    assert len({e.transaction_id for e in recorder.events}) == 2  # the session, then its transaction


def test_monri_components_payment_is_found_by_asking(watching, monri, recorder):
    app = watching()
    checkout = hookhub.start_payment("monri", order_id="shop-mr", amount=1999, currency="EUR", app=app)
    assert checkout.client_secret and checkout.redirect_url is None
    drain(app)
    assert recorder.events == []
    monri.make_payment(order_id="shop-mr", amount=1999, currency="EUR", status="approved")
    _due_now(app, "monri", "shop-mr")
    drain(app)
    assert kinds(recorder) == [("payment.approved", "shop-mr", 1999, "poll")]


def test_a_callback_during_a_watch_poll_makes_one_event(watching, moncash, recorder):
    app = watching()
    client = app.test_client()
    hookhub.start_payment("moncash", order_id="shop-4", amount=900, currency="HTG", app=app)
    paid = moncash.make_payment(order_id="shop-4", amount=900, currency="HTG", status="approved")
    moncash.delay = 0.3  # both the poll and the callback's fetch wait on MonCash at the same time
    poller = threading.Thread(target=hub_of(app).run_due_work)
    poller.start()
    deadline = time.monotonic() + 10
    while moncash.count("/Api/v1/RetrieveOrderPayment") == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # the poll is asking MonCash now
    assert client.post("/hooks/moncash", json={"transactionId": paid.transaction_id}).status_code == 200
    poller.join()
    moncash.delay = 0
    drain(app)
    assert [e.type for e in recorder.events] == ["payment.approved"]
    assert moncash.count("/Api/v1/RetrieveOrderPayment") == 1


# -- payouts -------------------------------------------------------------------------------------------


def test_a_payout_answered_5xx_but_made_ends_succeeded(watching, moncash, recorder):
    app = watching()
    moncash.payout_outcomes["50937000001"] = "error_after_success"
    payout = hookhub.start_payout("moncash", reference="po-1", amount=10000, currency="HTG", app=app,
                                  receiver="50937000001")
    assert (payout.status, payout.watched) == ("pending", True)
    drain(app)
    assert kinds(recorder) == [("payout.succeeded", "po-1", 10000, "poll")]
    assert recorder.events[0].totals == {"paid": 10000}
    assert watch_of(app, "moncash", "po-1", "payout")["status"] == "settled"
    listed = app.test_cli_runner().invoke(args=["hookhub", "payouts", "list", "--json"])
    assert [(p["reference"], p["status"], p["amount"]) for p in json.loads(listed.output)] == [("po-1", "succeeded", 10000)]
    shown = app.test_cli_runner().invoke(args=["hookhub", "payouts", "show", "moncash", "po-1"])
    assert "status:          succeeded" in shown.output and "payout.succeeded" in shown.output


def test_a_pending_payout_is_pending_once_then_succeeds(watching, moncash, recorder):
    app = watching(HOOKHUB_RETRY_BASE_SECONDS=60, HOOKHUB_RETRY_MAX_SECONDS=60)  # asked again only when the test says
    moncash.payout_outcomes["50937000002"] = "pending"
    payout = hookhub.start_payout("moncash", reference="po-2", amount=2500, currency="HTG", app=app,
                                  receiver="50937000002")
    assert payout.status == "pending"
    for _ in range(3):
        _due_now(app, "moncash", "po-2")
        drain(app)
    assert kinds(recorder) == [("payout.pending", "po-2", 2500, "client")]
    moncash.settle_payout("po-2", "successful")
    _due_now(app, "moncash", "po-2")
    drain(app)
    assert [e.type for e in recorder.events] == ["payout.pending", "payout.succeeded"]


def test_a_failed_payout_says_so_at_once(watching, moncash, recorder):
    app = watching()
    moncash.payout_outcomes["50937000003"] = "fail"
    payout = hookhub.start_payout("moncash", reference="po-3", amount=100, currency="HTG", app=app,
                                  receiver="50937000003")
    assert payout.status == "failed"
    drain(app)
    assert kinds(recorder) == [("payout.failed", "po-3", 100, "client")]
    assert recorder.events[0].totals == {"paid": 0}


def test_a_payout_reference_is_used_once(watching, moncash, recorder):
    app = watching()
    moncash.payout_outcomes["50937000005"] = "error_after_success"
    first = hookhub.start_payout("moncash", reference="po-dup", amount=300, currency="HTG", app=app,
                                 receiver="50937000005")
    assert first.status == "pending"
    with pytest.raises(ValidationError) as refused:  # the shop retrying a payout that may have been made
        hookhub.start_payout("moncash", reference="po-dup", amount=300, currency="HTG", app=app,
                             receiver="50937000005")
    assert refused.value.field == "reference" and "already used" in refused.value.message
    assert moncash.count("/Api/v1/Transfert") == 1


def test_a_new_attempt_is_watched_whatever_an_earlier_one_ended_as(watching, monext, recorder):
    app = watching(HOOKHUB_PUBLIC_URL=PUBLIC_URL)
    client = app.test_client()
    first = hookhub.start_payment("monext", order_id="shop-again", amount=800, currency="EUR", app=app,
                                  point_of_sale_reference="POS_WEB-1")
    monext.settle(first.reference, "REFUSED")
    assert client.get(f"/hooks/monext?token={first.reference}").status_code == 200
    second = hookhub.start_payment("monext", order_id="shop-again", amount=800, currency="EUR", app=app,
                                   point_of_sale_reference="POS_WEB-1")
    drain(app)
    watch = watch_of(app, "monext", "shop-again")
    assert (watch["status"], watch["reference"]) == ("pending", second.reference)  # the decline was the first's
    monext.make_payment(order_id="shop-again", amount=800, currency="EUR", status="approved")
    _due_now(app, "monext", "shop-again")
    drain(app)
    assert [(e.type, e.source) for e in recorder.events] == [("payment.declined", "callback"),
                                                             ("payment.approved", "poll")]


def test_a_refused_payout_raises_and_is_not_watched(watching, moncash, recorder):
    app = watching()
    moncash.full_accounts.add("50937000004")
    with pytest.raises(ProviderAPIError) as refused:
        hookhub.start_payout("moncash", reference="po-4", amount=100, currency="HTG", app=app,
                             receiver="50937000004")
    assert refused.value.status == 403 and "Maximum Account Balance" in str(refused.value)
    assert watch_of(app, "moncash", "po-4") is None
    drain(app)
    assert recorder.events == []


def test_a_monext_transfer_in_progress_then_accepted(watching, monext, recorder):
    app = watching(HOOKHUB_RETRY_BASE_SECONDS=60, HOOKHUB_RETRY_MAX_SECONDS=60)
    iban = "FR7630001007941234567890185"
    monext.payout_outcomes[iban] = "pending"
    payout = hookhub.start_payout("monext", reference="po-mx", amount=25000, currency="EUR", app=app,
                                  payer_bank_account={"payment_method_id": "BANK_TRANSFER_1"},
                                  payee_bank_account={"bic": "BDFEFR2L", "holder_name": "J Doe", "iban": iban})
    assert payout.status == "pending" and payout.transaction_id
    drain(app)
    monext.settle_payout(payout.transaction_id, "ACCEPTED")
    _due_now(app, "monext", "po-mx")
    drain(app)
    assert kinds(recorder) == [("payout.pending", "po-mx", 25000, "client"),
                               ("payout.succeeded", "po-mx", 25000, "poll")]


# -- bad input and configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("arguments,error,field", [
    (dict(provider="moncash", amount=10.5), ValidationError, "amount"),
    (dict(provider="moncash", amount=True), ValidationError, "amount"),
    (dict(provider="moncash", amount=0), ValidationError, "amount"),
    (dict(provider="moncash", currency="EUR"), ValidationError, "currency"),
    (dict(provider="moncash", currency="EURO"), ValidationError, "currency"),
    (dict(provider="moncash", order_id="x" * 500), ValidationError, "order_id"),
    (dict(provider="moncash", order_id=" spaced"), ValidationError, "order_id"),
    (dict(provider="moncash", colour="red"), ValidationError, "colour"),
    (dict(provider="monext"), ValidationError, "point_of_sale_reference"),
    (dict(provider="stripe"), ConfigError, "stripe"),
], ids=["float", "bool", "zero", "refused-currency", "bad-currency", "long-order", "spaced-order",
        "unknown-field", "monext-pos", "unknown-provider"])
def test_bad_input_is_refused_naming_it_and_nothing_is_sent_nor_recorded(watching, moncash, monext, arguments,
                                                                         error, field):
    app = watching()
    call = {"order_id": "shop-bad", "amount": 1000, "currency": "HTG", **arguments}
    with pytest.raises(error) as refused:
        hookhub.start_payment(call.pop("provider"), app=app, **call)
    assert (refused.value.field if isinstance(refused.value, ValidationError) else str(refused.value)).count(field)
    assert moncash.requests == [] and monext.requests == []
    assert hub_of(app).store.list_watches() == []


def test_an_unconfigured_provider_is_named_with_what_it_needs(watching):
    app = watching()
    hub_of(app).registry.enabled.pop("monri")  # as if its settings were gone
    with pytest.raises(ConfigError, match="provider 'monri' is not configured"):
        hookhub.client("monri", app)


def test_a_watch_whose_provider_is_unconfigured_later_stays_and_says_why(make_app, monri, recorder, url):
    shop = make_app({"HOOKHUB_DATABASE_URL": url, "HOOKHUB_WATCH_AFTER_SECONDS": 0})
    hookhub.start_payment("monri", order_id="shop-later", amount=300, currency="EUR", app=shop)
    server = make_app({"HOOKHUB_DATABASE_URL": url, "HOOKHUB_WATCH_AFTER_SECONDS": 0}, plugins=[recorder],
                      with_monri=False)
    drain(server)
    assert watch_of(server, "monri", "shop-later")["status"] == "pending"
    shown = server.test_cli_runner().invoke(args=["hookhub", "watches", "show", "monri", "shop-later"])
    assert shown.exit_code == 0, shown.output
    assert "status:           pending" in shown.output
    assert "provider 'monri' is not configured here (set HOOKHUB_MONRI_MERCHANT_KEY" in shown.output
    listed = server.test_cli_runner().invoke(args=["hookhub", "watches", "list", "--json"])
    [row] = json.loads(listed.output)
    assert row["order_id"] == "shop-later" and "not configured" in row["not_asked_because"]


# -- standalone clients --------------------------------------------------------------------------------


SHOP_SCRIPT = r"""
import json, sys, threading
before = {t.name for t in threading.enumerate()}
import hookhub
client = hookhub.client("moncash")
token = client.access_token()
checkout = hookhub.start_payment("moncash", order_id="shop-standalone", amount=1050, currency="HTG")
from flask import Flask
shop = Flask("shop")
with shop.app_context():  # the shop's own app is not hookhub's: the environment's settings serve
    same = hookhub.client("moncash") is client
print(json.dumps({
    "threads_before": sorted(before), "threads_after": sorted(t.name for t in threading.enumerate()),
    "handler_imported": "exploding_handler" in sys.modules, "same_client": same,
    "redirect_url": checkout.redirect_url, "watched": checkout.watched,
    "modules": sorted(m for m in sys.modules if m.startswith("hookhub")),
}))
"""


def test_a_standalone_client_works_in_any_process_and_starts_nothing(tmp_path, moncash, url):
    (tmp_path / "exploding_handler.py").write_text("raise RuntimeError('a shop process imported a handler')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), **moncash.settings(),
           "HOOKHUB_DATABASE_URL": url, "HOOKHUB_HANDLERS": "exploding_handler",
           "HOOKHUB_INSTANCE_PATH": str(tmp_path / "instance")}
    done = subprocess.run([sys.executable, "-c", SHOP_SCRIPT], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["threads_after"] == seen["threads_before"]
    assert not seen["handler_imported"] and seen["same_client"] and seen["watched"]
    assert seen["redirect_url"].startswith(moncash.gateway_url)
    assert not (tmp_path / "instance" / "secret_key").exists()  # a client writes no key
    listed = CliRunner().invoke(cli, ["watches", "list", "--json"], env={**env, "HOOKHUB_HANDLERS": ""},
                                obj=HubSource(environment_hub))
    assert listed.exit_code == 0, listed.output
    assert [(w["provider"], w["order_id"], w["amount"]) for w in json.loads(listed.output)] == \
        [("moncash", "shop-standalone", 1050)]
