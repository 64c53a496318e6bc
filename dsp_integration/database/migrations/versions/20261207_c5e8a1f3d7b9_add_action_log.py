"""add the action log: who did what, when, from where, and whether it was accepted

Revision ID: c5e8a1f3d7b9
Revises: f085889d813a
Create Date: 2026-12-07 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c5e8a1f3d7b9"
down_revision: str | None = "f085889d813a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dsp_action_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("actor_name", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("os_user", sa.String(128), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("batch", sa.String(128), nullable=True),
        sa.Column("entity_key", sa.String(128), nullable=True),
        sa.Column("account", sa.String(128), nullable=True),
        sa.Column("old_version", sa.Integer(), nullable=True),
        sa.Column("new_version", sa.Integer(), nullable=True),
        sa.Column("old_level", sa.String(8), nullable=True),
        sa.Column("new_level", sa.String(8), nullable=True),
        sa.Column("old_weight", sa.Float(), nullable=True),
        sa.Column("new_weight", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dsp_action_log_entity_key_id", "dsp_action_log", ["entity_key", "id"])
    op.create_index("ix_dsp_action_log_batch_id", "dsp_action_log", ["batch", "id"])
    op.create_index("ix_dsp_action_log_actor_name_id", "dsp_action_log", ["actor_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_dsp_action_log_actor_name_id", table_name="dsp_action_log")
    op.drop_index("ix_dsp_action_log_batch_id", table_name="dsp_action_log")
    op.drop_index("ix_dsp_action_log_entity_key_id", table_name="dsp_action_log")
    op.drop_table("dsp_action_log")
