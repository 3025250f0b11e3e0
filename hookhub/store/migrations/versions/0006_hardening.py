"""Hardening: refused calls are marked and keep only the start of their body and headers, watches know the provider's id of
what they follow, and payment watches keep their checkout's return nonce.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_calls") as batch:
        batch.add_column(sa.Column("refused", sa.Boolean))
        batch.add_column(sa.Column("body_size", sa.Integer))
        batch.add_column(sa.Column("body_sha256", sa.String(64)))
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(sa.Column("provider_reference", sa.String(128)))
        batch.add_column(sa.Column("return_nonce", sa.String(64)))
        batch.add_column(sa.Column("nonce_used_at", sa.DateTime))
    op.create_index("ix_verifications_provider_reference", "verifications", ["provider", "provider_reference"])
    op.create_index("ix_verifications_return_nonce", "verifications", ["return_nonce"])
    # Watches already on record name the provider's id in their context; give it its column.
    conn = op.get_bind()
    v = sa.table("verifications", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                 sa.column("context", sa.Text), sa.column("provider_reference", sa.String))
    rows = conn.execute(sa.select(v.c.id, v.c.context).where(v.c.kind.in_(["payment", "payout"]))).all()
    for row in rows:
        reference = (json.loads(row.context or "{}") or {}).get("reference")
        if isinstance(reference, str) and reference:
            conn.execute(sa.update(v).where(v.c.id == row.id).values(provider_reference=reference[:128]))


def downgrade() -> None:
    op.drop_index("ix_verifications_return_nonce", "verifications")
    op.drop_index("ix_verifications_provider_reference", "verifications")
    with op.batch_alter_table("verifications") as batch:
        batch.drop_column("nonce_used_at")
        batch.drop_column("return_nonce")
        batch.drop_column("provider_reference")
    with op.batch_alter_table("inbound_calls") as batch:
        batch.drop_column("body_sha256")
        batch.drop_column("body_size")
        batch.drop_column("refused")
