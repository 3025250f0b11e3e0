"""Watches through real servers: two hosts on PostgreSQL watching one payment, and a server killed
while it asks the provider."""

from __future__ import annotations

import time

import pytest

import hookhub
from conftest import SECRET_KEY, moncash_config
from hookhub.hub import close_standalone
from servers import Gunicorn, wait_for_deliveries

pytestmark = pytest.mark.server

WATCHING = {"HOOKHUB_WATCH_AFTER_SECONDS": "0", "HOOKHUB_RETRY_BASE_SECONDS": "0.2",
            "HOOKHUB_RETRY_MAX_SECONDS": "0.4"}


@pytest.fixture
def shop():
    """Start payments as a shop's own process would: a standalone hub on the servers' store."""
    def start(moncash, database_url: str, order_id: str, amount: int = 1050) -> hookhub.Checkout:
        settings = {**moncash_config(moncash), "HOOKHUB_DATABASE_URL": database_url,
                    "HOOKHUB_SECRET_KEY": SECRET_KEY}
        return hookhub.start_payment("moncash", order_id=order_id, amount=amount, currency="HTG", settings=settings)

    yield start
    close_standalone()


def watch_row(host: Gunicorn, order_id: str) -> dict:
    with host.store() as store:
        return store.get_watch("moncash", order_id)


def test_two_hosts_watching_one_payment_make_one_event_and_ask_once_per_check(tmp_path, postgresql_url, moncash,
                                                                              monri, monext, shop):
    hosts = []
    try:
        for name in ("host-a", "host-b"):
            (tmp_path / name).mkdir()
            hosts.append(Gunicorn(tmp_path / name, moncash, monri, monext,
                                  env={"HOOKHUB_DATABASE_URL": postgresql_url, **WATCHING}))
        shop(moncash, postgresql_url, "two-hosts-watch")
        time.sleep(2.0)  # both hosts' background work sees the watch due, again and again
        assert watch_row(hosts[0], "two-hosts-watch")["attempts"] >= 2
        moncash.make_payment(order_id="two-hosts-watch", amount=1050, currency="HTG", status="approved")
        delivered = wait_for_deliveries(hosts, 1, timeout=30)
        time.sleep(1.0)
        watch = watch_row(hosts[0], "two-hosts-watch")
    finally:
        for host in hosts:
            host.close()
    assert [(e["type"], e["order_id"], e["source"]) for e in delivered] == \
        [("payment.approved", "two-hosts-watch", "poll")]
    assert watch["status"] == "settled"
    # Every call to MonCash was one claimed check: no due check was asked about by both hosts.
    assert 1 <= moncash.count("/Api/v1/RetrieveOrderPayment") <= watch["attempts"]


def test_a_server_killed_while_it_asks_loses_no_watch(tmp_path, moncash, monri, monext, shop):
    env = {**WATCHING, "HOOKHUB_LEASE_SECONDS": "2", "HOOKHUB_HANDLER_TIMEOUT": "1"}
    first = Gunicorn(tmp_path, moncash, monri, monext, env=env)
    try:
        shop(moncash, first.database_url, "killed-mid-poll")
        moncash.delay = 30.0  # MonCash hangs: the poll is in flight when the server dies
        deadline = time.monotonic() + 20
        while watch_row(first, "killed-mid-poll")["lease_until"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watch_row(first, "killed-mid-poll")["lease_until"] is not None
    finally:
        first.kill_everything()
    held = watch_row(first, "killed-mid-poll")
    assert held["status"] == "pending" and held["attempts"] >= 1

    moncash.delay = 0
    moncash.make_payment(order_id="killed-mid-poll", amount=1050, currency="HTG", status="approved")
    second = Gunicorn(tmp_path, moncash, monri, monext, env=env, log_name="second.log")
    try:
        delivered = second.wait_for_deliveries(1, timeout=30)
    finally:
        second.close()
    assert [(e["type"], e["order_id"], e["source"]) for e in delivered] == [("payment.approved", "killed-mid-poll", "poll")]
    assert watch_row(second, "killed-mid-poll")["status"] == "settled"
