"""The store as hookhub 0.1 created it, before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("query_string", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("reference", sa.String(128)),
        sa.Column("event_id", sa.String(40)),
    )
    op.create_index("ix_inbound_calls_received_at", "inbound_calls", ["received_at"])
    op.create_index("ix_inbound_calls_provider_reference", "inbound_calls", ["provider", "reference"])

    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("last_event_id", sa.String(40)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("provider", "key", name="uq_transactions_provider_key"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("transaction_pk", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("expected", sa.Text),
        sa.Column("inbound_call_id", sa.Integer),
    )
    op.create_index("ix_events_transaction_pk", "events", ["transaction_pk"])
    op.create_index("ix_events_received_at", "events", ["received_at"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("handler", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("lease_owner", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("event_id", "handler", name="uq_deliveries_event_handler"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])

    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("inbound_call_id", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("lease_owner", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("provider", "reference", name="uq_verifications_provider_reference"),
    )
    op.create_index("ix_verifications_due", "verifications", ["status", "next_attempt_at"])

    op.create_table(
        "provider_memos",
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("provider", "key", name="uq_provider_memos_provider_key"),
    )


def downgrade() -> None:
    for table in ("provider_memos", "verifications", "deliveries", "events", "transactions", "inbound_calls"):
        op.drop_table(table)
