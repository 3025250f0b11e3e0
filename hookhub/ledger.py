"""A payment's ledger: which movements a provider's answer adds, and which events that makes.

Pure decisions, no database: ``plan`` takes what the store holds of one payment (``Ledger``) and a
fetched ``TransactionState``, and says what to record. The store applies the plan under the
payment's lock (``hookhub.store.Locked.apply``); the rules themselves live in ``hookhub.states``.

A movement is booked (it has its event, and counts in the totals) only when it fits what is booked
before it: a capture within what was authorized, a refund within what was captured, in the
payment's currency. One that does not fit yet is held, with the reason, and booked as soon as it
fits: a refund notified before its payment's approval waits for the approval. So the same set of
notifications, in any order and repeated any number of times, books the same movements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .states import APPROVALS, MOVEMENT_KINDS, STATUS_ONLY, Movement, TransactionState, is_transition, movement_event_type

APPROVAL_KEY = "approval"  # a payment has one approval, whatever id each source gives it


VOID_KEY = "void"  # an authorization is released once
SETTLEMENT_KEY = "capture:settlement"  # an approval first seen as an authorization, later as paid in one step


def movement_key(movement: Movement) -> str:
    """What identifies a movement within its payment: its kind and the provider's id of it."""
    if movement.kind in APPROVALS:
        return APPROVAL_KEY
    return VOID_KEY if movement.kind == "void" else f"{movement.kind}:{movement.id}"


@dataclasses.dataclass(frozen=True)
class Totals:
    authorized: int = 0
    captured: int = 0
    refunded: int = 0

    def after(self, movement: Movement) -> Totals:
        if movement.kind == "authorization":
            return dataclasses.replace(self, authorized=self.authorized + movement.amount)
        if movement.kind == "payment":
            return dataclasses.replace(self, authorized=self.authorized + movement.amount,
                                       captured=self.captured + movement.amount)
        if movement.kind == "capture":
            return dataclasses.replace(self, captured=self.captured + movement.amount)
        if movement.kind == "refund":
            return dataclasses.replace(self, refunded=self.refunded + movement.amount)
        return self  # a void changes the payment's status, not what moved

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A movement the store holds for a payment: booked, or held until it fits."""

    key: str
    movement: Movement
    booked: bool
    note: str | None = None
    pk: int | None = None  # its row, once stored
    mismatch: bool = False  # an approval booked as payment.mismatch


@dataclasses.dataclass(frozen=True)
class Ledger:
    """What the store holds of one payment (or payout) before an answer is applied."""

    status: str | None = None
    currency: str | None = None
    totals: Totals = Totals()
    movements: tuple[Recorded, ...] = ()

    @property
    def approval(self) -> Recorded | None:
        return next((r for r in self.movements if r.key == APPROVAL_KEY and r.booked), None)


@dataclasses.dataclass(frozen=True)
class PlannedEvent:
    type: str
    amount: int
    transaction_id: str
    totals: dict[str, int]
    movement_key: str = ""  # empty for a status event
    occurred_at: datetime | None = None
    expected: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What applying an answer records: new movements, held ones now booked, events, and the status."""

    status: str
    totals: Totals
    currency: str
    new: tuple[Recorded, ...] = ()  # movements not stored before (booked or held)
    released: tuple[Recorded, ...] = ()  # held movements that are booked now
    events: tuple[PlannedEvent, ...] = ()
    stale: bool = False  # the answer's status is behind what is known

    @property
    def outcome(self) -> str:
        """What became of the answer: event; held (recorded, waiting to fit); stale; or duplicate."""
        if self.events:
            return "event"
        if self.new:
            return "held"
        return "stale" if self.stale else "duplicate"


def movements_of(state: TransactionState, *, approved: bool = False) -> tuple[Movement, ...]:
    """The movements a payment's state shows; a plugin that lists none says what the whole payment is.

    ``approved`` says whether the payment's approval is already booked: a refund or cancel of a
    payment never seen approved implies its approval too, while a cancel of one never approved is
    the buyer giving up, a status and no movement.
    """
    if state.movements or state.kind != "payment":
        return state.movements
    whole = {"approved": ("payment",), "mismatch": ("payment",), "refunded": ("payment", "refund"),
             "canceled": ("void",) if approved else ()}.get(state.status, ())
    return tuple(Movement(kind, state.amount, id=state.transaction_id, occurred_at=state.occurred_at)
                 for kind in whole if not (approved and kind == "payment") and (kind == "payment" or state.amount))


def _status_only(ledger: Ledger, state: TransactionState) -> bool:
    """Whether ``state`` is a status of the payment rather than a movement of its money."""
    if state.status == "canceled":
        return ledger.approval is None and not any(m.kind == "void" for m in state.movements)
    return state.status in STATUS_ONLY


def approval_of(state: TransactionState) -> Movement | None:
    """The approval (authorization or one-step payment) a payment's state shows, if any."""
    return next((m for m in movements_of(state) if m.kind in APPROVALS), None)


