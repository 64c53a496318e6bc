"""create queue audit and rate tables

Revision ID: 0fe89d6d6ee0
Revises:
Create Date: 2026-11-29 03:53:11.026071
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0fe89d6d6ee0"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dsp_entity_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("entity_key", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("request_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=True),
        sa.Column("activity_id", sa.String(length=255), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_dsp_entity_audit_entity_key"), "dsp_entity_audit", ["entity_key"], unique=False
    )
    op.create_table(
        "dsp_entity_queue",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("batch", sa.String(length=128), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("payload_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "depends_on",
            postgresql.ARRAY(sa.String(length=128)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dsp_id", sa.String(length=255), nullable=True),
        sa.Column("dsp_status", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("blocked_by", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_dsp_entity_queue_batch"), "dsp_entity_queue", ["batch"], unique=False)
    op.create_index(
        op.f("ix_dsp_entity_queue_blocked_by"), "dsp_entity_queue", ["blocked_by"], unique=False
    )
    op.create_index(
        "ix_dsp_entity_queue_depends_on",
        "dsp_entity_queue",
        ["depends_on"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        op.f("ix_dsp_entity_queue_status"), "dsp_entity_queue", ["status"], unique=False
    )
    op.create_table(
        "dsp_rate_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_dsp_rate_ledger_granted_at"), "dsp_rate_ledger", ["granted_at"], unique=False
    )
    op.create_table(
        "dsp_rate_pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("dsp_rate_pause")
    op.drop_index(op.f("ix_dsp_rate_ledger_granted_at"), table_name="dsp_rate_ledger")
    op.drop_table("dsp_rate_ledger")
    op.drop_index(op.f("ix_dsp_entity_queue_status"), table_name="dsp_entity_queue")
    op.drop_index(
        "ix_dsp_entity_queue_depends_on", table_name="dsp_entity_queue", postgresql_using="gin"
    )
    op.drop_index(op.f("ix_dsp_entity_queue_blocked_by"), table_name="dsp_entity_queue")
    op.drop_index(op.f("ix_dsp_entity_queue_batch"), table_name="dsp_entity_queue")
    op.drop_table("dsp_entity_queue")
    op.drop_index(op.f("ix_dsp_entity_audit_entity_key"), table_name="dsp_entity_audit")
    op.drop_table("dsp_entity_audit")
