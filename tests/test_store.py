"""The store on its own, on SQLite and on PostgreSQL: leases, deferred jobs, claims, and the
per-transaction lock under threads (each thread on its own connection)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from hookhub import Trigger
from hookhub.errors import StoreUnavailable
from hookhub.ledger import Ledger, plan
from hookhub.states import TransactionState
from hookhub.store import DeliveryResult, Store, migrate, utcnow


DATABASES = ("sqlite", "postgresql")


@pytest.fixture
def store(url):
    store = Store(url)
    migrate.upgrade(store)
    yield store
    store.close()


def approved(tid="t1"):
    return TransactionState("approved", tid, "o1", 100, "HTG", {"id": tid})


def add_event(store, state, handlers=("h1",)):
    with store.locked("p", state.lock_key) as tx:
        _, events = tx.reconcile(state, source="callback", inbound_call_id=None,
                                 received_at=datetime.now(timezone.utc), handlers=handlers)
        return events[-1] if events else None


def test_a_lost_lease_cannot_record_a_result(store):
    add_event(store, approved())
    first = store.claim_delivery(["h1"], lease=0.05)
    assert store.delivery_started(first) is True  # the attempt counts from its start
    assert store.claim_delivery(["h1"], lease=0.05) is None  # leased: nobody else gets it
    time.sleep(0.1)
    second = store.claim_delivery(["h1"], lease=60)  # the first worker counts as dead now
    assert second is not None and second.attempts == 2
    assert store.delivery_succeeded(second) is True
    assert store.delivery_failed(first, "late failure", None) is False
    [delivery] = store.list_deliveries()
    assert (delivery["status"], delivery["last_error"]) == ("done", None)


def test_deliveries_are_claimed_and_settled_in_batches(store):
    for i in range(5):
        add_event(store, approved(f"t{i}"), handlers=("h1",))
    batch = store.claim_deliveries(["h1"], lease=60, limit=3)
    assert len({job.id for job in batch}) == 3 and len({job.lease for job in batch}) == 1
    assert [job.event.transaction_id for job in batch] == ["t0", "t1", "t2"]  # most overdue first
    rest = store.claim_deliveries(["h1"], lease=60, limit=10)
    assert [job.event.transaction_id for job in rest] == ["t3", "t4"]  # the batch's jobs are not handed out
    assert store.claim_deliveries(["h1"], lease=60, limit=10) == []
    later = utcnow()
    assert store.settle_deliveries([DeliveryResult(batch[0]), DeliveryResult(batch[1], "boom", later),
                                    DeliveryResult(batch[2], "boom", None)]) == [True, True, True]
    states = {d["id"]: (d["status"], d["last_error"], d["lease_owner"]) for d in store.list_deliveries()}
    assert [states[job.id] for job in batch] == [("done", None, None), ("pending", "boom", None), ("dead", "boom", None)]


def test_jobs_of_a_batch_given_back_are_due_again_uncounted(store):
    for i in range(3):
        add_event(store, approved(f"t{i}"), handlers=("h1",))
    batch = store.claim_deliveries(["h1"], lease=60, limit=3)
    store.release_deliveries(batch[1:])
    again = store.claim_deliveries(["h1"], lease=60, limit=3)
    assert sorted(job.id for job in again) == sorted(job.id for job in batch[1:])
    assert [job.attempts for job in again] == [1, 1]  # given back unstarted: the attempt did not count
    store.release_deliveries(batch[1:])  # an old claim gives nothing back that another holds now
    assert store.claim_deliveries(["h1"], lease=60, limit=3) == []


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
    """Many threads race to approve one pending transaction: exactly one event, no lost update, no error."""
    pending = add_event(store, TransactionState("pending", "t1", "o1", 100, "HTG", {"id": "t1"}))
    barrier = threading.Barrier(12)
    made, errors = [], []

    def race():
        barrier.wait()
        try:
            with store.locked("p", "t1") as tx:
                planned = tx.plan(approved())
                time.sleep(0.01)  # widen the window a lost update would need
                made.extend(tx.apply(approved(), planned, source="return", inbound_call_id=None,
                                     received_at=datetime.now(timezone.utc), handlers=["h1"]))
        except Exception as exc:  # a constraint caught what the lock should have prevented
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(made) == 1
    assert [e.id for e in store.list_events()] == [pending.id, made[0].id]
    assert len(store.list_deliveries()) == 2


@pytest.fixture
def impatient(url):
    """The same store opened by another process that waits for locks only briefly."""
    other = Store(url, timeout=0.3)
    yield other
    other.close()


def test_the_transaction_lock_is_held_against_other_connections_until_the_timeout(store, impatient):
    add_event(store, approved())  # the lock's row exists: only the lock itself can hold anyone up
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.locked("p", "t1"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        with pytest.raises(StoreUnavailable):
            with impatient.locked("p", "t1"):
                pass
        if store.dialect == "postgresql":  # row locks: other transactions are not held up
            with impatient.locked("p", "another key"):
                pass
    finally:
        release.set()
        holder.join()
    with impatient.locked("p", "t1") as tx:  # released at the end of the holder's block
        assert tx.current.status == "approved"


def test_concurrent_claims_never_hand_out_one_delivery_twice(store):
    for n in range(40):
        add_event(store, approved(f"t{n}"), handlers=("h1", "h2"))
    claimed, barrier = [], threading.Barrier(8)

    def claim_all():
        barrier.wait()
        while (job := store.claim_delivery(["h1", "h2"], lease=60)) is not None:
            claimed.append((job.event.id, job.handler))

    threads = [threading.Thread(target=claim_all) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 80 and len(set(claimed)) == 80


def test_the_database_refuses_a_second_event_of_one_status_for_a_transaction(store):
    """Even if every lock failed, one transaction can never get two events of the same type."""
    add_event(store, approved())
    with store.locked("p", "t1") as tx:
        forged = plan(Ledger(), approved())  # as if nothing were booked: bypasses the ledger on purpose
    with pytest.raises(IntegrityError):
        with store.locked("p", "t1") as tx:
            tx.apply(approved(), forged, source="callback", inbound_call_id=None,
                     received_at=datetime.now(timezone.utc), handlers=("h1",))
    assert len(store.list_events()) == 1 and len(store.list_deliveries()) == 1
    assert add_event(store, approved()) is None  # through the ledger, the repeat is a duplicate


def test_a_row_held_by_a_stuck_claim_is_skipped_not_waited_for(store, url, impatient):
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time; there is no row to skip past")
    first, second = add_event(store, approved("t1")), add_event(store, approved("t2"))
    [held_id] = [d["id"] for d in store.list_deliveries(event_id=first.id)]
    with psycopg.connect(url) as stuck:  # mid-claim, on another host
        stuck.execute("SELECT id FROM deliveries WHERE id = %s FOR UPDATE", (held_id,))
        job = impatient.claim_delivery(["h1"], lease=60)
    assert job is not None and job.event.id == second.id


def test_a_process_whose_heartbeat_went_stale_claims_and_starts_nothing(store):
    from sqlalchemy import update

    from hookhub.store import schema

    add_event(store, approved())
    store.register_worker("frozen", host="h", node="n", pid=1)
    store.register_worker("awake", host="h", node="n", pid=2)
    job = store.claim_delivery(["h1"], lease=60, claimed_by="frozen")
    assert job is not None
    with store._write() as conn:  # "frozen" stops beating for longer than a few beats
        conn.execute(update(schema.workers).where(schema.workers.c.owner == "frozen").values(
            beat_at=datetime(2000, 1, 1, tzinfo=timezone.utc)))
    taken = store.claim_delivery(["h1"], lease=60, claimed_by="awake")  # orphaned: taken at once
    assert taken is not None and taken.id == job.id
    assert store.delivery_started(job) is False  # the old claim can no longer start it
    assert store.claim_delivery(["h1"], lease=60, claimed_by="frozen") is None  # nor claim anything
    assert store.delivery_started(taken) is True
    assert [d["attempts"] for d in store.list_deliveries()] == [1]
