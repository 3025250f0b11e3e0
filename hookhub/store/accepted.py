"""Accepted callbacks: signed callbacks answered once on record, reconciled right after in batches.

A callback whose verified content is the provider's whole state (a signed Monri callback, say)
needs nothing outside hookhub to be judged, so it is answered as soon as it is durably recorded
with that state (``accept_call``). The background work reconciles what was accepted, oldest first,
many calls in one database transaction (``accepted_batch``), exactly as the call would have been
reconciled on its own: the same per-transaction lock, the same ledger, one event per real change.
The state is kept with the call until then, so a process that dies between the answer and the
reconciliation loses nothing: any process reconciles it later. Mixed into ``Store``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from ..calls import InboundCall, Trigger
from ..states import TransactionState
from . import fast, schema

log = logging.getLogger("hookhub")
_calls = schema.inbound_calls

ACCEPTED = "accepted"  # a call's outcome while its reconciliation is pending


@dataclasses.dataclass(frozen=True)
class AcceptedCall:
    """A callback answered before it was reconciled, and the verified state it carried."""

    id: int
    provider: str
    received_at: datetime
    peer: str
    trigger: Trigger  # its ``state`` set: what the call said, verified

    @property
    def state(self) -> TransactionState:
        assert self.trigger.state is not None
        return self.trigger.state


_COLUMNS = (_calls.c.id, _calls.c.provider, _calls.c.received_at, _calls.c.peer, _calls.c.accepted_state)
# Waiting, due (not put off after a failure), and of a provider this process has: oldest first.
# The provider is compared through coalesce() so that no index on it is used: the planner would
# otherwise walk all of a provider's calls (millions) instead of the few that wait.
_DUE = and_(_calls.c.accepted_state.is_not(None),
            func.coalesce(_calls.c.provider, "").in_(bindparam("p_providers", expanding=True)),
            or_(_calls.c.accepted_retry_at.is_(None), _calls.c.accepted_retry_at <= bindparam("p_now")))
_PENDING = select(*_COLUMNS).where(_DUE).order_by(_calls.c.id).limit(bindparam("p_limit"))
_ANY_DUE = select(_calls.c.id).where(_DUE).limit(1)
# One transaction's calls: found by the reference they named, which is the transaction's key for
# every built-in provider (a call whose plugin names it otherwise waits for the next batch).
_OF_TRANSACTION = (select(*_COLUMNS)
                   .where(_calls.c.provider == bindparam("p_provider"), _calls.c.reference == bindparam("p_reference"),
                          _calls.c.accepted_state.is_not(None)).order_by(_calls.c.id))
_INSERT = _calls.insert()
_RECONCILED = (update(_calls).where(_calls.c.id == bindparam("p_id"))
               .values(accepted_state=None, accepted_retry_at=None, error=None, outcome=bindparam("outcome"),
                       event_id=bindparam("event_id")))
_PUT_OFF = update(_calls).where(_calls.c.id == bindparam("p_id")).values(
    accepted_retry_at=bindparam("retry_at"), error=bindparam("error"))

RETRY_SECONDS = 60.0  # a call whose reconciliation failed is tried again this much later


def _trigger(kept: dict[str, Any]) -> Trigger:
    return Trigger(kept["reference"], context=kept.get("context") or {},
                   state=TransactionState.from_plain(kept["state"]))


class AcceptedBatch:
    """Accepted calls being reconciled in one database transaction."""

    def __init__(self, conn: Connection, calls: list[AcceptedCall],
                 lock: Callable[[Connection, str, str], Any], redactor: Any):
        self._conn = conn
        self._lock = lock
        self._redactor = redactor
        self.calls = calls

    def finish(self, call: AcceptedCall, *, outcome: str, event_id: str | None) -> int:
        """Record what reconciling ``call`` came to; it is no longer pending. Its id."""
        fast.execute(self._conn, _RECONCILED, {"p_id": call.id, "outcome": outcome, "event_id": event_id})
        return call.id

    def locked(self, provider: str, key: str) -> Any:
        """The transaction ``(provider, key)``, locked until the batch commits (``store.Locked``)."""
        return self._lock(self._conn, provider, key)

    @contextmanager
    def attempt(self, call: AcceptedCall) -> Iterator[None]:
        """Reconcile ``call`` in a savepoint: if the block raises, nothing of it is kept, the call is
        put off for ``RETRY_SECONDS`` with the error on record, and the rest of the batch goes on."""
        _savepoint(self._conn, "SAVEPOINT hookhub_accepted")
        try:
            yield
        except Exception as exc:
            _savepoint(self._conn, "ROLLBACK TO SAVEPOINT hookhub_accepted")
            _savepoint(self._conn, "RELEASE SAVEPOINT hookhub_accepted")
            self.put_off(call, f"reconciliation failed: {type(exc).__name__}: {exc}")
            raise AttemptFailed from exc
        _savepoint(self._conn, "RELEASE SAVEPOINT hookhub_accepted")

    def put_off(self, call_id: AcceptedCall | int, error: str) -> None:
        """Leave a call waiting, to be tried again ``RETRY_SECONDS`` from now, with ``error`` on record."""
        from .store import _text  # the store module imports this one

        fast.execute(self._conn, _PUT_OFF, {
            "p_id": call_id if isinstance(call_id, int) else call_id.id, "error": _text(self._redactor.text(error))[:2000],
            "retry_at": datetime.now(timezone.utc) + timedelta(seconds=RETRY_SECONDS)})


class AttemptFailed(Exception):
    """An accepted call's reconciliation failed and was undone; the call waits for its retry."""


