"""What operators look at and act on: filtered lists of calls, events, deliveries and re-checks, and
replaying deliveries. Mixed into ``Store``; each method is one database transaction."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from ..events import Event
from . import schema


def event_from_row(row: Any) -> Event:
    return Event(
        id=row.id, type=row.type, provider=row.provider, order_id=row.order_id,
        transaction_id=row.transaction_id, amount=row.amount, currency=row.currency, source=row.source,
        occurred_at=row.occurred_at, received_at=row.received_at, raw=row.raw, expected=row.expected,
        totals=row.totals or {},
    )


class Listing:
    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def list_calls(self, *, provider: str | None = None, route: str | None = None, outcome: str | None = None,
                   since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Inbound calls, newest first."""
        c = schema.inbound_calls.c
        query = select(schema.inbound_calls).order_by(c.id.desc()).limit(limit)
        for column, value in ((c.provider, provider), (c.route, route), (c.outcome, outcome)):
            if value:
                query = query.where(column == value)
        if since:
            query = query.where(c.received_at >= since)
        with self._read() as conn:
            return [row._asdict() for row in conn.execute(query)]

    def list_events(self, *, provider: str | None = None, type: str | None = None, order_id: str | None = None,
                    since: datetime | None = None, limit: int = 100) -> list[Event]:
        """Events, oldest first."""
        e = schema.events.c
        query = select(schema.events).order_by(e.received_at, e.id).limit(limit)
        for column, value in ((e.provider, provider), (e.type, type), (e.order_id, order_id)):
            if value:
                query = query.where(column == value)
        if since:
            query = query.where(e.received_at >= since)
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(query)]

    def list_deliveries(self, *, event_id: str | None = None, status: str | None = None,
                        handler: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Deliveries in the order they were created."""
        d = schema.deliveries.c
        query = select(schema.deliveries).order_by(d.id)
        for column, value in ((d.event_id, event_id), (d.status, status), (d.handler, handler)):
            if value:
                query = query.where(column == value)
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            return [row._asdict() for row in conn.execute(query)]

    def delivery_counts(self, statuses: Sequence[str] = ()) -> dict[tuple[str, str], int]:
        """How many deliveries each handler has in each status (only ``statuses``, if given):
        ``{(handler, status): count}``. With statuses the count reads the status index only."""
        d = schema.deliveries.c
        query = select(d.handler, d.status, func.count()).group_by(d.handler, d.status)
        if statuses:
            query = query.where(d.status.in_(statuses))
        with self._read() as conn:
            return {(handler, status): count for handler, status, count in conn.execute(query)}

    def oldest_pending_delivery(self) -> datetime | None:
        """When the event of the longest-waiting pending delivery was received, or None if none waits."""
        d, e = schema.deliveries.c, schema.events.c
        query = select(func.min(e.received_at)).select_from(
            schema.deliveries.join(schema.events, d.event_id == e.id)).where(d.status == "pending")
        with self._read() as conn:
            return conn.execute(query).scalar()

    def get_delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(schema.deliveries).where(schema.deliveries.c.id == delivery_id)).first()
        return row._asdict() if row else None

    def list_verifications(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(schema.verifications).order_by(schema.verifications.c.id))
            return [row._asdict() for row in rows]

    def replay(self, *, event_ids: Sequence[str] = (), failed: bool = False, since: datetime | None = None,
               handler: str | None = None, now: datetime) -> list[int]:
        """Make deliveries due again with a fresh attempt count; their ids.

        Chooses the deliveries of ``event_ids``, or every failed one (dead-lettered, or pending after
        an error) when ``failed``, or those of events received ``since`` a time; ``handler``
        narrows any of these to one handler. A delivery another process holds right now is left to
        it. Handlers receive the same event (same id) again.
        """
        d, e = schema.deliveries.c, schema.events.c
        conditions = []
        if event_ids:
            conditions.append(d.event_id.in_(list(event_ids)))
        if failed:
            conditions.append(or_(d.status == "dead", and_(d.status == "pending", d.last_error.is_not(None))))
        if since:
            conditions.append(d.event_id.in_(select(e.id).where(e.received_at >= since)))
        if not conditions:
            raise ValueError("say which deliveries to replay")
        if handler:
            conditions.append(d.handler == handler)
        not_held = or_(d.lease_until.is_(None), d.lease_until < now)
        with self._write() as conn:
            # Rows being claimed right now are skipped, and the update checks the lease again, so a
            # claim that commits in between keeps its job (on SQLite the write lock already orders them).
            ids = list(conn.execute(select(d.id).where(and_(*conditions), not_held).order_by(d.id)
                                    .with_for_update(skip_locked=True)).scalars())
            if ids:
                conn.execute(update(schema.deliveries).where(d.id.in_(ids), not_held).values(
                    status="pending", attempts=0, next_attempt_at=schema.DUE_NOW, last_error=None, lease_until=None,
                    claimed_by=None,
                    lease_owner=None, updated_at=now))
        return ids

    def prune_calls(self, *, before: datetime, dry_run: bool = False, batch: int = 1000, refused_only: bool = False,
                    since: datetime | None = None) -> int:
        """Delete inbound calls received before ``before`` (and at ``since`` or later, if given);
        with ``refused_only``, only calls refused with a 4xx. How many (would) go.

        A call whose verification is still pending is kept: the re-check records its outcome on
        it; so is a call answered and not yet reconciled. Events, transactions and deliveries are kept; an event's ``inbound_call_id`` may then
        name a call that is gone. Deletes in batches, each its own short transaction, so a large
        prune never holds the store's write lock for long.
        """
        c, v = schema.inbound_calls, schema.verifications.c
        conditions = [c.c.received_at < before, c.c.accepted_state.is_(None), c.c.id.not_in(
            select(v.inbound_call_id).where(v.status == "pending", v.inbound_call_id.is_not(None)))]
        if refused_only:
            conditions.append(or_(c.c.refused.is_(True),
                                  and_(c.c.refused.is_(None), c.c.status_code >= 400, c.c.status_code < 500)))
        if since is not None:
            conditions.append(c.c.received_at >= since)
        return self._prune(c, and_(*conditions), dry_run=dry_run, batch=batch)

    def prune_gave_up(self, *, before: datetime, batch: int = 1000) -> int:
        """Delete re-checks that gave up before ``before``: what anyone's made-up references left.

        Watches are kept whatever became of them: a payout's reference stays used for good.
        """
        v = schema.verifications
        return self._prune(v, and_(v.c.kind == "recheck", v.c.status == "gave_up", v.c.updated_at < before),
                           batch=batch)

    def _prune(self, table: Any, condition: Any, *, dry_run: bool = False, batch: int = 1000) -> int:
        if dry_run:
            with self._read() as conn:
                return conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        deleted = 0
        while True:
            with self._write() as conn:
                ids = list(conn.execute(select(table.c.id).where(condition).order_by(table.c.id).limit(batch)).scalars())
                if ids:  # the condition again: a row may have changed since it was chosen
                    conn.execute(delete(table).where(table.c.id.in_(ids), condition))
            deleted += len(ids)
            if len(ids) < batch:
                return deleted


class Ledgers:
    """Payments with their movements, and payouts, for ``hookhub payments`` and ``hookhub payouts``."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def payment_ledgers(self, provider: str, order_id: str) -> list[dict[str, Any]]:
        """Every payment of ``order_id`` (usually one): its status, totals, movements and events."""
        t, m, e = schema.transactions, schema.movements, schema.events
        with self._read() as conn:
            found = []
            for row in conn.execute(select(t).where(t.c.provider == provider, t.c.order_id == order_id,
                                                    t.c.kind == "payment").order_by(t.c.id)):
                payment = row._asdict()
                payment["totals"] = {"authorized": row.authorized, "captured": row.captured, "refunded": row.refunded}
                payment["movements"] = [r._asdict() for r in conn.execute(
                    select(m).where(m.c.transaction_pk == row.id).order_by(m.c.id))]
                payment["events"] = [event_from_row(r) for r in conn.execute(
                    select(e).where(e.c.transaction_pk == row.id).order_by(e.c.received_at, e.c.id))]
                found.append(payment)
        return found

    def list_payouts(self, *, provider: str | None = None, reference: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Payouts hookhub knows of, newest first: every one watched, with its status once known."""
        v, t = schema.verifications, schema.transactions
        # One query: each watched payout with its transaction, once the provider said anything of it.
        known = and_(t.c.provider == v.c.provider, t.c.kind == "payout", t.c.order_id == v.c.reference)
        query = (select(v.c.provider, v.c.reference, v.c.amount, v.c.currency, v.c.status.label("watch"),
                        v.c.last_answer, v.c.last_error, v.c.created_at,
                        func.coalesce(t.c.status, "unknown").label("status"), t.c.transaction_id)
                 .select_from(v.outerjoin(t, known)).where(v.c.kind == "payout")
                 .order_by(v.c.id.desc()).limit(limit))
        if provider:
            query = query.where(v.c.provider == provider)
        if reference:
            query = query.where(v.c.reference == reference)
        with self._read() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def payout_events(self, provider: str, reference: str) -> list[Event]:
        e, t = schema.events, schema.transactions
        with self._read() as conn:
            return [event_from_row(r) for r in conn.execute(
                select(e).join(t, t.c.id == e.c.transaction_pk).where(
                    t.c.provider == provider, t.c.kind == "payout", t.c.order_id == reference,
                ).order_by(e.c.received_at, e.c.id))]
