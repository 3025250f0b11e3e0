"""Accepted calls: a signed callback answered before its reconciliation keeps its verified state until then.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_calls") as batch:
        batch.add_column(sa.Column("accepted_state", sa.Text))
        batch.add_column(sa.Column("accepted_retry_at", sa.DateTime))
    # Only the few calls still waiting are indexed: the background work finds them at once in a store
    # of millions.
    op.create_index("ix_inbound_calls_accepted", "inbound_calls", ["id"],
                    sqlite_where=sa.text("accepted_state IS NOT NULL"),
                    postgresql_where=sa.text("accepted_state IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_inbound_calls_accepted", "inbound_calls")
    with op.batch_alter_table("inbound_calls") as batch:
        batch.drop_column("accepted_retry_at")
        batch.drop_column("accepted_state")
