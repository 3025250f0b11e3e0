"""The store: inbound calls, transactions, events, deliveries and deferred verifications.

Every public method is one database transaction (a claim may first look with a read one). Database
failures surface as ``StoreUnavailable`` so callers can answer 503 and let the provider retry. The store knows nothing of Flask or of
providers' protocols; the flow that decides what to write lives in ``hookhub.pipeline``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import redact
from ..calls import InboundCall
from ..errors import StoreUnavailable
from ..events import Event
from ..ledger import APPROVAL_KEY, Ledger, Plan, Recorded, Totals, plan
from ..states import Movement, TransactionState
from . import fast, schema
from .engine import LOCK_WAIT, WRITE, make_engine
from .accepted import Accepted
from .group import WriteGroups
from .jobs import Jobs, Workers, utcnow
from .listing import Ledgers, Listing, event_from_row


@dataclasses.dataclass(frozen=True)
class TransactionRecord:
    provider: str
    key: str
    kind: str
    status: str
    transaction_id: str
    order_id: str
    amount: int
    currency: str
    last_event_id: str | None
    authorized: int = 0
    captured: int = 0
    refunded: int = 0

    @property
    def totals(self) -> Totals:
        return Totals(self.authorized, self.captured, self.refunded)


_calls, _transactions, _events = schema.inbound_calls, schema.transactions, schema.events
_locks, _deliveries, _movements = schema.transaction_locks, schema.deliveries, schema.movements

# The statements every inbound call runs, built once. Executing a prebuilt statement with its
# parameters skips building and cache-keying a new statement object, which is most of the time a
# statement costs here; the values arrive as bound parameters, typed by the table's columns.
_SELECT_TRANSACTION = select(_transactions).where(
    _transactions.c.provider == bindparam("p_provider"), _transactions.c.key == bindparam("p_key"))
_LOCK_ROW = select(_locks.c.provider).where(
    _locks.c.provider == bindparam("p_provider"), _locks.c.key == bindparam("p_key")).with_for_update()
_SELECT_EVENT = select(_events).where(_events.c.id == bindparam("p_id"))
_SELECT_MOVEMENTS = select(_movements).where(_movements.c.transaction_pk == bindparam("p_pk")).order_by(_movements.c.id)
_INSERT_CALL = insert(_calls)
_UPDATE_CALL = update(_calls).where(_calls.c.id == bindparam("p_id"))
_INSERT_TRANSACTION = insert(_transactions)
_UPDATE_TRANSACTION = update(_transactions).where(_transactions.c.id == bindparam("p_id"))
_INSERT_EVENT = insert(_events)
_INSERT_DELIVERY = insert(_deliveries)
_INSERT_MOVEMENT = insert(_movements)
_BOOK_MOVEMENT = update(_movements).where(_movements.c.id == bindparam("p_id"))


def new_event_id() -> str:
    """A unique event id that sorts in the order ids were made (a time, then randomness)."""
    return f"evt_{time.time_ns():016x}{secrets.token_hex(8)}"


def _record_from_row(row: Any) -> TransactionRecord:
    return TransactionRecord(row.provider, row.key, row.kind, row.status, row.transaction_id, row.order_id,
                             row.amount, row.currency, row.last_event_id, row.authorized, row.captured, row.refunded)


def recorded_from_row(row: Any) -> Recorded:
    movement = Movement(row.kind, row.amount, id=row.provider_id, currency=row.currency, occurred_at=row.occurred_at)
    return Recorded(row.movement_key, movement, booked=row.status == "booked", note=row.note, pk=row.id,
                    mismatch=bool(row.mismatch))


class Locked:
    """One transaction, locked until the surrounding ``Store.locked`` block ends."""

    def __init__(self, conn: Connection, provider: str, key: str, redactor: redact.Redactor = redact.NOTHING):
        self._conn = conn
        self._redactor = redactor
        self.provider = provider
        self.key = key
        self.reload()

    def reload(self) -> None:
        """Read the transaction again (after a savepoint was rolled back, say)."""
        row = self._conn.execute(_SELECT_TRANSACTION, {"p_provider": self.provider, "p_key": self.key}).first()
        self._pk: int | None = row.id if row else None
        self.current = _record_from_row(row) if row else None

    def latest_event(self) -> Event | None:
        if not self.current or not self.current.last_event_id:
            return None
        row = self._conn.execute(_SELECT_EVENT, {"p_id": self.current.last_event_id}).first()
        return event_from_row(row) if row else None

    def ledger(self) -> Ledger:
        """What is held of this transaction: its status, totals and movements."""
        if self.current is None or self._pk is None:
            return Ledger()
        recorded = tuple(recorded_from_row(row) for row in self._conn.execute(_SELECT_MOVEMENTS, {"p_pk": self._pk}))
        return Ledger(status=self.current.status, currency=self.current.currency, totals=self.current.totals,
                      movements=recorded)

    def plan(self, state: TransactionState, *, expected: dict | None = None) -> Plan:
        """What applying ``state`` to this transaction's ledger would record."""
        return plan(self.ledger(), state, expected=expected)

    def reconcile(self, state: TransactionState, *, source: str, inbound_call_id: int | None,
                  received_at: datetime, handlers: Sequence[str],
                  expected: dict | None = None) -> tuple[Plan, list[Event]]:
        """Apply ``state`` to this transaction's ledger: the plan, and the events it recorded."""
        planned = self.plan(state, expected=expected)
        return planned, self.apply(state, planned, source=source, inbound_call_id=inbound_call_id,
                                   received_at=received_at, handlers=handlers)

    def apply(self, state: TransactionState, planned: Plan, *, source: str, inbound_call_id: int | None,
              received_at: datetime, handlers: Sequence[str], event_ids: Sequence[str] = ()) -> list[Event]:
        """Record ``planned``: its movements, its events (ids from ``event_ids`` if given) with one
        pending delivery per handler each, and the transaction's new status and totals. Nothing is
        written for a plan that changes nothing."""
        if not (planned.events or planned.new or planned.released):
            return []
        now = utcnow()
        ids = list(event_ids) or [new_event_id() for _ in planned.events]
        events = [Event(
            id=event_id, type=e.type, provider=self.provider, order_id=state.order_id,
            transaction_id=e.transaction_id, amount=e.amount, currency=planned.currency,
            source=source,  # type: ignore[arg-type]
            occurred_at=e.occurred_at or received_at, received_at=received_at, raw=state.raw, expected=e.expected,
            totals=e.totals) for event_id, e in zip(ids, planned.events)]
        approval = next((e for e, p in zip(events, planned.events) if p.movement_key == APPROVAL_KEY), None)
        values: dict[str, Any] = dict(
            kind=state.kind, status=planned.status, order_id=state.order_id, currency=planned.currency, updated_at=now,
            authorized=planned.totals.authorized, captured=planned.totals.captured, refunded=planned.totals.refunded)
        if self.current is None or approval is not None or not self.current.authorized:
            # The transaction is named after its approval once there is one.
            values.update(transaction_id=approval.transaction_id if approval else state.transaction_id,
                          amount=approval.amount if approval else state.amount)
        if events:
            values["last_event_id"] = events[-1].id
        if self._pk is None:
            values.setdefault("last_event_id", None)
            self._pk = fast.execute(self._conn, _INSERT_TRANSACTION,
                                    dict(provider=self.provider, key=self.key, created_at=now, **values))
        else:
            fast.execute(self._conn, _UPDATE_TRANSACTION, {"p_id": self._pk, **values})
        if events:
            fast.execute_many(self._conn, _INSERT_EVENT, [dict(
                transaction_pk=self._pk, inbound_call_id=inbound_call_id, movement_key=p.movement_key,
                **{f.name: getattr(e, f.name) for f in dataclasses.fields(Event)},
            ) for e, p in zip(events, planned.events)])
        event_of = {p.movement_key: e.id for e, p in zip(events, planned.events) if p.movement_key}
        if planned.new:
            fast.execute_many(self._conn, _INSERT_MOVEMENT, [dict(
                transaction_pk=self._pk, movement_key=r.key, kind=r.movement.kind, provider_id=r.movement.id,
                amount=r.movement.amount, currency=r.movement.currency or state.currency,
                occurred_at=r.movement.occurred_at, status="booked" if r.booked else "held", note=r.note,
                event_id=event_of.get(r.key), mismatch=int(r.mismatch), recorded_at=now) for r in planned.new])
        for r in planned.released:
            fast.execute(self._conn, _BOOK_MOVEMENT, {"p_id": r.pk, "status": "booked", "note": None,
                                                "event_id": event_of.get(r.key), "mismatch": int(r.mismatch)})
        if handlers and events:
            fast.execute_many(self._conn, _INSERT_DELIVERY, [
                dict(event_id=e.id, handler=h, status="pending", attempts=0, next_attempt_at=schema.DUE_NOW, updated_at=now)
                for e in events for h in handlers
            ])
        previous = self.current
        self.current = TransactionRecord(
            self.provider, self.key, state.kind, planned.status,
            values.get("transaction_id", previous.transaction_id if previous else state.transaction_id),
            state.order_id, values.get("amount", previous.amount if previous else state.amount), planned.currency,
            values.get("last_event_id", previous.last_event_id if previous else None),
            planned.totals.authorized, planned.totals.captured, planned.totals.refunded)
        return events

    def finish_call(self, call: InboundCall, **outcome: Any) -> int:
        """Record the call's outcome in the same database transaction as the state change; its id."""
        return _save_call(self._conn, call, self._redactor, **outcome)


