"""add entity priority

Revision ID: 5b1e7c2a9d41
Revises: 0fe89d6d6ee0
Create Date: 2026-12-01 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e7c2a9d41"
down_revision: str | None = "0fe89d6d6ee0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "dsp_entity_queue",
        sa.Column("priority", sa.String(length=8), server_default="normal", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("dsp_entity_queue", "priority")
