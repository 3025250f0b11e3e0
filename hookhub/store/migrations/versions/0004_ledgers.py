"""Ledgers: each payment's money movements, booked once each, and the totals they add up to.

Existing transactions and events become ledgers with every event id kept: an approval (or mismatch)
is the payment's approval movement (an authorization where Monri said ``authorize``, else paid in
one step), a refund or cancel event the movement its transaction id names; each event gets the
payment's totals after it, replayed in the order the events were received.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import json
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        for column in ("authorized", "captured", "refunded"):
            batch.add_column(sa.Column(column, sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("movement_key", sa.String(160), nullable=False, server_default=""))
        batch.add_column(sa.Column("totals", sa.Text))
    op.create_table(
        "movements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transaction_pk", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("movement_key", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(128)),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("occurred_at", sa.DateTime),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("event_id", sa.String(40)),
        sa.Column("mismatch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("transaction_pk", "movement_key", name="uq_movements_transaction_key"),
    )
    _ledgers_from_events(op.get_bind())
    op.drop_index("uq_events_transaction_type", table_name="events")
    op.create_index("uq_events_transaction_type_movement", "events", ["transaction_pk", "type", "movement_key"],
                    unique=True)


# Monext session transactions that are an authorization; any other payment type is paid in one step.
_MONEXT_AUTHORIZATIONS = {"AUTHORIZATION", "REAUTHORIZATION"}


def _approval_kind(raw: object, refunded_later: bool) -> str:
    """Whether an old approval was an authorization or paid in one step, from what its raw answer says."""
    if isinstance(raw, dict):
        if raw.get("transaction_type") in ("authorize", "purchase"):  # Monri
            return "authorization" if raw["transaction_type"] == "authorize" else "payment"
        transactions = [t for t in raw.get("transactions") or [] if isinstance(t, dict)]  # a Monext session
        if transactions:
            kinds = {t.get("type") for t in transactions}
            return "authorization" if kinds & _MONEXT_AUTHORIZATIONS and not kinds - _MONEXT_AUTHORIZATIONS - {
                "CAPTURE", "REFUND", "CREDIT", "CANCEL"} else "payment"
        if isinstance(raw.get("payment"), dict):  # MonCash: always one step
            return "payment"
    # Unknown: a refund proves the money was taken; otherwise it counts as authorized only, and a
    # later word that it was paid in one step books the capture.
    return "payment" if refunded_later else "authorization"


def _ledgers_from_events(conn: sa.Connection) -> None:
    rows = conn.execute(sa.text(
        "SELECT e.id, e.transaction_pk, e.type, e.transaction_id, e.amount, e.currency, e.occurred_at, "
        "e.received_at, e.raw, t.kind FROM events e JOIN transactions t ON t.id = e.transaction_pk "
        "ORDER BY e.transaction_pk, e.received_at, e.id")).all()
    by_transaction = defaultdict(list)
    for row in rows:
        by_transaction[row.transaction_pk].append(row)
    insert = sa.text(
        "INSERT INTO movements (transaction_pk, movement_key, kind, provider_id, amount, currency, occurred_at, "
        "status, note, event_id, mismatch, recorded_at) VALUES (:pk, :key, :kind, :provider_id, :amount, :currency, "
        ":occurred_at, :status, :note, :event_id, :mismatch, :recorded_at)")
    for pk, events in by_transaction.items():
        totals = {"authorized": 0, "captured": 0, "refunded": 0}
        approval, voided, status = None, False, None
        refunded_later = any(e.type == "payment.refunded" for e in events)
        for event in events:
            key, kind, booked, note = "", None, True, None
            if event.type in ("payment.approved", "payment.mismatch") and approval is None:
                raw = json.loads(event.raw) if isinstance(event.raw, str) else event.raw
                kind, key, approval = _approval_kind(raw, refunded_later), "approval", event.type
                totals["authorized"] += event.amount
                if kind == "payment":
                    totals["captured"] += event.amount
            elif event.type == "payment.refunded":
                kind, key = "refund", f"refund:{event.transaction_id}"
                booked = approval is not None and totals["refunded"] + event.amount <= totals["captured"]
                if booked:
                    totals["refunded"] += event.amount
                else:
                    note = "refunds would exceed what was captured"
            elif event.type == "payment.canceled" and approval is not None:
                kind, key, voided = "void", "void", True
            elif event.kind == "payment" and approval is None:
                status = event.type.split(".", 1)[1]  # a status of the payment: pending, declined, canceled...
            if kind is not None and (event.amount > 0 or key == "approval"):
                conn.execute(insert, {"pk": pk, "key": key, "kind": kind, "provider_id": event.transaction_id,
                                      "amount": event.amount, "currency": event.currency,
                                      "occurred_at": event.occurred_at, "status": "booked" if booked else "held",
                                      "note": note, "event_id": event.id if booked else None,
                                      "mismatch": int(event.type == "payment.mismatch"),
                                      "recorded_at": event.received_at})
            if event.kind == "payout":
                after = {"paid": event.amount if event.type == "payout.succeeded" else 0}
            else:
                after = dict(totals)
            conn.execute(sa.text("UPDATE events SET movement_key = :key, totals = :totals WHERE id = :id"),
                         {"key": key, "totals": json.dumps(after, sort_keys=True), "id": event.id})
        conn.execute(sa.text("UPDATE transactions SET authorized = :authorized, captured = :captured, "
                             "refunded = :refunded WHERE id = :pk"), {**totals, "pk": pk})
        if events[0].kind == "payment":
            # The status as the ledger derives it (hookhub.ledger._status): a partial refund never
            # makes a payment look refunded.
            if voided:
                status = "canceled"
            elif approval is not None:
                refunded = totals["captured"] and totals["refunded"] >= totals["captured"]
                status = "refunded" if refunded else "mismatch" if approval == "payment.mismatch" else "approved"
            if status:
                conn.execute(sa.text("UPDATE transactions SET status = :status WHERE id = :pk"),
                             {"status": status, "pk": pk})


def downgrade() -> None:
    doubles = op.get_bind().execute(sa.text(
        "SELECT transaction_pk, type FROM events GROUP BY transaction_pk, type HAVING COUNT(*) > 1")).all()
    if doubles:
        # Never delete events here: handlers acted on them. Partial refunds and captures need this revision.
        raise RuntimeError(f"cannot downgrade: these payments have several events of one type: {doubles[:20]}")
    op.drop_index("uq_events_transaction_type_movement", table_name="events")
    op.create_index("uq_events_transaction_type", "events", ["transaction_pk", "type"], unique=True)
    op.drop_table("movements")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("totals")
        batch.drop_column("movement_key")
    with op.batch_alter_table("transactions") as batch:
        for column in ("refunded", "captured", "authorized"):
            batch.drop_column(column)
