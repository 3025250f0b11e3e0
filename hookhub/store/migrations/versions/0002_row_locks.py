"""Row locks for the per-transaction lock, and at most one event per status per transaction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transaction_locks",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
    )
    # Every transaction already stored gets its lock row now, so no process ever has to create one
    # for a transaction that another process is reconciling.
    locks = sa.table("transaction_locks", sa.column("provider"), sa.column("key"))
    stored = sa.table("transactions", sa.column("provider"), sa.column("key"))
    op.execute(locks.insert().from_select(["provider", "key"], sa.select(stored.c.provider, stored.c.key)))

    doubles = op.get_bind().execute(sa.text(
        "SELECT transaction_pk, type, COUNT(*) FROM events GROUP BY transaction_pk, type HAVING COUNT(*) > 1"
    )).all()
    if doubles:
        # Never delete events here: handlers may have acted on them. The operator decides.
        raise RuntimeError(
            "cannot add the one-event-per-status constraint: these (transaction row, event type) pairs "
            f"have more than one event: {[(pk, kind) for pk, kind, _ in doubles[:20]]}"
        )
    op.create_index("uq_events_transaction_type", "events", ["transaction_pk", "type"], unique=True)
    op.drop_index("ix_events_transaction_pk", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_transaction_pk", "events", ["transaction_pk"])
    op.drop_index("uq_events_transaction_type", table_name="events")
    op.drop_table("transaction_locks")
