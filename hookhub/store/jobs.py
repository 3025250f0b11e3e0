"""The store's background work: deliveries owed to handlers, and checks with providers (re-checks of
calls the provider could not confirm yet, and watches on what a shop created through hookhub).

A job is claimed with a lease: its claimer's proof (``lease``), recorded with the row until a
deadline, and the claiming process (``claimed_by``, its heartbeat's owner). Results are written
only while the lease still holds. A job is due again when its lease ran out, or at once when its
process's heartbeat stopped (``hookhub.heartbeat``): a process that died mid-call loses its work
in seconds, not at the end of the lease. Every time that decides whose work is whose is the
database's clock, never a host's. Deliveries are claimed and settled in batches, one database
transaction for many jobs; a delivery's attempt counts when it starts, not when it is claimed.
Mixed into ``Store``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from ..calls import Trigger
from ..events import Event
from ..outbound import Watch
from ..states import TransactionState
from . import fast, schema
from .listing import event_from_row


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclasses.dataclass(frozen=True)
class DeliveryJob:
    id: int
    lease: str  # proof of the claim; results are recorded only while it still holds
    handler: str
    attempts: int  # including the one just claimed
    event: Event


@dataclasses.dataclass(frozen=True)
class VerificationJob:
    """A claimed check with a provider: a ``recheck`` of a call, or a ``payment``/``payout`` watch."""

    id: int
    lease: str
    provider: str
    trigger: Trigger
    attempts: int  # including the one just claimed
    inbound_call_id: int | None
    kind: str = "recheck"
    watch: Watch | None = None  # for watches: what was created
    created_at: datetime | None = None  # for watches: when it was put on record


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    """How one claimed delivery went: ``error`` None is a success; else ``retry_at`` None is a dead letter."""

    job: DeliveryJob
    error: str | None = None
    retry_at: datetime | None = None


_d = schema.deliveries
_SETTLE_DELIVERY = update(_d).where(_d.c.id == bindparam("p_id"), _d.c.lease_owner == bindparam("p_owner"))
# An attempt starts only while its lease holds, by the database's clock (``p_now``).
_START_DELIVERY = (update(_d).where(_d.c.id == bindparam("p_id"), _d.c.lease_owner == bindparam("p_owner"),
                                    _d.c.lease_until > bindparam("p_now"))
                   .values(attempts=_d.c.attempts + 1, started_at=bindparam("p_started_at")))
_NOW = {"sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
        "postgresql": "SELECT clock_timestamp() AT TIME ZONE 'UTC'"}
_EVENTS = select(schema.events).where(schema.events.c.id.in_(bindparam("p_ids", expanding=True)))


# Seconds without a heartbeat after which a process's leases are orphaned: beats come every 2 s,
# and one may wait on a busy store for HOOKHUB_STORE_TIMEOUT (5 s) without the process being dead.
ORPHAN_AFTER = 15.0


class Jobs:
    dialect: str
    redactor: Any  # hookhub.redact.Redactor, set on the Store

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _serialize(self, conn: Connection, what: str) -> None:
        raise NotImplementedError

    def db_now(self, conn: Connection) -> datetime:
        """The database's clock, in UTC: the one every host agrees on."""
        # On the driver's cursor: every claim, start and renewal asks, and nothing in it needs more.
        moment = fast.scalar(conn, _NOW[self.dialect])
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return moment.replace(tzinfo=timezone.utc)

    def _still_beating(self, conn: Connection, owner: str, now: datetime) -> bool:
        """Renew ``owner``'s beat if it is recent: a process claims nothing while others could count it
        dead (it woke from a freeze, its beats could not be written)."""
        w = schema.workers.c
        fresh = now - timedelta(seconds=ORPHAN_AFTER / 2)
        return conn.execute(update(schema.workers).where(w.owner == owner, w.beat_at >= fresh)
                            .values(beat_at=now)).rowcount == 1

    def _free(self, table: Any, now: datetime) -> Any:
        """Rows of ``table`` nobody holds: no lease, a lease run out, or one whose process is gone."""
        c, w = table.c, schema.workers.c
        stale = now - timedelta(seconds=ORPHAN_AFTER)
        # (A claim recorded under no process, from before heartbeats, is held by its lease alone.)
        return or_(c.lease_until.is_(None), c.lease_until < now,
                   c.claimed_by.in_(select(w.owner).where(w.beat_at < stale)),
                   and_(c.claimed_by.is_not(None), c.claimed_by.not_in(select(w.owner))))

    def _insert_if_absent(self, conn: Connection, table: Any, values: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- deliveries ------------------------------------------------------------------------------

    def claim_deliveries(self, handlers: Sequence[str], *, lease: float, limit: int,
                         claimed_by: str | None = None) -> list[DeliveryJob]:
        """Lease up to ``limit`` of the most overdue deliveries for ``handlers``, for ``claimed_by``.

        An attempt counts when it starts (``delivery_started``), so a job claimed by a process that
        died before starting it costs no attempt. The claimer gives back the ones it does not start
        (``release_deliveries``) well before their leases run out.
        """
        if not handlers:
            return []
        claimed = self._claim(_d, _d.c.handler.in_(handlers), lease=lease, limit=limit, claimed_by=claimed_by)
        if not claimed:
            return []
        rows, owner, events = claimed
        return [DeliveryJob(row.id, owner, row.handler, row.attempts + 1, events[row.event_id]) for row in rows]

    def claim_delivery(self, handlers: Sequence[str], *, lease: float, claimed_by: str | None = None) -> DeliveryJob | None:
        """Lease the single most overdue delivery for ``handlers``."""
        jobs = self.claim_deliveries(handlers, lease=lease, limit=1, claimed_by=claimed_by)
        return jobs[0] if jobs else None

    def delivery_started(self, job: DeliveryJob) -> bool:
        """Count ``job``'s attempt as started, while its lease still holds by the database's clock;
        False when it was lost (its process was frozen past its heartbeat, say)."""
        with self._write() as conn:
            now = self.db_now(conn)
            return fast.execute(conn, _START_DELIVERY, {"p_id": job.id, "p_owner": job.lease, "p_now": now,
                                                        "p_started_at": now}) == 1

    def settle_deliveries(self, results: Sequence[DeliveryResult]) -> list[bool]:
        """Record how each attempt went, in one database transaction; False where the lease was lost."""
        if not results:
            return []
        now, settled = utcnow(), []
        with self._write() as conn:
            for r in results:
                if r.error is None:
                    values: dict[str, Any] = {"status": "done"}
                elif r.retry_at is None:
                    values = {"status": "dead", "last_error": self.redactor.text(r.error)}
                else:
                    values = {"next_attempt_at": r.retry_at, "last_error": self.redactor.text(r.error)}
                settled.append(fast.execute(conn, _SETTLE_DELIVERY, {
                    "p_id": r.job.id, "p_owner": r.job.lease, "lease_until": None, "lease_owner": None,
                    "claimed_by": None, "updated_at": now, **values}) == 1)
        return settled

    def delivery_succeeded(self, job: DeliveryJob) -> bool:
        """Mark ``job`` done; False if its lease was lost to another process meanwhile."""
        return self.settle_deliveries([DeliveryResult(job)])[0]

    def delivery_failed(self, job: DeliveryJob, error: str, retry_at: datetime | None) -> bool:
        """Record a failed attempt; ``retry_at`` None means no attempts are left (dead letter)."""
        return self.settle_deliveries([DeliveryResult(job, error, retry_at)])[0]

    def delivery_overdue(self, job: DeliveryJob, error: str | None, *, lease: float) -> bool:
        """Keep ``job`` leased while its attempt runs past the timeout; ``error`` says so, once."""
        with self._write() as conn:
            now = self.db_now(conn)
            values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease), "updated_at": now}
            if error is not None:
                values["last_error"] = error
            result = conn.execute(_SETTLE_DELIVERY, {"p_id": job.id, "p_owner": job.lease, **values})
        return result.rowcount == 1

    def release_deliveries(self, jobs: Sequence[DeliveryJob]) -> None:
        """Give back claimed jobs that were never started: due again at once, no attempt counted."""
        if not jobs:
            return
        now = utcnow()
        with self._write() as conn:
            for job in jobs:
                fast.execute(conn, _SETTLE_DELIVERY, {"p_id": job.id, "p_owner": job.lease, "lease_until": None,
                                                      "lease_owner": None, "claimed_by": None, "updated_at": now})

    # -- claims ----------------------------------------------------------------------------------

    def _claim(self, table: Any, condition: Any, *, lease: float, limit: int,
               claimed_by: str | None = None) -> tuple[list[Any], str, dict] | None:
        """Lease the ``limit`` most overdue pending rows of ``table`` matching ``condition`` that
        nobody holds (``_free``).

        (rows, lease owner, events by id for deliveries), or None when nothing is due. Whether
        anything is due is asked in a read transaction first, so an idle queue never takes the
        write lock (SQLite has one for the whole database). A re-check or a watch counts its
        attempt here (it starts at once); a delivery when it starts.
        """
        c = table.c
        with self._read() as conn:
            now = self.db_now(conn)
            due = (c.status == "pending", condition, c.next_attempt_at <= now, self._free(table, now))
            if conn.execute(select(c.id).where(*due).limit(1)).first() is None:
                return None
        owner = uuid.uuid4().hex
        with self._write() as conn:
            now = self.db_now(conn)
            if claimed_by is not None and not self._still_beating(conn, claimed_by, now):
                return None  # this process's heartbeat is stale: others may be taking its work
            due = (c.status == "pending", condition, c.next_attempt_at <= now, self._free(table, now))
            rows = conn.execute(
                select(table).where(*due).order_by(c.next_attempt_at, c.id).limit(limit)
                .with_for_update(skip_locked=True)  # other hosts skip rows being claimed (PostgreSQL)
            ).all()
            if not rows:
                return None
            values: dict[str, Any] = dict(lease_until=now + timedelta(seconds=lease), lease_owner=owner,
                                          claimed_by=claimed_by, updated_at=now)
            if table is not _d:
                values["attempts"] = c.attempts + 1
            conn.execute(update(table).where(c.id.in_([row.id for row in rows])).values(**values))
            events: dict[str, Event] = {}
            if table is _d:
                ids = sorted({row.event_id for row in rows})
                events = {row.id: event_from_row(row) for row in conn.execute(_EVENTS, {"p_ids": ids})}
        return rows, owner, events

    def _settle(self, table: Any, job_id: int, lease: str, **values: Any) -> bool:
        for name in ("last_error", "last_answer"):  # a provider's words may quote a credential
            if values.get(name):
                values[name] = self.redactor.text(values[name])
        with self._write() as conn:
            result = conn.execute(update(table).where(table.c.id == job_id, table.c.lease_owner == lease).values(
                lease_until=None, lease_owner=None, claimed_by=None, updated_at=utcnow(), **values))
        return result.rowcount == 1

    # -- deferred verifications ------------------------------------------------------------------

    def defer_verification(self, provider: str, trigger: Trigger, *, inbound_call_id: int | None,
                           due: datetime, caller: str | None = None, per_caller: int | None = None,
                           overall: int | None = None) -> bool:
        """Ask for ``trigger`` to be verified again at ``due``; one job per reference at a time.

        With limits (for a buyer's return), False when that would make more than ``overall``
        re-checks of returns pending, or more than ``per_caller`` of returns from ``caller``'s
        address: each re-check is a call to the provider's API, and anyone can ask for them.
        """
        v, c, now = schema.verifications, schema.inbound_calls, utcnow()
        context = self.redactor.mapping(trigger.context)  # from the caller's call: kept as any text is
        mine = and_(v.c.provider == provider, v.c.kind == "recheck", v.c.reference == trigger.reference)
        of_returns = v.join(c, c.c.id == v.c.inbound_call_id)
        pending = and_(v.c.kind == "recheck", v.c.status == "pending", c.c.route == "return")
        with self._write() as conn:
            if overall is not None or per_caller is not None:
                self._serialize(conn, "hookhub rechecks")  # a count and its insert, one process at a time
            if conn.execute(select(v.c.id).where(mine, v.c.status == "pending")).first() is not None:
                return True  # already asked for; it keeps its schedule
            if overall is not None and conn.execute(
                    select(func.count()).select_from(of_returns).where(pending)).scalar_one() >= overall:
                return False
            if per_caller is not None and caller and conn.execute(
                    select(func.count()).select_from(of_returns)
                    .where(pending, c.c.peer == caller)).scalar_one() >= per_caller:
                return False
            self._insert_if_absent(conn, v, dict(
                provider=provider, kind="recheck", reference=trigger.reference, context=context,
                inbound_call_id=inbound_call_id, status="pending", attempts=0, next_attempt_at=due,
                created_at=now, updated_at=now))
            # A new call revives a job that had given up.
            conn.execute(update(v).where(mine, v.c.status != "pending").values(
                status="pending", attempts=0, next_attempt_at=due, context=context,
                inbound_call_id=inbound_call_id, updated_at=now))
        return True

    def started_here(self, provider: str, reference: str) -> bool:
        """Whether ``reference`` is the provider's id of a payment or payout hookhub itself started."""
        v = schema.verifications
        with self._read() as conn:
            return conn.execute(select(v.c.id).where(
                v.c.provider == provider, v.c.provider_reference == reference,
                v.c.kind.in_(("payment", "payout"))).limit(1)).first() is not None

    def claim_verification(self, providers: Sequence[str], *, lease: float,
                           claimed_by: str | None = None) -> VerificationJob | None:
        """Lease the most overdue check (a re-check or a watch) for one of ``providers``."""
        if not providers:
            return None
        v = schema.verifications
        claimed = self._claim(v, v.c.provider.in_(providers), lease=lease, limit=1, claimed_by=claimed_by)
        if claimed is None:
            return None
        [row], owner, _ = claimed
        if row.kind == "recheck":
            return VerificationJob(row.id, owner, row.provider, Trigger(row.reference, row.context),
                                   row.attempts + 1, row.inbound_call_id)
        return VerificationJob(row.id, owner, row.provider, Trigger(row.reference, {}), row.attempts + 1,
                               row.inbound_call_id, kind=row.kind, watch=watch_from_row(row), created_at=row.created_at)

    def verification_done(self, job: VerificationJob) -> None:
        v = schema.verifications
        with self._write() as conn:
            conn.execute(delete(v).where(v.c.id == job.id, v.c.lease_owner == job.lease))

    def verification_failed(self, job: VerificationJob, error: str, retry_at: datetime | None) -> bool:
        """Record a failed re-check; ``retry_at`` None means give up."""
        if retry_at is None:
            return self._settle(schema.verifications, job.id, job.lease, status="gave_up", last_error=error)
        return self._settle(schema.verifications, job.id, job.lease, next_attempt_at=retry_at, last_error=error)

    # -- watches ---------------------------------------------------------------------------------

    def put_watch(self, provider: str, watch: Watch, *, nonce: str | None = None) -> None:
        """Put ``watch`` on record, due at once; the same order's earlier payment watch is replaced.

        ``nonce`` is the checkout's return nonce (``use_return_nonce``); only its hash is kept.

        When it is first asked about and when it ends are the servers' settings, so the first
        server to claim it schedules it (``watch_scheduled``).
        """
        v, now = schema.verifications, utcnow()
        values = dict(
            context=self.redactor.mapping(_watch_context(watch)), provider_reference=watch.reference[:128],
            return_nonce=_nonce_hash(nonce) if nonce else None, nonce_used_at=None,
            order_id=watch.order_id, amount=watch.amount, currency=watch.currency, status="pending", attempts=0,
            next_attempt_at=schema.DUE_NOW, deadline=None, checked_at=None, last_error=None, last_answer=None,
            created_at=now, updated_at=now)
        with self._write() as conn:
            # A payout is made once under its reference: what is on record of it is never replaced.
            updated = conn.execute(update(v).where(
                v.c.provider == provider, v.c.kind == watch.kind, v.c.reference == watch.order_id,
            ).values(lease_until=None, lease_owner=None, **values)) if watch.kind == "payment" else None
            if updated is None or updated.rowcount == 0:
                self._insert_if_absent(conn, v, dict(provider=provider, kind=watch.kind, reference=watch.order_id,
                                                     **values))

    def watch_scheduled(self, job: VerificationJob, *, first_check: datetime, deadline: datetime) -> bool:
        """Give a claimed watch back unasked, due at ``first_check``: the claim is not counted."""
        return self._settle(schema.verifications, job.id, job.lease, next_attempt_at=first_check, deadline=deadline,
                            attempts=job.attempts - 1)

    def watch_checked(self, job: VerificationJob, *, answer: str, status: str = "pending",
                      retry_at: datetime | None = None, error: str | None = None,
                      deadline: datetime | None = None) -> bool:
        """Record what the provider said of a watch: its new ``status`` and, while pending, the next check.

        The creating call's own answer, once reconciled, is not reconciled again.
        """
        now = utcnow()
        assert job.watch is not None
        values: dict[str, Any] = dict(status=status, last_answer=answer[:500], last_error=error, checked_at=now,
                                      context=self.redactor.mapping(
                                          _watch_context(dataclasses.replace(job.watch, answer=None))))
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        if deadline is not None:
            values["deadline"] = deadline
        return self._settle(schema.verifications, job.id, job.lease, **values)

    def use_return_nonce(self, provider: str, nonce: str, order_id: str | None = None) -> str | None:
        """The order whose payment watch holds ``nonce``, once: None when none does (or not
        ``order_id``'s, when given), or when a return echoed it before."""
        v = schema.verifications
        mine = and_(v.c.provider == provider, v.c.kind == "payment", v.c.return_nonce == _nonce_hash(nonce),
                    v.c.nonce_used_at.is_(None))
        if order_id is not None:
            mine = and_(mine, v.c.reference == order_id)
        with self._write() as conn:
            found = conn.execute(select(v.c.id, v.c.reference).where(mine)).first()
            if found is None or conn.execute(update(v).where(v.c.id == found.id, mine).values(
                    nonce_used_at=utcnow())).rowcount != 1:
                return None
        return found.reference

    def order_statuses(self, provider: str, kind: str, order_id: str, *, since: datetime) -> list[str]:
        """The statuses of ``order_id``'s payments (or payouts) that changed at ``since`` or later:
        what was heard of the order since a watch on it was put, not an earlier attempt's end."""
        t = schema.transactions
        with self._read() as conn:
            return list(conn.execute(select(t.c.status).where(
                t.c.provider == provider, t.c.order_id == order_id, t.c.kind == kind,
                t.c.updated_at >= since)).scalars())

    def list_watches(self, *, provider: str | None = None, status: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Watches, newest first."""
        v = schema.verifications
        query = select(v).where(v.c.kind != "recheck").order_by(v.c.id.desc()).limit(limit)
        if provider:
            query = query.where(v.c.provider == provider)
        if status:
            query = query.where(v.c.status == status)
        with self._read() as conn:
            return [_watch_dict(row) for row in conn.execute(query)]

    def get_watch(self, provider: str, order_id: str, kind: str | None = None) -> dict[str, Any] | None:
        """The watch on ``provider``'s ``order_id`` (a payment's before a payout's)."""
        v = schema.verifications
        query = select(v).where(v.c.provider == provider, v.c.reference == order_id, v.c.kind != "recheck")
        if kind:
            query = query.where(v.c.kind == kind)
        with self._read() as conn:
            row = conn.execute(query.order_by(v.c.kind)).first()
        return _watch_dict(row) if row else None


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _watch_context(watch: Watch) -> dict[str, Any]:
    """What of a watch is kept in its row's ``context`` (``watch_from_row`` reads it back)."""
    return {"reference": watch.reference, "key": watch.key, "poll": dict(watch.context),
            "answer": watch.answer.to_plain() if watch.answer is not None else None}


def watch_from_row(row: Any) -> Watch:
    context = row.context or {}
    answer = context.get("answer")
    return Watch(kind=row.kind, order_id=row.reference, reference=context.get("reference") or row.reference,
                 amount=row.amount, currency=row.currency, key=context.get("key"), context=context.get("poll") or {},
                 answer=TransactionState.from_plain(answer) if answer else None)


def _watch_dict(row: Any) -> dict[str, Any]:
    data = row._asdict()
    context = data.pop("context") or {}
    data["order_id"] = data.pop("reference")
    data["reference"] = context.get("reference")
    for hidden in ("lease_owner", "inbound_call_id"):
        data.pop(hidden, None)
    return data


class Workers:
    """The processes that claim work, by their heartbeats. Mixed into ``Store``."""

    dialect: str

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def register_worker(self, owner: str, *, host: str, node: str, pid: int) -> None:
        """``owner`` starts beating; rows of processes silent for an hour (other hosts') are cleaned up."""
        w = schema.workers
        with self._write() as conn:
            now = self.db_now(conn)
            conn.execute(delete(w).where(w.c.beat_at < now - timedelta(hours=1)))
            conn.execute(w.insert().values(owner=owner, host=host, node=node, pid=pid, started_at=now, beat_at=now))

    def beat(self, owner: str) -> bool:
        """Record that ``owner`` lives, by the database's clock; False when its row is gone (stopped)."""
        w = schema.workers
        with self._write() as conn:
            return conn.execute(update(w).where(w.c.owner == owner).values(beat_at=self.db_now(conn))).rowcount == 1

    def forget_worker(self, owner: str) -> None:
        """A clean stop: ``owner``'s claims are given back (no attempt counted) and its row removed."""
        w, now = schema.workers, utcnow()
        with self._write() as conn:
            for table in (_d, schema.verifications):
                conn.execute(update(table).where(table.c.claimed_by == owner, table.c.status == "pending").values(
                    lease_until=None, lease_owner=None, claimed_by=None, updated_at=now))
            conn.execute(delete(w).where(w.c.owner == owner))

    def forget_dead_workers(self, node: str, *, alive: Any, keep: str) -> int:
        """Remove the rows of ``node``'s processes whose pid no longer runs (``alive(pid)`` False): their
        work is orphaned at once. How many."""
        w = schema.workers
        with self._read() as conn:
            rows = conn.execute(select(w.c.owner, w.c.pid).where(w.c.node == node, w.c.owner != keep)).all()
        dead = [row.owner for row in rows if not alive(row.pid)]
        if dead:
            with self._write() as conn:
                conn.execute(delete(w).where(w.c.owner.in_(dead)))
        return len(dead)

    def list_workers(self) -> list[dict[str, Any]]:
        """Processes with a heartbeat: host, pid, last beat (and its age by the database's clock), and
        how many deliveries and checks each holds."""
        w = schema.workers
        with self._read() as conn:
            now = self.db_now(conn)
            found = []
            for row in conn.execute(select(w).order_by(w.c.host, w.c.pid)):
                held = {}
                for name, table in (("deliveries", _d), ("checks", schema.verifications)):
                    held[name] = conn.execute(select(func.count()).select_from(table).where(
                        table.c.claimed_by == row.owner, table.c.lease_until >= now)).scalar_one()
                age = (now - row.beat_at).total_seconds()
                found.append({**row._asdict(), "beat_age_seconds": round(age, 1), "orphaned": age > ORPHAN_AFTER,
                              "holds": held})
        return found