def plan(ledger: Ledger, state: TransactionState, *, expected: dict[str, Any] | None = None) -> Plan:
    """What ``state`` adds to ``ledger``. ``expected`` is set when the shop expected another approval."""
    if state.kind != "payment":
        return _plan_payout(ledger, state)
    currency = ledger.currency or state.currency
    events: list[PlannedEvent] = []
    status = ledger.status
    if _status_only(ledger, state) and ledger.approval is None and is_transition(status, state.status):
        status = state.status
        events.append(PlannedEvent(f"payment.{status}", state.amount, state.transaction_id, ledger.totals.as_dict(),
                                   occurred_at=state.occurred_at))
    known = {r.key for r in ledger.movements}
    new: list[Recorded] = []
    for movement in movements_of(state, approved=ledger.approval is not None):
        key = movement_key(movement)
        settles = _settlement(ledger, movement)
        if settles is not None and SETTLEMENT_KEY not in known:
            known.add(SETTLEMENT_KEY)
            new.append(Recorded(SETTLEMENT_KEY, settles, booked=False))
        if key not in known:
            known.add(key)
            new.append(Recorded(key, movement, booked=False))
    totals, booked, released, new = _book(ledger, new, currency, state, expected, events)
    status = _status(ledger, booked, totals, status)
    stale = state.status != ledger.status and not is_transition(ledger.status, state.status) and \
        _status_only(ledger, state)
    # Until its approval is booked a payment is what its status answers said: held movements earn nothing.
    return Plan(status=status or "pending", totals=totals, currency=currency, new=tuple(new),
                released=tuple(released), events=tuple(events), stale=stale)


def _book(ledger: Ledger, new: list[Recorded], currency: str, state: TransactionState,
          expected: dict[str, Any] | None, events: list[PlannedEvent]) -> tuple[Totals, list[Recorded], list[Recorded], list[Recorded]]:
    """Book every waiting movement that fits, again and again until none does; note why others wait."""
    totals = ledger.totals
    booked = [r for r in ledger.movements if r.booked]
    waiting = [r for r in ledger.movements if not r.booked] + new
    released: list[Recorded] = []
    progress = True
    while progress:
        progress = False
        for recorded in sorted(waiting, key=_booking_order):
            why = _why_not(recorded.movement, totals, booked, currency, state.currency)
            if why is not None:
                continue
            mismatch = recorded.key == APPROVAL_KEY and expected is not None
            done = dataclasses.replace(recorded, booked=True, note=None, mismatch=mismatch)
            totals = totals.after(recorded.movement)
            booked.append(done)
            waiting.remove(recorded)
            movement = recorded.movement
            events.append(PlannedEvent(
                movement_event_type(movement.kind, mismatch=mismatch), movement.amount,
                movement.id or state.transaction_id, totals.as_dict(), movement_key=recorded.key,
                occurred_at=movement.occurred_at or state.occurred_at, expected=expected if mismatch else None))
            if recorded.pk is not None:
                released.append(done)
            else:
                new[new.index(recorded)] = done
            progress = True
            break  # the totals changed: look at every waiting movement again, in order
    for recorded in waiting:
        note = _why_not(recorded.movement, totals, booked, currency, state.currency)
        if recorded.pk is None:
            new[new.index(recorded)] = dataclasses.replace(recorded, note=note)
    return totals, booked, released, new


def _settlement(ledger: Ledger, movement: Movement) -> Movement | None:
    """The capture a one-step payment implies when its approval was booked as an authorization (a
    source that could not tell them apart came first): what was paid beyond what was captured."""
    approval = ledger.approval
    if movement.kind != "payment" or approval is None or approval.movement.kind != "authorization":
        return None
    rest = min(movement.amount, ledger.totals.authorized) - ledger.totals.captured
    if rest <= 0:
        return None
    return Movement("capture", rest, id=movement.id or "settlement", currency=movement.currency,
                    occurred_at=movement.occurred_at)


def _booking_order(recorded: Recorded) -> tuple[int, str, str]:
    when = recorded.movement.occurred_at.isoformat() if recorded.movement.occurred_at else ""
    return (MOVEMENT_KINDS.index(recorded.movement.kind) if recorded.key != APPROVAL_KEY else -1, when, recorded.key)


def _why_not(movement: Movement, totals: Totals, booked: Iterable[Recorded], currency: str,
             state_currency: str) -> str | None:
    """Why ``movement`` cannot be booked on top of ``booked`` now, or None when it fits."""
    if (movement.currency or state_currency) != currency:
        return f"in {movement.currency or state_currency}, the payment is in {currency}"
    approval = next((r for r in booked if r.key == APPROVAL_KEY), None)
    if movement.kind in APPROVALS:
        return None if approval is None else "the payment is already approved"
    if approval is None:
        return "no approval of the payment is known yet"
    if movement.kind == "capture":
        if approval.movement.kind != "authorization":
            return "the payment was paid in one step: there is nothing to capture"
        if any(r.movement.kind == "void" for r in booked):
            return "the authorization was voided"
        if totals.captured + movement.amount > totals.authorized:
            return f"captures would exceed the {totals.authorized} authorized"
    if movement.kind == "refund" and totals.refunded + movement.amount > totals.captured:
        return f"refunds would exceed the {totals.captured} captured"
    return None


def _status(ledger: Ledger, booked: list[Recorded], totals: Totals, status: str | None) -> str | None:
    """The payment's status from what is booked: its movements decide, else its status-only answers."""
    approval = next((r for r in booked if r.key == APPROVAL_KEY), None)
    if any(r.movement.kind == "void" for r in booked):
        return "canceled"
    if approval is None:
        return status
    if totals.captured and totals.refunded >= totals.captured:
        return "refunded"  # fully refunded: a partial refund never makes it look so
    return "mismatch" if approval.mismatch else "approved"


def _plan_payout(ledger: Ledger, state: TransactionState) -> Plan:
    currency = ledger.currency or state.currency
    if not is_transition(ledger.status, state.status, "payout"):
        return Plan(status=ledger.status or state.status, totals=ledger.totals, currency=currency,
                    stale=state.status != ledger.status)
    paid = {"paid": state.amount if state.status == "succeeded" else 0}
    event = PlannedEvent(f"payout.{state.status}", state.amount, state.transaction_id, paid,
                         occurred_at=state.occurred_at)
    return Plan(status=state.status, totals=ledger.totals, currency=currency, events=(event,))
