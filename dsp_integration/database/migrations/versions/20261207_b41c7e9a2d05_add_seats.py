"""add seats: the entity's seat, and each seat's own window, queue and pause in the ledger

Revision ID: b41c7e9a2d05
Revises: 6a2f0d9c1b84
Create Date: 2026-12-07 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b41c7e9a2d05"
down_revision: str | None = "6a2f0d9c1b84"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEAT = sa.String(32)


def upgrade() -> None:
    op.add_column(
        "dsp_entity_queue",
        sa.Column("seat", SEAT, server_default="default", nullable=False),
    )
    op.add_column(
        "dsp_rate_ledger", sa.Column("seat", SEAT, server_default="default", nullable=False)
    )
    op.drop_index("ix_dsp_rate_ledger_granted_at", table_name="dsp_rate_ledger")
    op.create_index("ix_dsp_rate_ledger_seat_granted_at", "dsp_rate_ledger", ["seat", "granted_at"])
    op.add_column(
        "dsp_rate_waiter", sa.Column("seat", SEAT, server_default="default", nullable=False)
    )
    op.create_index("ix_dsp_rate_waiter_seat_id", "dsp_rate_waiter", ["seat", "id"])
    # A pause lasts seconds: the table is made again keyed by seat, not migrated.
    op.drop_table("dsp_rate_pause")
    op.create_table(
        "dsp_rate_pause",
        sa.Column("seat", SEAT, nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seat"),
    )


def downgrade() -> None:
    op.drop_table("dsp_rate_pause")
    op.create_table(
        "dsp_rate_pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.drop_index("ix_dsp_rate_waiter_seat_id", table_name="dsp_rate_waiter")
    op.drop_column("dsp_rate_waiter", "seat")
    op.drop_index("ix_dsp_rate_ledger_seat_granted_at", table_name="dsp_rate_ledger")
    op.create_index("ix_dsp_rate_ledger_granted_at", "dsp_rate_ledger", ["granted_at"])
    op.drop_column("dsp_rate_ledger", "seat")
    op.drop_column("dsp_entity_queue", "seat")
