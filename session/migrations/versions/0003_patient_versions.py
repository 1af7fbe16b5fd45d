"""Patients as records: precautions apart from contraindications, and every version kept.

Revision ID: patients
Revises: 0002
Create Date: 2026-11-28 09:20:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "patients"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("precautions", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    op.create_table(
        "patient_versions",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("patient_id", "version"),
    )
    # Patients registered before versions existed get their facts as they stand as version 1.
    conn = op.get_bind()
    patients = sa.table(
        "patients",
        sa.column("id", sa.Integer()),
        sa.column("body_weight_kg", sa.Float()),
        sa.column("sex", sa.String()),
        sa.column("contraindications", sa.JSON()),
        sa.column("payer_id", sa.String()),
    )
    versions = sa.table(
        "patient_versions",
        sa.column("patient_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("by", sa.String()),
        sa.column("why", sa.Text()),
        sa.column("facts", sa.JSON()),
    )
    now = datetime.now(UTC)
    rows = [
        {
            "patient_id": row.id,
            "version": 1,
            "at": now,
            "by": "migration",
            "why": "facts as registered before versions were kept",
            "facts": {
                "body_weight_kg": row.body_weight_kg,
                "sex": row.sex,
                "contraindications": list(row.contraindications or []),
                "precautions": [],
                "payer_id": row.payer_id,
            },
        }
        for row in conn.execute(sa.select(patients))
    ]
    if rows:
        conn.execute(sa.insert(versions), rows)


def downgrade() -> None:
    op.drop_table("patient_versions")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("precautions")
