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
        "status, event_id, mismatch, recorded_at) VALUES (:pk, :key, :kind, :provider_id, :amount, :currency, "
        ":occurred_at, 'booked', :event_id, :mismatch, :recorded_at)")
    for pk, events in by_transaction.items():
        totals = {"authorized": 0, "captured": 0, "refunded": 0}
        for event in events:
            key, kind = "", None
            if event.type in ("payment.approved", "payment.mismatch"):
                raw = json.loads(event.raw) if isinstance(event.raw, str) else event.raw or {}
                kind = "authorization" if isinstance(raw, dict) and raw.get("transaction_type") == "authorize" \
                    else "payment"
                key = "approval"
                totals["authorized"] += event.amount
                if kind == "payment":
                    totals["captured"] += event.amount
            elif event.type == "payment.refunded":
                kind, key = "refund", f"refund:{event.transaction_id}"
                totals["refunded"] += event.amount
            elif event.type == "payment.canceled":
                kind, key = "void", f"void:{event.transaction_id}"
            if kind is not None and event.amount > 0:
                conn.execute(insert, {"pk": pk, "key": key, "kind": kind, "provider_id": event.transaction_id,
                                      "amount": event.amount, "currency": event.currency,
                                      "occurred_at": event.occurred_at, "event_id": event.id,
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
        if 0 < totals["refunded"] < totals["captured"]:
            # Before ledgers any refund made a payment "refunded": a partial one never makes it look so.
            conn.execute(sa.text("UPDATE transactions SET status = 'approved' WHERE id = :pk AND status = 'refunded'"),
                         {"pk": pk})


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
