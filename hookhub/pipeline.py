"""The one place the request flow lives: ingest -> verify -> fetch -> reconcile -> (deliver).

Callbacks, returns, the background re-checks and the watches on what shops created all go through
``Pipeline``; the web layer only turns its ``Handled`` results into HTTP answers, and the scheduler
only feeds it due jobs.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import metrics, redact
from .calls import InboundCall, Reply, Trigger
from .errors import (InvalidRequest, ProviderAuthError, ProviderError, ProviderNotFound, ProviderUnavailable,
                     StoreUnavailable, ValidationError)
from .events import Event
from .plugins import Hooks
from .providers import Provider
from .registry import Registry
from .retry import RetryPolicy
from .ledger import Plan, approval_of
from .outbound import NONCE_PARAM
from .states import TransactionState, is_settled
from .store import Locked, Store, VerificationJob, new_event_id, utcnow
from .store.accepted import ACCEPTED, RETRY_SECONDS as ACCEPTED_RETRY_SECONDS, AcceptedBatch, AcceptedCall, AttemptFailed

log = logging.getLogger("hookhub")

MAX_REFERENCE_LENGTH = 128
# Printable ASCII without spaces, quotes, angle brackets or backslashes: every provider's ids fit.
_REFERENCE = re.compile(r"[A-Za-z0-9._:@+/=~-]+")
# Background re-checks of a reference of hookhub's own that the provider does not know or refuses
# (others get none). Few: each re-check is a call to the provider's API.
UNCONFIRMED_RECHECKS = 3
ACCEPTED_BATCH = 64  # accepted callbacks reconciled per database transaction
ACCEPTED_BACKLOG = 2000  # answered calls waiting past which new ones are reconciled before their answer
FAILURE_RECORD_WAIT = 0.2  # seconds the record of a call refused for a store failure may wait for a lock


@dataclasses.dataclass(frozen=True)
class RecheckLimits:
    """How many background re-checks may be pending at once: for returns from one address, and
    from everyone. Each is a call to the provider's API that anyone's call can ask for."""

    per_address: int | None = None
    overall: int | None = None


_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _return_nonce(call: InboundCall) -> str | None:
    """The checkout nonce a return carries (``hookhub_nonce``), when it carries exactly one sane one."""
    try:
        values = call.query.get(NONCE_PARAM, [])
    except InvalidRequest:
        return None
    return values[0] if len(values) == 1 and _NONCE.fullmatch(values[0]) else None


class Problem(enum.Enum):
    """Why the provider's state could not be had; each value is (code, HTTP status for callbacks, public message)."""

    UNKNOWN = ("unknown_transaction", 404, "the provider does not know this transaction")
    REFUSED = ("provider_refused", 422, "the provider refused to confirm this transaction")
    UNAVAILABLE = ("provider_unavailable", 503, "the payment cannot be confirmed with the provider now; retry later")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]


@dataclasses.dataclass(frozen=True)
class Handled:
    """What became of one inbound call, for the web layer to answer with."""

    http_status: int
    outcome: str  # what was recorded for the call: event, duplicate, stale, deferred_..., or an error code
    provider: str
    status: str = "unknown"  # the transaction's status: approved, pending, ... or unknown
    event: Event | None = None  # the event holding the transaction's current state
    reply: Reply | None = None  # callbacks: what the provider expects back
    message: str | None = None  # set when the call is refused: the public reason
    reference: str | None = None  # the provider's reference the call named, once known
    nonce: str | None = None  # returns: the checkout nonce this return was the first to bring back
    order_id: str | None = None  # a return without an event: the order its checkout nonce names

    @property
    def order(self) -> str | None:
        """The order the call is about, as far as hookhub can vouch for it."""
        return self.event.order_id if self.event is not None else self.order_id

    @property
    def refused(self) -> bool:
        return self.message is not None


@dataclasses.dataclass(frozen=True)
class _Fetched:
    state: TransactionState | None = None
    expected: dict | None = None
    problem: Problem | None = None
    detail: str = ""  # for the operator: stored with the call, never sent to the caller