def _text(value: str) -> str:
    """``value`` as a database keeps text: PostgreSQL refuses NUL, which a caller can put in a URL."""
    return value.replace("\x00", "\\x00")


# How much of a refused call's body and headers is kept: enough to see what was sent, not enough for
# a flood of large calls with bad signatures to fill the disk. The body's size and SHA-256 are kept.
REFUSED_BODY_BYTES = 4096
REFUSED_HEADER_BYTES = 4096


def _refused_fields(call: InboundCall, row: dict[str, Any]) -> dict[str, Any]:
    """What a refused call keeps of ``row`` (its stored, redacted form)."""
    fields: dict[str, Any] = {"refused": True, "headers": _trim_headers(row["headers"])}
    if len(call.body) > REFUSED_BODY_BYTES:
        fields.update(body=row["body"][:REFUSED_BODY_BYTES], body_size=len(call.body),
                      body_sha256=hashlib.sha256(call.body).hexdigest())
    return fields


def _trim_headers(headers: dict[str, str]) -> dict[str, str]:
    kept, used = {}, 0
    for name, value in headers.items():
        room = REFUSED_HEADER_BYTES - used - len(name)
        if room <= 0:
            kept["..."] = f"{len(headers) - len(kept)} more header(s) not kept"
            break
        kept[name] = value if len(value) <= room else value[:room] + f"... ({len(value) - room} more characters)"
        used += len(name) + len(kept[name])
    return kept


