"""Plans of care: each patient's dose and per-session progression, every version kept.

Revision ID: plans
Revises: audit
Create Date: 2026-11-28 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "plans"
down_revision: str | None = "audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_versions",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("dose", sa.JSON(), nullable=False),
        sa.Column("step_n", sa.Float(), nullable=True),
        sa.Column("goal_n", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("patient_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("plan_versions")