def _savepoint(conn: Connection, statement: str) -> None:
    conn.exec_driver_sql(statement)


class Accepted:
    dialect: str
    redactor: Any

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _lock_transaction(self, conn: Connection, provider: str, key: str) -> Any:
        raise NotImplementedError

    def accept_call(self, call: InboundCall, *, status_code: int, trigger: Trigger) -> int:
        """Durably record a verified callback with what it says (``trigger``, its ``state`` set, its
        secrets already taken out), to be reconciled later; its id."""
        from .store import _call_row  # the store module imports this one

        assert trigger.state is not None
        with self._write() as conn:
            return fast.execute(conn, _INSERT, {
                **_call_row(call, self.redactor), "outcome": ACCEPTED, "status_code": status_code,
                "reference": trigger.reference, "accepted_state": {
                    "reference": trigger.reference, "context": self.redactor.mapping(trigger.context),
                    "state": trigger.state.to_plain()},
            })

    @contextmanager
    def accepted_batch(self, providers: Sequence[str], limit: int) -> Iterator[AcceptedBatch]:
        """Up to ``limit`` due accepted calls of ``providers``, oldest first, in one write transaction
        that commits when the block ends. The transaction holds them (SQLite's write lock; row locks
        on PostgreSQL, where calls another process's batch holds are skipped), so no call is
        reconciled twice. A call whose kept state cannot be read is put off with the error."""
        statement = _PENDING.with_for_update(skip_locked=True) if self.dialect == "postgresql" else _PENDING
        with self._write() as conn:
            rows = conn.execute(statement, {"p_providers": list(providers), "p_now": datetime.now(timezone.utc),
                                            "p_limit": limit}).all()
            batch = AcceptedBatch(conn, [], self._lock_transaction, self.redactor)
            batch.calls = _readable(rows, batch)
            yield batch

    def accepted_of(self, tx: Any) -> AcceptedBatch:
        """The accepted calls of the transaction ``tx`` holds locked (``store.Locked``), oldest first,
        in its database transaction: for whoever reconciles that transaction to take first, in the
        order they came. Calls another process's batch holds are left to it (PostgreSQL)."""
        statement = _OF_TRANSACTION.with_for_update(skip_locked=True) if self.dialect == "postgresql" else _OF_TRANSACTION
        conn = tx._conn
        rows = conn.execute(statement, {"p_provider": tx.provider, "p_reference": tx.key}).all()
        batch = AcceptedBatch(conn, [], self._lock_transaction, self.redactor)
        batch.calls = [c for c in _readable(rows, batch) if c.state.lock_key == tx.key]
        return batch

    def has_accepted(self, providers: Sequence[str]) -> bool:
        """Whether an accepted call of ``providers`` is due for its reconciliation (a read: it takes
        no write lock)."""
        with self._read() as conn:
            return conn.execute(_ANY_DUE, {"p_providers": list(providers),
                                           "p_now": datetime.now(timezone.utc)}).first() is not None

    def accepted_backlog(self) -> tuple[int, datetime | None]:
        """How many answered calls wait for their reconciliation, and when the oldest came."""
        with self._read() as conn:
            count, oldest = conn.execute(select(func.count(), func.min(_calls.c.received_at)).where(
                _calls.c.accepted_state.is_not(None))).one()
        return count, oldest

    def count_due_accepted(self, providers: Sequence[str]) -> int:
        """How many answered calls of ``providers`` are due for their reconciliation (not put off)."""
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(_calls).where(_DUE), {
                "p_providers": list(providers), "p_now": datetime.now(timezone.utc)}).scalar_one()

    def count_accepted(self) -> int:
        """How many answered calls wait for their reconciliation, put off ones included."""
        return self.accepted_backlog()[0]


def _readable(rows: Sequence[Any], batch: AcceptedBatch) -> list[AcceptedCall]:
    calls = []
    for row in rows:
        try:
            calls.append(AcceptedCall(row.id, row.provider, row.received_at, row.peer, _trigger(row.accepted_state)))
        except Exception as exc:  # kept by another version, say: it waits for one that reads it
            log.exception("accepted call %s has a kept state this version cannot read", row.id)
            batch.put_off(row.id, f"kept state unreadable: {type(exc).__name__}: {exc}")
    return calls
