"""Assistants' notes co-signed by their supervising therapist: a second, distinct signature.

Revision ID: cosign
Revises: claims
Create Date: 2026-11-28 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cosign"
down_revision: str | None = "claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cosigned_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            "fk_sessions_cosigned_by_id_clinicians", "clinicians", ["cosigned_by_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_sessions_cosigned_by_id_clinicians", type_="foreignkey")
        batch_op.drop_column("cosigned_at")
        batch_op.drop_column("cosigned_by_id")