def _call_row(call: InboundCall, redactor: redact.Redactor) -> dict[str, Any]:
    return dict(
        provider=_text(call.provider)[:64], route=call.route, method=_text(call.method)[:16],
        path=_text(redactor.secrets_only(call.path)), query_string=_text(redactor.secrets_only(call.query_string)),
        headers=redactor.headers(call.headers.items()), body=redactor.body(call.body),
        peer=_text(call.peer or "")[:64], received_at=call.received_at,
    )


def _save_call(conn: Connection, call: InboundCall, redactor: redact.Redactor, *, outcome: str, status_code: int,
               error: str | None = None, reference: str | None = None, event_id: str | None = None,
               known_provider: bool = True, refused: bool | None = None) -> int:
    """Record ``call`` with its outcome: inserted whole if it is not stored yet, else updated. Its id.

    A refused call (a 4xx, or ``refused``) keeps only the start of its body and headers. A call to
    an unknown provider is stored as provider ``unknown``: the name is only the caller's say (its
    path keeps it).
    """
    fields: dict[str, Any] = dict(
        outcome=outcome, status_code=status_code, error=_text(redactor.text(error)) if error else None,
        reference=_text(reference)[:128] if reference else None, event_id=event_id)
    if refused is None:
        refused = 400 <= status_code < 500
    if call.id is None:
        row = _call_row(call, redactor)
        if not known_provider:
            row["provider"] = "unknown"
        if refused:
            row.update(_refused_fields(call, row))
        return fast.execute(conn, _INSERT_CALL, {**row, **fields})
    if refused:
        fields.update(_refused_fields(call, {"headers": redactor.headers(call.headers.items()),
                                             # a little more, so that no secret is cut in two
                                             "body": redactor.body(call.body[:2 * REFUSED_BODY_BYTES])}))
    fast.execute(conn, _UPDATE_CALL, {"p_id": call.id, **fields})
    return call.id


