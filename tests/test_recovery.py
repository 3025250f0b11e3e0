"""Crash recovery in seconds: work held by a dead process is taken back at once, through real
gunicorn servers, on SQLite and PostgreSQL; a frozen host and hosts with skewed clocks on PostgreSQL."""

from __future__ import annotations

import glob
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from hookhub.delivery import BATCH_SECONDS
from hookhub.store import schema
from servers import Gunicorn, wait_for_deliveries

pytestmark = pytest.mark.server

DATABASES = ("sqlite", "postgresql")
RECOVERY = 30.0  # seconds within which work held by a dead process must be done by others


def pay(server: Gunicorn, moncash, prefix: str, count: int) -> set[str]:
    """``count`` MonCash payments, each announced by its callback; the transaction ids acknowledged."""
    tids = [f"{prefix}{n:03d}" for n in range(count)]
    for tid in tids:
        moncash.add_payment(tid, f"order-{tid}", 5)

    def fire(tid: str) -> tuple[str, int]:
        return tid, requests.post(f"{server.url}/hooks/moncash", json={"transactionId": tid}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = dict(pool.map(fire, tids))
    assert set(answers.values()) == {200}
    return set(tids)


def claims(server: Gunicorn) -> dict[str, int]:
    """Deliveries held right now, by the process (heartbeat owner) holding them."""
    with server.store() as store, store.engine.connect() as conn:
        d = schema.deliveries.c
        rows = conn.execute(schema.deliveries.select().where(d.lease_owner.is_not(None), d.status == "pending")).all()
    return Counter(row.claimed_by for row in rows)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def attempts(server: Gunicorn) -> list[int]:
    with server.store() as store:
        return [d["attempts"] for d in store.list_deliveries()]


def test_a_server_killed_whole_gives_back_its_claimed_work_at_restart(tmp_path, database, moncash, monri, monext):
    env = {"HOOKHUB_TEST_HANDLER_DELAY": "1"}  # slow handlers: batches stay claimed
    if database:
        env["HOOKHUB_DATABASE_URL"] = database
    first = Gunicorn(tmp_path, moncash, monri, monext, env=env)
    try:
        acknowledged = pay(first, moncash, "kill", 24)
        wait_for(lambda: sum(claims(first).values()) >= 4, 20, "claiming deliveries")
    finally:
        first.kill_everything()  # master and workers: no clean stop, leases of 300 s left behind
    delivered_before = {e["transaction_id"] for e in first.delivered()}

    restarted = Gunicorn(tmp_path, moncash, monri, monext, env={**env, "HOOKHUB_TEST_HANDLER_DELAY": "0"},
                         log_name="restarted.log")
    started = time.monotonic()
    try:
        wait_for(lambda: acknowledged <= {e["transaction_id"] for e in restarted.delivered()},
                 RECOVERY, "every acknowledged event reaching the handler after the restart")
        took = time.monotonic() - started
        counts = attempts(restarted)
    finally:
        restarted.close()
    assert took < RECOVERY
    # Claimed but never started: no attempt counted. Started and cut off: counted once. A worker
    # records its batch's results together at the batch's end (within BATCH_SECONDS), so what it had
    # started in that second, at 1 s a call, is at most 2 attempts a worker whose outcome was lost.
    assert max(counts) <= 2 and counts.count(2) <= 2 * (BATCH_SECONDS + 1), counts
    assert len(delivered_before) < len(acknowledged)  # the kill did cut deliveries off


def test_a_killed_worker_is_replaced_and_its_batch_taken_back(tmp_path, database, moncash, monri, monext):
    env = {"HOOKHUB_TEST_HANDLER_DELAY": "0.5"}
    if database:
        env["HOOKHUB_DATABASE_URL"] = database
    server = Gunicorn(tmp_path, moncash, monri, monext, env=env)
    try:
        acknowledged = pay(server, moncash, "wkr", 20)
        holders = wait_for(lambda: claims(server), 20, "claiming deliveries")
        with server.store() as store:
            pid_of = {w["owner"]: w["pid"] for w in store.list_workers()}
        victim = next(pid_of[owner] for owner in holders if owner in pid_of)
        import os

        os.kill(victim, signal.SIGKILL)  # the master lives and starts another worker
        killed_at = time.monotonic()
        wait_for(lambda: acknowledged <= {e["transaction_id"] for e in server.delivered()},
                 RECOVERY, "the killed worker's batch being delivered by the others")
        assert time.monotonic() - killed_at < RECOVERY
        counts = attempts(server)
    finally:
        server.close()
    # The killed worker's attempts started in its last batch (0.5 s a call) had no recorded outcome.
    assert max(counts) <= 2 and counts.count(2) <= 2 * BATCH_SECONDS + 1, counts


def test_a_frozen_host_loses_its_work_and_records_nothing_stale_when_it_wakes(start_host, moncash):
    a = start_host("host-a", HOOKHUB_TEST_HANDLER_DELAY="1")
    acknowledged = pay(a, moncash, "frz", 16)
    held_by_a = wait_for(lambda: claims(a), 20, "host A claiming deliveries")
    a.signal_everything(signal.SIGSTOP)  # frozen whole, past its heartbeat window
    frozen_at = time.monotonic()
    b = start_host("host-b", HOOKHUB_TEST_HANDLER_DELAY="0")
    wait_for(lambda: acknowledged <= {e["transaction_id"] for e in a.delivered() + b.delivered()},
             RECOVERY + 5, "host B delivering host A's work")
    assert time.monotonic() - frozen_at < RECOVERY + 5
    a.signal_everything(signal.SIGCONT)
    time.sleep(4)  # A wakes: what it was running ends, and it records nothing over B's outcomes
    delivered = wait_for_deliveries([a, b], len(acknowledged), timeout=5)
    twice = [tid for tid, n in Counter(e["transaction_id"] for e in delivered).items() if n > 1]
    # Only an attempt A had already started when it froze can run again (at least once); nothing
    # A had claimed but not started is started by it after waking.
    assert len(twice) <= 2, twice
    with a.store() as store:
        rows = store.list_deliveries()
    assert {d["status"] for d in rows} == {"done"} and sum(held_by_a.values()) > 0


# Debian's libfaketime, preloaded into the host's master and workers (the faketime command would
# stand between the test and the server it must stop).
LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), None)


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (apt-get install faketime)")
@pytest.mark.parametrize("skew", ["+10m", "-10m"])
def test_a_host_with_a_skewed_clock_steals_nothing_from_a_live_host(start_host, moncash, skew):
    a = start_host("host-a", HOOKHUB_TEST_HANDLER_DELAY="2")
    acknowledged = pay(a, moncash, f"skew{skew[0] == '+'}", 8)
    held = wait_for(lambda: claims(a), 20, "host A claiming deliveries")
    b = start_host("host-b", LD_PRELOAD=LIBFAKETIME, FAKETIME=skew, HOOKHUB_TEST_HANDLER_DELAY="0")
    skewed = b.process.pid
    with open(f"/proc/{skewed}/environ", "rb") as handle:  # the clock really is skewed there
        assert f"FAKETIME={skew}".encode() in handle.read().split(b"\0")
    time.sleep(6)  # B's background work runs many rounds meanwhile
    delivered = wait_for_deliveries([a, b], len(acknowledged), timeout=40)
    assert Counter(e["transaction_id"] for e in delivered) == Counter(acknowledged)  # each exactly once
    assert sum(held.values()) > 0
    with a.store() as store:
        owners = {w["owner"] for w in store.list_workers()}
    assert len(owners) == 4  # both hosts' workers beat, none counts the other as dead
