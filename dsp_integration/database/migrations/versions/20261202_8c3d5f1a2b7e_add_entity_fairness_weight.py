"""add entity fairness weight

Revision ID: 8c3d5f1a2b7e
Revises: 5b1e7c2a9d41
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c3d5f1a2b7e"
down_revision: str | None = "5b1e7c2a9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "dsp_entity_queue",
        sa.Column("fairness_weight", sa.Float(), server_default="1.0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("dsp_entity_queue", "fairness_weight")
