"""Group commit on SQLite: concurrent writers of one process share a commit, and each is answered
only by the commit that holds its work."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, text

from conftest import hub_of
from hookhub.errors import StoreUnavailable


@pytest.fixture
def store(make_app):
    store = hub_of(make_app()).store
    with store._write() as conn:
        conn.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER "
                          "REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"))
    return store


def _write_together(store, blocks):
    """Run ``blocks`` (each given a connection) as concurrent writers: the first holds its turn until
    all the others wait for theirs. What each raised, or None; and how many commits there were."""
    commits = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    others_waiting = threading.Event()
    results = [None] * len(blocks)

    def writer(index):
        try:
            with store._write() as conn:
                if index == 0:
                    assert others_waiting.wait(10)
                blocks[index](conn)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=writer, args=(0,))]
    threads[0].start()
    while store._groups._group is None and not store._groups._busy:
        time.sleep(0.001)
    threads += [threading.Thread(target=writer, args=(i,)) for i in range(1, len(blocks))]
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while store._groups._waiting < len(blocks) - 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    others_waiting.set()
    for thread in threads:
        thread.join(10)
    return results, len(commits)


def _insert(parent_id):
    return lambda conn: conn.execute(text("INSERT INTO parents (id) VALUES (:id)"), {"id": parent_id})


def _stored(store):
    with store._read() as conn:
        return sorted(row.id for row in conn.execute(text("SELECT id FROM parents")))


def test_concurrent_writers_share_one_commit_and_a_failing_one_undoes_only_its_own_work(store):
    def fails(conn):
        conn.execute(text("INSERT INTO parents (id) VALUES (99)"))
        raise RuntimeError("this writer's bug")

    results, commits = _write_together(store, [_insert(1), _insert(2), fails, _insert(3), _insert(4)])
    assert [type(r).__name__ if r else None for r in results] == [None, None, "RuntimeError", None, None]
    assert commits == 1
    assert _stored(store) == [1, 2, 3, 4]


def test_a_shared_commit_that_fails_answers_none_of_its_writers(store):
    """A deferred foreign key makes the commit itself fail: every writer of the group raises, and
    nothing any of them wrote is stored."""
    orphan = lambda conn: conn.execute(text("INSERT INTO children (id, parent) VALUES (1, 12345)"))  # noqa: E731
    results, _ = _write_together(store, [_insert(1), orphan, _insert(2)])
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert _stored(store) == []
    results, commits = _write_together(store, [_insert(5), _insert(6)])  # the next group is unharmed
    assert results == [None, None] and commits == 1 and _stored(store) == [5, 6]


def test_a_writer_that_gets_no_turn_in_time_gets_a_store_error(make_app):
    store = hub_of(make_app({"HOOKHUB_STORE_TIMEOUT": 0.3})).store
    release = threading.Event()

    def hold():
        with store._write():
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    while not store._groups._busy:
        time.sleep(0.001)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        with store._write():
            pass
    assert time.monotonic() - started < 2
    release.set()
    holder.join(10)
