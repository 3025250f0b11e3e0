"""Heartbeats: which process holds which claimed work, and whether it still lives.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("owner", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("beat_at", sa.DateTime, nullable=False),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(32)))
        batch.add_column(sa.Column("started_at", sa.DateTime))
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("verifications") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("started_at")
        batch.drop_column("claimed_by")
    op.drop_table("workers")
