"""add rate waiter

Revision ID: 3e9a7c41d2b6
Revises: 8c3d5f1a2b7e
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3e9a7c41d2b6"
down_revision: str | None = "8c3d5f1a2b7e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dsp_rate_waiter",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("dsp_rate_waiter")
