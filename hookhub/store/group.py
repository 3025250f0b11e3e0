"""Group commit on SQLite: the write transactions of one process's threads share a commit.

SQLite has one writer at a time and every commit waits for its fsync. Run one after another,
concurrent requests each pay a whole ``BEGIN IMMEDIATE ... COMMIT`` and wait for each other in
the lock. Here the threads of a process take turns on one connection instead: the first writer
begins the transaction, every writer that arrives while it is open runs its block there, in a
savepoint of its own, and the last of them commits for all. Each block's ``with`` ends only once
that commit is on disk, so nothing is answered before it is durable, exactly as with a commit of
its own; a block that raises is rolled back to its savepoint, and the others' work stands. A
group's commit that fails fails every block in it.

A group ends when no other writer is waiting, or after ``MAX_MEMBERS`` blocks or ``MAX_SECONDS``,
so that the other processes get the database between groups. Writers that arrive while a group
commits form the next one. PostgreSQL groups commits in the server and needs none of this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from ..errors import StoreUnavailable

MAX_MEMBERS = 64
MAX_SECONDS = 0.02  # a group holds the database this long at most before it commits


class _Group:
    def __init__(self, conn: Connection, transaction: Any):
        self.conn = conn
        self.transaction = transaction
        self.started = time.monotonic()
        self.members = 0
        self.done = False
        self.error: BaseException | None = None  # why its commit failed, if it did


class WriteGroups:
    """Write transactions of this process, gathered into shared commits (see the module)."""

    def __init__(self, open_transaction: Callable[[float | None], tuple[Connection, Any]]):
        """``open_transaction(lock_wait)`` gives a connection and its begun write transaction."""
        self._open = open_transaction
        self.reset()

    def reset(self) -> None:
        """Start with no group and no waiters: in a forked child (``Store.after_fork_in_child``),
        where the parent's threads, and the group one of them may have had open, do not exist."""
        self._cond = threading.Condition()
        self._busy = False  # a block, a begin or a commit is running on the group's connection
        self._waiting = 0  # writers waiting for their turn
        self._group: _Group | None = None

    @contextmanager
    def write(self, timeout: float, lock_wait: float | None = None) -> Iterator[Connection]:
        group = self._take_turn(timeout if lock_wait is None else min(lock_wait, timeout))
        if group is None:  # no group open: this writer begins one
            try:
                conn, transaction = self._open(lock_wait)
            except BaseException:
                self._give_turn()
                raise
            group = _Group(conn, transaction)
            savepoint = False
        else:
            savepoint = True
            try:
                self._savepoint(group, "SAVEPOINT hookhub_member")
            except BaseException as exc:
                self._fail(group, exc)
                raise
        group.members += 1
        try:
            yield group.conn
        except BaseException:
            self._abandon(group, savepoint)
            raise
        if savepoint:
            try:
                self._savepoint(group, "RELEASE SAVEPOINT hookhub_member")
            except BaseException as exc:
                self._fail(group, exc)
                raise
        self._end_turn(group)
        self._await(group)

    # -- turns -------------------------------------------------------------------------------------

    def _take_turn(self, wait: float) -> _Group | None:
        """Wait until no block runs; the open group to join, or None to begin one."""
        deadline = time.monotonic() + wait
        with self._cond:
            self._waiting += 1
            try:
                while self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreUnavailable(f"store unavailable: no turn to write within {wait:g}s")
                    self._cond.wait(left)
            finally:
                self._waiting -= 1
            self._busy = True
            return self._group

    def _give_turn(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def _end_turn(self, group: _Group) -> None:
        """Hand the connection to a waiting writer, or commit the group if none waits or it is full."""
        with self._cond:
            if (self._waiting and group.members < MAX_MEMBERS
                    and time.monotonic() - group.started < MAX_SECONDS):
                self._group = group
                self._busy = False
                self._cond.notify_all()
                return
        self._commit(group)

    def _commit(self, group: _Group) -> None:
        try:
            group.transaction.commit()
        except BaseException as exc:
            group.error = exc
            _quietly(group.transaction.rollback)
        finally:
            _quietly(group.conn.close)
            with self._cond:
                group.done = True
                self._group = None
                self._busy = False
                self._cond.notify_all()

    def _await(self, group: _Group) -> None:
        """Return once ``group``'s commit has ended; raise what it raised. No time limit: the work
        is in the group, so until the commit ends nobody can say whether it is stored, exactly
        as a commit of its own would block (blocks never wait on anything outside the database)."""
        with self._cond:
            self._cond.wait_for(lambda: group.done)
        if group.error is not None:  # one exception object is not raised in several threads at once
            raise StoreUnavailable(str(group.error) if isinstance(group.error, StoreUnavailable)
                                   else f"store unavailable: the shared commit failed: {group.error}")

    # -- failures ----------------------------------------------------------------------------------

    def _abandon(self, group: _Group, savepoint: bool) -> None:
        """Undo a block that raised: its savepoint, or the whole group when it was the group's first."""
        if not savepoint:
            self._fail(group, None)
            return
        try:
            self._savepoint(group, "ROLLBACK TO SAVEPOINT hookhub_member")
            self._savepoint(group, "RELEASE SAVEPOINT hookhub_member")
        except BaseException as exc:
            self._fail(group, exc)
            return
        self._end_turn(group)

    def _fail(self, group: _Group, error: BaseException | None) -> None:
        """Roll the group back; its other members raise ``error`` (or a ``StoreUnavailable``)."""
        _quietly(group.transaction.rollback)
        _quietly(group.conn.close)
        with self._cond:
            group.error = error if error is not None else StoreUnavailable(
                "store unavailable: the shared transaction was rolled back")
            group.done = True
            self._group = None
            self._busy = False
            self._cond.notify_all()

    @staticmethod
    def _savepoint(group: _Group, statement: str) -> None:
        group.conn.exec_driver_sql(statement)


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        pass