class ProviderMemo:
    """One provider's durable memo, kept in the store (``hookhub.providers.Memo``)."""

    def __init__(self, store: Store, provider: str):
        self._store = store
        self._provider = provider

    def get(self, key: str) -> Any | None:
        m = schema.provider_memos
        with self._store._read() as conn:
            row = conn.execute(select(m.c.value).where(m.c.provider == self._provider, m.c.key == key)).first()
        return row.value if row else None

    def put(self, key: str, value: Any) -> None:
        m, now = schema.provider_memos, utcnow()
        with self._store._write() as conn:
            self._store._insert_if_absent(conn, m, dict(provider=self._provider, key=key, value=value, updated_at=now))
            conn.execute(update(m).where(m.c.provider == self._provider, m.c.key == key).values(
                value=value, updated_at=now))


class Store(Listing, Ledgers, Jobs, Workers, Accepted):
    # Every text kept from outside (calls, provider answers, errors) goes through it; the hub sets it.
    redactor: redact.Redactor = redact.NOTHING

    def __init__(self, url: str, *, timeout: float = 5.0, pool_size: int = 5):
        self.engine = make_engine(url, timeout=timeout, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        self.timeout = timeout
        # SQLite's writers of this process share commits; PostgreSQL's server groups them itself.
        self._groups = WriteGroups(self._begin_write) if self.dialect == "sqlite" else None
        self._insert_lock = self._dialect_insert(_locks).on_conflict_do_nothing()

    def serialize_schema_changes(self, conn: Connection) -> None:
        """Make processes that change the schema at once take turns (SQLite's write lock already does)."""
        self._serialize(conn, "hookhub schema")

    def _serialize(self, conn: Connection, what: str) -> None:
        """Make transactions that name ``what`` take turns, until they end (SQLite's write lock already does)."""
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:what, 0))"), {"what": what})

    def close(self) -> None:
        self.engine.dispose()

    def after_fork_in_child(self) -> None:
        """Drop what a forked child must not share with its parent: connections, and the group of
        writers one of the parent's threads may have had open."""
        self.engine.dispose(close=False)
        if self._groups is not None:
            self._groups.reset()

    def memo(self, provider: str) -> ProviderMemo:
        """The durable memo of ``provider``."""
        return ProviderMemo(self, provider)

    def _begin_write(self, lock_wait: float | None) -> tuple[Connection, Any]:
        """A connection and its begun write transaction (on SQLite, holding the write lock)."""
        conn = self.engine.connect().execution_options(**{WRITE: True, LOCK_WAIT: lock_wait})
        try:
            return conn, conn.begin()
        except BaseException:
            conn.close()
            raise

    @contextmanager
    def _connection(self, write: bool, lock_wait: float | None = None) -> Iterator[Connection]:
        try:
            if write and self._groups is not None:
                with self._groups.write(self.timeout, lock_wait) as conn:
                    yield conn
                return
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{WRITE: True, LOCK_WAIT: lock_wait})
                with conn.begin():
                    yield conn
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
            raise  # a bug in hookhub, not an outage
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            # Unreachable, locked past the timeout, out of disk, corrupt: the caller answers 503.
            raise StoreUnavailable(f"store unavailable: {getattr(exc, 'orig', None) or exc}") from exc

    def _write(self) -> AbstractContextManager[Connection]:
        """A transaction that will write: on SQLite it takes the write lock up front."""
        return self._connection(write=True)

    def _read(self) -> AbstractContextManager[Connection]:
        return self._connection(write=False)

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers a query."""
        with self._read() as conn:
            conn.execute(text("SELECT 1"))

    # -- inbound calls ---------------------------------------------------------------------------

    def record_call(self, call: InboundCall) -> int:
        """Durably record ``call`` as received, with credential headers redacted, and return its id.

        For a call whose handling waits on something outside hookhub (a provider's API); any other
        call is recorded together with its outcome (``finish_call``).
        """
        with self._write() as conn:
            return conn.execute(_INSERT_CALL, {**_call_row(call, self.redactor), "outcome": "received"}
                                ).inserted_primary_key[0]

    def finish_call(self, call: InboundCall, *, lock_wait: float | None = None, **outcome: Any) -> int:
        """Record ``call``'s outcome (inserting the call if ``call.id`` is None); its id.

        ``lock_wait`` shortens how long this may wait for SQLite's write lock (default: the timeout).
        """
        with self._connection(write=True, lock_wait=lock_wait) as conn:
            return _save_call(conn, call, self.redactor, **outcome)

    def get_call(self, call_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(schema.inbound_calls).where(schema.inbound_calls.c.id == call_id)).first()
        return row._asdict() if row else None

    # -- transactions and events -----------------------------------------------------------------

    @contextmanager
    def locked(self, provider: str, key: str) -> Iterator[Locked]:
        """Hold the per-transaction lock for ``(provider, key)`` while the block runs.

        Everything written through the yielded ``Locked`` commits together when the block ends, or
        not at all if it raises. Callbacks and returns for one transaction, in any process, run
        their blocks one after the other.
        """
        with self._write() as conn:
            yield self._lock_transaction(conn, provider, key)

    def _lock_transaction(self, conn: Connection, provider: str, key: str) -> Locked:
        """Take the per-transaction lock for ``(provider, key)`` in ``conn``'s transaction, until it ends."""
        if self.dialect != "sqlite":  # SQLite's write transaction already holds the whole database
            # Concurrent inserts of one new key wait for each other and leave one row, which the
            # second statement then locks: a row lock, held until commit.
            conn.execute(self._insert_lock, {"provider": provider, "key": key})
            conn.execute(_LOCK_ROW, {"p_provider": provider, "p_key": key}).one()
        return Locked(conn, provider, key, self.redactor)

    def get_transaction(self, provider: str, key: str) -> TransactionRecord | None:
        with self._read() as conn:
            row = conn.execute(_SELECT_TRANSACTION, {"p_provider": provider, "p_key": key}).first()
        return _record_from_row(row) if row else None

    def get_event(self, event_id: str) -> Event | None:
        with self._read() as conn:
            row = conn.execute(_SELECT_EVENT, {"p_id": event_id}).first()
        return event_from_row(row) if row else None

    def _dialect_insert(self, table: Any) -> Any:
        return (sqlite_insert if self.dialect == "sqlite" else postgresql_insert)(table)

    def _insert_if_absent(self, conn: Connection, table: Any, values: dict[str, Any]) -> None:
        conn.execute(self._dialect_insert(table).values(**values).on_conflict_do_nothing())