class _Recording:
    """An inbound call on its way through the flow, and whether it is in the store yet."""

    def __init__(self, call: InboundCall, store: Store):
        self.call = call
        self.settled = False  # whether its outcome is committed
        self._store = store

    def store_now(self) -> InboundCall:
        """Record the call as received, unless it is already on record; the call with its id."""
        if self.call.id is None:
            self.call = dataclasses.replace(self.call, id=self._store.record_call(self.call))
        return self.call


def check_reference(reference: object) -> str:
    """The trigger's reference, or ``InvalidRequest`` when it is not a sane provider id."""
    if not isinstance(reference, str) or not reference:
        raise InvalidRequest("the transaction reference is missing or not a string", code="missing_reference")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidRequest(f"the transaction reference is longer than {MAX_REFERENCE_LENGTH} characters",
                             code="reference_too_long")
    if not _REFERENCE.fullmatch(reference):
        raise InvalidRequest("the transaction reference has characters no provider id has",
                             code="malformed_reference")
    return reference


class Pipeline:
    def __init__(self, store: Store, registry: Registry, hooks: Hooks, handler_names: Sequence[str],
                 verify_policy: RetryPolicy, redactor: redact.Redactor = redact.NOTHING,
                 on_new_work: Callable[[], None] = lambda: None, watch_after: float = 120.0,
                 watch_give_up: float = 86400.0, recheck_limits: RecheckLimits = RecheckLimits(),
                 accept_callbacks: bool = True):
        self.store = store
        self.registry = registry
        self.hooks = hooks
        self.handler_names = list(handler_names)
        self.verify_policy = verify_policy
        # A watch asks until the provider's answer is final, however long that takes before its
        # deadline: the same backoff as re-checks, without their limit on attempts.
        self.watch_policy = RetryPolicy(verify_policy.base, verify_policy.cap, max_attempts=2**31)
        self.watch_after = watch_after
        self.watch_give_up = watch_give_up
        self.redactor = redactor
        self.recheck_limits = recheck_limits
        self.on_new_work = on_new_work
        # Signed callbacks that carry the provider's state are answered once recorded (``_accept``).
        self.accept_callbacks = accept_callbacks
        self.backlogged = False  # set by the background work (``note_backlog``)
        self.backlog_limit = ACCEPTED_BACKLOG

    # -- inbound ---------------------------------------------------------------------------------

    def handle(self, call: InboundCall) -> Handled:
        """Run one inbound call through the whole flow. ``StoreUnavailable`` propagates (503).

        The call is recorded in the same database transaction as its outcome; only a call that
        must wait on something outside hookhub (the provider's API, the merchant's hook) is
        recorded first on its own, so that it is on record while it waits.
        """
        recording = _Recording(call, self.store)
        try:
            return self._handle(recording)
        except StoreUnavailable as exc:
            # A lock held past the timeout, a lost connection: say so on the call if the store
            # still answers, so that the refusal is on record like any other.
            self._record_failure(recording, "store_unavailable", 503, str(exc))
            raise
        except Exception as exc:
            self._record_failure(recording, "internal_error", 500, f"{type(exc).__name__} while handling the call")
            raise

    def _record_failure(self, recording: _Recording, outcome: str, status: int, error: str) -> None:
        if recording.settled:
            return  # what was decided is on record; the caller's error answer changes nothing there
        try:
            # Briefly: the caller has waited for the store once already.
            self.store.finish_call(recording.call, outcome=outcome, status_code=status, error=error,
                                   lock_wait=FAILURE_RECORD_WAIT)
        except StoreUnavailable:
            pass

    def _handle(self, recording: _Recording) -> Handled:
        call = recording.call
        provider = self.registry.get(call.provider)
        if provider is None:
            return self._refuse(call, 404, "unknown_provider", "no provider by that name is configured here",
                                known_provider=False)
        allowed = provider.callback_methods if call.route == "callback" else provider.return_methods
        if call.method not in allowed:
            return self._refuse(call, 405, "method_not_allowed",
                                f"{call.method} is not accepted here; use {', '.join(sorted(allowed))}")
        try:
            trigger = provider.read_callback(call) if call.route == "callback" else provider.read_return(call)
            if trigger is None and call.route == "callback":
                return self._ignore(provider, call)
            if trigger is None:
                raise InvalidRequest("this return names no payment", code="missing_reference")
            check_reference(trigger.reference)
            if self._acceptable(call, trigger):
                handled = self._accept(provider, call, trigger)
                recording.settled = True
                return handled
            fetched = self._fetch(provider, trigger, before_waiting=recording.store_now)
        except InvalidRequest as exc:
            return self._refuse(recording.call, exc.status, exc.code, exc.message)
        except (ValueError, TypeError) as exc:
            # A state built from the call's own content (a signed body) that the contract refuses.
            log.warning("%s %s: unusable content: %s", call.provider, call.route, exc, exc_info=True)
            return self._refuse(recording.call, 400, "unusable_content", "the call's content cannot be used")
        call = recording.call

        if fetched.state is None:
            assert fetched.problem is not None
            if call.route == "callback":
                # A provider retries a callback it did not get a 2xx for: that is the retry.
                return self._refuse(call, fetched.problem.status, fetched.problem.code, fetched.problem.message,
                                    reference=trigger.reference, detail=fetched.detail)
            # The buyer must not wait on the provider: the pending page, and checks in the background,
            # but not of what the provider said it does not know, unless hookhub started it: anyone
            # can make up a reference, and each check is a call to the provider's API.
            call = recording.store_now()
            if fetched.problem is not Problem.UNAVAILABLE and not self.store.started_here(
                    provider.name, trigger.reference):
                outcome = fetched.problem.code
            elif self._defer(provider, trigger, route=call.route, peer=call.peer, call_id=call.id):
                outcome = f"deferred_{fetched.problem.code}"
            else:
                outcome = f"unchecked_{fetched.problem.code}"
            self.store.finish_call(call, outcome=outcome, status_code=303, error=fetched.detail,
                                   reference=trigger.reference, refused=not outcome.startswith("deferred_"))
            # The buyer of a checkout of hookhub's own is told its order is pending: not its payment.
            nonce = _return_nonce(call)
            order_id = self.store.use_return_nonce(provider.name, nonce) if nonce else None
            return Handled(303, outcome, provider.name, status="pending", reference=trigger.reference,
                           nonce=nonce if order_id else None, order_id=order_id)

        reply = provider.acknowledge(call) if call.route == "callback" else None
        source = "replay" if call.replay_of is not None else call.route
        handled, call = self._reconcile(provider, fetched, source=source, call=call,
                                        http_status=reply.status if reply else 303, reference=trigger.reference)
        assert call is not None
        recording.call, recording.settled = call, True
        if handled.status == "pending":  # not final yet: keep asking until it is
            self._defer(provider, trigger, route=call.route, peer=call.peer, call_id=call.id)
        nonce = _return_nonce(call) if call.route == "return" and handled.event is not None else None
        if nonce is not None and not self.store.use_return_nonce(provider.name, nonce, handled.event.order_id):
            nonce = None  # another order's, or echoed before: a replayed return
        return dataclasses.replace(handled, reply=reply, nonce=nonce)

    def rerun(self, stored: Mapping[str, Any], *, public_url: str | None) -> Handled:
        """Run a recorded inbound call through verification again, as a new call of source ``replay``.

        Credential headers were redacted when the call was recorded, so a call whose verification
        needs them (a signed callback) is refused again as unsigned; everything else is re-checked
        with the provider exactly as the first time.
        """
        call = InboundCall(
            provider=stored["provider"], route=stored["route"], method=stored["method"], path=stored["path"],
            query_string=stored["query_string"], headers=dict(stored["headers"]), body=bytes(stored["body"]),
            peer=f"replay of call {stored['id']}", received_at=utcnow(), public_url=public_url,
            replay_of=stored["id"])
        return self.handle(call)

    def refuse(self, call: InboundCall, error: InvalidRequest) -> Handled:
        """Record a call the web layer already knows it refuses (an oversized body, say)."""
        return self._refuse(call, error.status, error.code, error.message)

    def _refuse(self, call: InboundCall, status: int, code: str, message: str, *,
                reference: str | None = None, detail: str | None = None, known_provider: bool = True) -> Handled:
        self.store.finish_call(call, outcome=code, status_code=status, error=detail or message,
                               reference=reference, known_provider=known_provider)
        return Handled(status, code, call.provider, message=message, reference=reference)

    def _ignore(self, provider: Provider, call: InboundCall) -> Handled:
        """A verified callback about no payment's state: acknowledged and recorded, nothing more."""
        reply = provider.acknowledge(call)
        self.store.finish_call(call, outcome="ignored", status_code=reply.status)
        return Handled(reply.status, "ignored", provider.name, reply=reply)

    def _defer(self, provider: Provider, trigger: Trigger, *, route: str, peer: str | None,
               call_id: int | None) -> bool:
        """Have ``trigger`` (of call ``call_id``) checked again in the background; False when the limits say no."""
        # Returns come from anyone's browser: their re-checks are limited. Callbacks come from the
        # provider, which calls again when the state changes.
        limits = self.recheck_limits if route == "return" else RecheckLimits()
        deferred = self.store.defer_verification(
            provider.name, trigger, inbound_call_id=call_id, due=self.verify_policy.next_at(1) or utcnow(),
            caller=peer, per_caller=limits.per_address, overall=limits.overall)
        if deferred:
            self.on_new_work()
        else:
            metrics.verification_failed(provider.name, "recheck_limit")
            log.warning("%s: %s will not be checked again in the background: too many re-checks are pending "
                        "(from %s, or overall)", provider.name, trigger.reference, peer or "-")
        return deferred

    # -- fetch and reconcile -----------------------------------------------------------------------

    def _fetch(self, provider: Provider, trigger: Trigger,
               before_waiting: Callable[[], object] = lambda: None) -> _Fetched:
        """The provider's authoritative state for ``trigger``, or the problem that prevented it.

        ``before_waiting`` is called before anything outside hookhub is asked (the provider's
        API, the merchant's ``hookhub_expected_payment``).
        """
        try:
            state = trigger.state
            if state is None:
                before_waiting()
                state = provider.fetch(trigger)
        except ProviderNotFound as exc:
            return _Fetched(problem=Problem.UNKNOWN, detail=str(exc))
        except (ProviderUnavailable, ProviderAuthError) as exc:
            log.warning("%s: cannot verify %s now: %s", provider.name, trigger.reference, exc)
            return _Fetched(problem=Problem.UNAVAILABLE, detail=str(exc))
        except ProviderError as exc:
            return _Fetched(problem=Problem.REFUSED, detail=str(exc))
        except ValidationError as exc:
            raise InvalidRequest(f"the transaction reference cannot be looked up: {exc.message}",
                                 code="invalid_reference") from None
        except Exception as exc:  # a plugin bug must cost a retry, never a 500 or a lost call
            log.exception("%s: fetch of %s failed unexpectedly", provider.name, trigger.reference)
            return _Fetched(problem=Problem.UNAVAILABLE, detail=f"fetch raised {type(exc).__name__}")
        return self._judge(provider, state, before_waiting)

    def _judge(self, provider: Provider, state: TransactionState,
               before_waiting: Callable[[], object] = lambda: None) -> _Fetched:
        """``state`` with secrets scrubbed, and what the merchant expected of its approval if that differs.

        The shop's ``hookhub_expected_payment`` is asked once per payment: about the approval
        (authorized, or paid in one step), while none is booked.
        """
        state = dataclasses.replace(state, raw=self.redactor.mapping(state.raw))
        approval = approval_of(state)
        if approval is None or not self.hooks.expects_payments:
            return _Fetched(state)
        before_waiting()
        current = self.store.get_transaction(provider.name, state.lock_key)
        if current is not None and current.authorized:
            return _Fetched(state)  # already approved: judged when it was
        try:
            expected = self.hooks.expected_payment(provider.name, state.order_id)
        except Exception as exc:  # the merchant's hook failed: decide later rather than guess now
            log.exception("hookhub_expected_payment failed for %s order %s", provider.name, state.order_id)
            return _Fetched(problem=Problem.UNAVAILABLE, detail=f"hookhub_expected_payment raised {type(exc).__name__}")
        if expected is None or expected == (approval.amount, approval.currency or state.currency):
            return _Fetched(state)
        amount, currency = expected
        return _Fetched(state, {"amount": amount, "currency": currency})

    def _reconcile(self, provider: Provider, fetched: _Fetched, *, source: str, call: InboundCall | None,
                   http_status: int, reference: str,
                   inbound_call_id: int | None = None) -> tuple[Handled, InboundCall | None]:
        """Apply ``fetched`` under the transaction's lock; only a real transition makes an event.

        The call, if any, is recorded with its outcome in the same database transaction; it is
        returned with its id.
        """
        state = fetched.state
        assert state is not None
        with self.store.locked(provider.name, state.lock_key) as tx:
            caught_up, made = self._catch_up(provider, tx)

            def record_call(outcome: str, event_id: str | None) -> int | None:
                nonlocal call
                if call is None:  # a re-check or a watch: the call that asked for it, if any
                    return inbound_call_id
                call = dataclasses.replace(call, id=tx.finish_call(
                    call, outcome=outcome, status_code=http_status, reference=reference, event_id=event_id))
                return call.id

            planned, events, event = self._apply(tx, state, fetched.expected, record_call, source=source,
                                                 received_at=call.received_at if call else utcnow())
            status = tx.current.status if tx.current else state.status
        self._after_accepted(caught_up, made + len(events))
        return Handled(http_status, planned.outcome, provider.name, status=status, event=event,
                       reference=reference), call

    def _apply(self, tx: Locked, state: TransactionState, expected: dict | None,
               record_call: Callable[[str, str | None], int | None], *, source: str, received_at: datetime,
               planned: Plan | None = None) -> tuple[Plan, list[Event], Event | None]:
        """Plan ``state`` against the locked transaction, have the call recorded with its outcome
        (``record_call(outcome, event_id)``, before the events that name it; it gives the id the
        events are to name) and record the plan (``planned``, when already made):
        (the plan, the events it made, the event holding the transaction's state now)."""
        planned = planned or tx.plan(state, expected=expected)
        event_ids = [new_event_id() for _ in planned.events]
        latest = None if event_ids or planned.outcome == "held" else tx.latest_event()
        call_id = record_call(planned.outcome, event_ids[-1] if event_ids else (latest.id if latest else None))
        events = tx.apply(state, planned, source=source, inbound_call_id=call_id, received_at=received_at,
                          handlers=self.handler_names, event_ids=event_ids)
        return planned, events, events[-1] if events else latest

    # -- accepted callbacks ------------------------------------------------------------------------

    def _acceptable(self, call: InboundCall, trigger: Trigger) -> bool:
        """Whether ``call`` may be answered once recorded, before its reconciliation: a verified
        callback that carries the provider's whole state, when nothing outside hookhub is asked
        about it (no ``hookhub_expected_payment``), and not an operator's replay (who waits for
        its outcome)."""
        return (self.accept_callbacks and call.route == "callback" and trigger.state is not None
                and call.replay_of is None and not self.hooks.expects_payments and not self.backlogged)

    def note_backlog(self, waiting: int) -> None:
        """Told by the background work how many answered calls wait for their reconciliation. Past
        ``ACCEPTED_BACKLOG``, callbacks are reconciled before their answer again: under a load
        the background cannot keep up with, the answers slow down instead of the backlog growing
        without end. They are answered on record again once half of those are reconciled."""
        # Back to answering on record only once half of it is done, so the two do not take turns.
        backlogged = waiting > (self.backlog_limit // 2 if self.backlogged else self.backlog_limit)
        if backlogged != self.backlogged:
            log.warning("%d answered callbacks wait for their reconciliation: %s", waiting,
                        "reconciling new ones before answering" if backlogged else "answering on record again")
        self.backlogged = backlogged

    def _accept(self, provider: Provider, call: InboundCall, trigger: Trigger) -> Handled:
        assert trigger.state is not None
        state = dataclasses.replace(trigger.state, raw=self.redactor.mapping(trigger.state.raw))
        reply = provider.acknowledge(call)
        self.store.accept_call(call, status_code=reply.status, trigger=dataclasses.replace(trigger, state=state))
        self.on_new_work()
        return Handled(reply.status, ACCEPTED, provider.name, status=state.status, reply=reply,
                       reference=trigger.reference)

    def reconcile_accepted(self, limit: int = ACCEPTED_BATCH) -> int:
        """Reconcile callbacks answered before their reconciliation, oldest first, up to ``limit`` in
        one database transaction, each exactly as it would have been on its own; how many were taken.

        Only calls of providers this process has are taken. A call whose state the ledger refuses
        is recorded as ``unusable_content`` (its provider had its 2xx: there is nothing to retry); one
        whose reconciliation fails otherwise is undone and put off, with the error on record, and
        so are the later calls of its transaction, so that they keep their order; the rest go on.
        A pending payment is checked again in the background, as after any callback.
        """
        pending: list[tuple[Provider, AcceptedCall]] = []
        made = 0
        failed: set[tuple[str, str]] = set()  # transactions with a call put off in this batch
        with self.store.accepted_batch(list(self.registry.enabled), limit) as batch:
            # Locks are taken in one order (transaction, then arrival), so two batches never wait
            # on each other in a circle; one transaction's calls stay in the order they came.
            for accepted in sorted(batch.calls, key=lambda c: (c.provider, c.state.lock_key, c.id)):
                provider = self.registry.get(accepted.provider)
                assert provider is not None  # the batch holds this process's providers' calls only
                key = (provider.name, accepted.state.lock_key)
                if key in failed:
                    batch.put_off(accepted, "waiting for an earlier call of its transaction")
                    continue
                made_now = self._reconcile_accepted_call(
                    provider, lambda: batch.locked(provider.name, accepted.state.lock_key), batch, accepted, pending)
                if made_now is None:
                    failed.add(key)
                else:
                    made += made_now
            taken = len(batch.calls)
        self._after_accepted(pending, made)
        return taken

    def _catch_up(self, provider: Provider, tx: Locked) -> tuple[list[tuple[Provider, AcceptedCall]], int]:
        """Reconcile the transaction's accepted calls first, in the order they came, so that what
        reconciles it now (a return, a re-check) comes after them as it did in time: those left
        pending, and how many events they made. After one that fails, the rest wait for it (the
        call being reconciled now goes ahead of them: its caller waits for its answer)."""
        pending: list[tuple[Provider, AcceptedCall]] = []
        batch = self.store.accepted_of(tx)
        made = 0
        for accepted in batch.calls:
            made_now = self._reconcile_accepted_call(provider, lambda: tx, batch, accepted, pending)
            if made_now is None:
                break
            made += made_now
        return pending, made

    def _reconcile_accepted_call(self, provider: Provider, lock: Callable[[], Locked], batch: AcceptedBatch,
                                 accepted: AcceptedCall, pending: list[tuple[Provider, AcceptedCall]]) -> int | None:
        """Apply one accepted call to its transaction (``lock()`` gives it, locked), as its own
        reconciliation would have: how many events it made, or None when it failed and was put off.
        A payment left pending is added to ``pending``."""
        refused = False
        tx: Locked | None = None
        try:
            with batch.attempt(accepted):
                tx = lock()
                try:
                    planned = tx.plan(accepted.state)
                except (ValueError, TypeError):  # the ledger refuses this state: no retry makes it usable
                    refused = True
                else:
                    _, events, _ = self._apply(
                        tx, accepted.state, None, lambda outcome, event_id: batch.finish(accepted, outcome=outcome,
                                                                                         event_id=event_id),
                        source="callback", received_at=accepted.received_at, planned=planned)
        except AttemptFailed:
            log.exception("%s: reconciling accepted call %s failed; it is tried again in %gs", provider.name,
                          accepted.id, ACCEPTED_RETRY_SECONDS)
            if tx is not None:
                tx.reload()  # what the undone attempt wrote is gone
            return None
        if refused:
            log.error("%s: accepted call %s has a state the ledger cannot use", provider.name, accepted.id)
            batch.finish(accepted, outcome="unusable_content", event_id=None)
            return 0
        assert tx is not None
        if (tx.current.status if tx.current else accepted.state.status) == "pending":
            pending.append((provider, accepted))
        return len(events)

    def _after_accepted(self, pending: list[tuple[Provider, AcceptedCall]], made: int) -> None:
        """Once committed: have pending payments checked again, as after any callback; wake the deliveries."""
        if made:
            self.on_new_work()
        for provider, accepted in pending:
            try:
                self._defer(provider, accepted.trigger, route="callback", peer=accepted.peer, call_id=accepted.id)
            except Exception:  # the provider calls again when the state changes; this is not worth a 500
                log.exception("%s: pending payment %s of accepted call %s will not be checked again",
                              provider.name, accepted.trigger.reference, accepted.id)

    # -- background re-checks ----------------------------------------------------------------------

    def run_verification(self, job: VerificationJob) -> None:
        """Re-check one deferred verification; reschedule it until the provider gives a final answer."""
        if job.watch is not None:
            self.run_watch(job)
            return
        provider = self.registry.get(job.provider)
        if provider is None:
            self._retry_verification(job, "provider is not configured in this process")
            return
        try:
            fetched = self._fetch(provider, job.trigger)
            if fetched.state is None:
                assert fetched.problem is not None
                metrics.verification_failed(job.provider, fetched.problem.code)
                limit = None
                if fetched.problem is not Problem.UNAVAILABLE:  # only what hookhub started is asked again
                    limit = UNCONFIRMED_RECHECKS if self.store.started_here(job.provider, job.trigger.reference) else 0
                self._retry_verification(job, fetched.detail, limit=limit)
                return
            handled, _ = self._reconcile(provider, fetched, source="poll", call=None, http_status=0,
                                         reference=job.trigger.reference, inbound_call_id=job.inbound_call_id)
        except InvalidRequest as exc:
            self._retry_verification(job, exc.message, limit=0)
            return
        if handled.status == "pending":
            self._retry_verification(job, "the provider still reports the payment as pending")
        else:
            self.store.verification_done(job)

    def _retry_verification(self, job: VerificationJob, error: str, *, limit: int | None = None) -> None:
        # The call that deferred the job was the first attempt.
        attempts = job.attempts + 1
        retry_at = None if limit is not None and job.attempts >= limit else self.verify_policy.next_at(attempts)
        if retry_at is None:
            log.error("%s: gave up verifying %s after %d attempts: %s", job.provider, job.trigger.reference,
                      attempts, error)
        self.store.verification_failed(job, error, retry_at)

    # -- watches on what shops created -------------------------------------------------------------

    def run_watch(self, job: VerificationJob) -> None:
        """Check one watched payment or payout with its provider; reschedule it until the answer is final.

        What the creating call itself answered is reconciled first (source ``client``). A watch
        whose order a callback or a return already settled costs no call to the provider. A
        payment still unpaid at its deadline is expired (``payment.expired``); a payout whose
        provider still knows nothing of it then is given up, for an operator to look at.
        """
        watch = job.watch
        assert watch is not None
        provider = self.registry.get(job.provider)
        if provider is None:  # claims pick enabled providers only; it was turned off meanwhile
            self.store.watch_checked(job, answer="not asked", retry_at=self._watch_retry(job),
                                     error=f"provider {job.provider!r} is not configured in this process")
            return
        assert job.created_at is not None
        # When to ask first and when to give up are this server's settings, counted from the creation.
        first_check = job.created_at + timedelta(seconds=self.watch_after)
        deadline = job.created_at + timedelta(seconds=self.watch_give_up)
        if watch.answer is not None:
            self._conclude(provider, job, watch.answer, source="client")
            return
        if self._settled_meanwhile(provider, job):  # a callback or a return settled it: no need to ask
            return
        if utcnow() < first_check:  # the provider's own word (a callback, a return) is awaited first
            self.store.watch_scheduled(job, first_check=first_check, deadline=deadline)
            return
        try:
            state = provider.poll(watch)
        except ProviderNotFound as exc:
            state, detail = None, f"not known to the provider: {exc}"
        except ProviderError as exc:  # unavailable, refused credentials, an error answer: ask again later
            metrics.verification_failed(provider.name, "watch_no_answer")
            self.store.watch_checked(job, answer="no answer", retry_at=self._watch_retry(job), error=str(exc))
            return
        except ValidationError as exc:
            self.store.watch_checked(job, status="gave_up", answer="cannot be asked", error=exc.message)
            return
        except Exception as exc:  # a plugin bug must cost a retry, never the watch
            log.exception("%s: poll of %s %s failed unexpectedly", provider.name, watch.kind, watch.order_id)
            self.store.watch_checked(job, answer="no answer", retry_at=self._watch_retry(job),
                                     error=f"poll raised {type(exc).__name__}")
            return
        else:
            detail = "not paid yet" if state is None else state.status
        if state is not None and (state.kind != watch.kind or state.status != "pending" or watch.kind == "payout"):
            # A payment still pending is what its creator already knows: no event for that.
            self._conclude(provider, job, state, source="poll", deadline=deadline)
            return
        if utcnow() >= deadline:
            self._expire(provider, job, detail)
            return
        self.store.watch_checked(job, answer=detail, retry_at=min(self._watch_retry(job), deadline), deadline=deadline)

    def _conclude(self, provider: Provider, job: VerificationJob, state: TransactionState, *, source: str,
                  deadline: datetime | None = None) -> None:
        watch = job.watch
        assert watch is not None
        if state.kind != watch.kind:
            self.store.watch_checked(job, status="gave_up", answer="unusable answer",
                                     error=f"asked about a {watch.kind}, the plugin answered a {state.kind}")
            return
        fetched = self._judge(provider, state)
        if fetched.state is None:  # the merchant's expected-payment hook failed: ask again later
            self.store.watch_checked(job, answer=state.status, retry_at=self._watch_retry(job), error=fetched.detail)
            return
        handled, _ = self._reconcile(provider, fetched, source=source, call=None, http_status=0,
                                     reference=watch.reference)
        if is_settled(handled.status, watch.kind):  # what the ledger holds now, not what was said
            self.store.watch_checked(job, status="settled", answer=handled.status)
        elif deadline is not None and utcnow() >= deadline:  # declined, and not paid since: over
            self.store.watch_checked(job, status="expired" if watch.kind == "payment" else "gave_up",
                                     answer=state.status)
        elif source == "client":  # the creating call's answer: the provider's own word is awaited first
            self.store.watch_checked(job, answer=state.status, retry_at=utcnow() + timedelta(seconds=self.watch_after))
        else:
            self.store.watch_checked(job, answer=state.status, retry_at=self._watch_retry(job))

    def _expire(self, provider: Provider, job: VerificationJob, detail: str) -> None:
        watch = job.watch
        assert watch is not None
        if watch.kind != "payment":
            log.error("%s: gave up watching payout %s: the provider gave no final answer before the deadline (%s)",
                      provider.name, watch.order_id, detail)
            self.store.watch_checked(job, status="gave_up", answer=detail,
                                     error="the provider gave no final answer before the deadline; look at it "
                                           "with the provider before paying again")
            return
        if self._settled_meanwhile(provider, job):  # paid a moment ago, under another key: not expired after all
            return
        expired = TransactionState(
            status="expired", transaction_id=watch.reference, order_id=watch.order_id, amount=watch.amount,
            currency=watch.currency, key=watch.key or watch.order_id,
            raw=self.redactor.mapping({"reason": "not paid before HOOKHUB_WATCH_GIVE_UP_SECONDS ran out",
                                       "last_answer": detail}))
        self._reconcile(provider, _Fetched(expired), source="poll", call=None, http_status=0,
                        reference=watch.reference)
        self.store.watch_checked(job, status="expired", answer=detail)

    def _settled_meanwhile(self, provider: Provider, job: VerificationJob) -> bool:
        """Close the watch if what hookhub heard of its order since the watch was put settled it."""
        watch = job.watch
        assert watch is not None and job.created_at is not None
        heard = [s for s in self.store.order_statuses(provider.name, watch.kind, watch.order_id, since=job.created_at)
                 if is_settled(s, watch.kind)]
        if heard:
            self.store.watch_checked(job, status="settled", answer=f"{heard[0]}, as hookhub already knew")
        return bool(heard)

    def _watch_retry(self, job: VerificationJob) -> datetime:
        """When to ask again: with backoff."""
        retry_at = self.watch_policy.next_at(job.attempts)
        assert retry_at is not None
        return retry_at
