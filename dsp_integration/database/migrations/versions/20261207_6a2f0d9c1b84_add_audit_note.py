"""add audit note

Revision ID: 6a2f0d9c1b84
Revises: 3e9a7c41d2b6
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a2f0d9c1b84"
down_revision: str | None = "3e9a7c41d2b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dsp_entity_audit", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("dsp_entity_audit", "note")
