"""The store on its own: leases, deferred jobs, and the per-transaction lock under threads."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from hookhub import Trigger
from hookhub.states import TransactionState, is_transition
from hookhub.store import Store, utcnow


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.create_schema()
    yield store
    store.close()


def approved(tid="t1"):
    return TransactionState("approved", tid, "o1", 100, "HTG", {"id": tid})


def add_event(store, state, handlers=("h1",)):
    with store.locked("p", state.lock_key) as tx:
        return tx.add_event(state, source="callback", inbound_call_id=None,
                            received_at=datetime.now(timezone.utc), handlers=handlers)


def test_a_lost_lease_cannot_record_a_result(store):
    add_event(store, approved())
    first = store.claim_delivery(["h1"], lease=0.05)
    assert store.claim_delivery(["h1"], lease=0.05) is None  # leased: nobody else gets it
    time.sleep(0.1)
    second = store.claim_delivery(["h1"], lease=60)  # the first worker counts as dead now
    assert second is not None and second.attempts == 2
    assert store.delivery_succeeded(second) is True
    assert store.delivery_failed(first, "late failure", None) is False
    [delivery] = store.list_deliveries()
    assert (delivery["status"], delivery["last_error"]) == ("done", None)


def test_deferred_verification_is_one_job_per_reference_and_revives(store):
    due = utcnow()
    for _ in range(3):
        store.defer_verification("p", Trigger("ref-1", {"a": 1}), inbound_call_id=None, due=due)
    [job] = store.list_verifications()
    claimed = store.claim_verification(["p"], lease=60)
    assert claimed.trigger == Trigger("ref-1", {"a": 1})
    store.verification_failed(claimed, "gone", None)
    assert store.list_verifications()[0]["status"] == "gave_up"
    store.defer_verification("p", Trigger("ref-1"), inbound_call_id=None, due=due)
    [revived] = store.list_verifications()
    assert (revived["id"], revived["status"], revived["attempts"]) == (job["id"], "pending", 0)


def test_the_transaction_lock_serializes_threads(store):
    """Many threads race to approve one transaction: exactly one event, and no lost update."""
    barrier = threading.Barrier(12)
    made = []

    def race():
        barrier.wait()
        with store.locked("p", "t1") as tx:
            current = tx.current.status if tx.current else None
            if is_transition(current, "approved"):
                time.sleep(0.01)  # widen the window a lost update would need
                made.append(tx.add_event(approved(), source="return", inbound_call_id=None,
                                         received_at=datetime.now(timezone.utc), handlers=["h1"]))

    threads = [threading.Thread(target=race) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert [e.id for e in store.list_events()] == [made[0].id]
    assert len(store.list_deliveries()) == 1
