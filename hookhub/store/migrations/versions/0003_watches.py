"""Watches: what a shop created through hookhub is checked with the provider like a deferred re-check.

Re-checks and watches are one kind of background work (the ``verifications`` table, claimed the
same way); ``kind`` tells them apart, and a watch's identity is its order id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="recheck"))
        batch.add_column(sa.Column("order_id", sa.String(128)))
        batch.add_column(sa.Column("amount", sa.BigInteger))
        batch.add_column(sa.Column("currency", sa.String(3)))
        batch.add_column(sa.Column("deadline", sa.DateTime))
        batch.add_column(sa.Column("checked_at", sa.DateTime))
        batch.add_column(sa.Column("last_answer", sa.Text))
        batch.drop_constraint("uq_verifications_provider_reference", type_="unique")
        batch.create_unique_constraint("uq_verifications_provider_kind_reference", ["provider", "kind", "reference"])
    # A watch that comes due first looks whether a callback already settled its order.
    op.create_index("ix_transactions_provider_order", "transactions", ["provider", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_transactions_provider_order", table_name="transactions")
    op.execute("DELETE FROM verifications WHERE kind <> 'recheck'")
    with op.batch_alter_table("verifications") as batch:
        batch.drop_constraint("uq_verifications_provider_kind_reference", type_="unique")
        batch.create_unique_constraint("uq_verifications_provider_reference", ["provider", "reference"])
        for column in ("last_answer", "checked_at", "deadline", "currency", "amount", "order_id", "kind"):
            batch.drop_column(column)
