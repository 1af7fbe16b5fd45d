"""Lockouts: tables locked by a lock-severity trip, and who acknowledged them and why.

Revision ID: lockouts
Revises: leases
Create Date: 2026-11-28 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "lockouts"
down_revision: str | None = "leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "table_lockouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workstation", sa.String(length=128), nullable=False),
        sa.Column("table_name", sa.String(length=512), nullable=False),
        sa.Column("table_url", sa.String(length=512), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("fault", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("table_lockouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_table_lockouts_workstation"), ["workstation"])
        batch_op.create_index(batch_op.f("ix_table_lockouts_table_name"), ["table_name"])
        batch_op.create_index(batch_op.f("ix_table_lockouts_device_serial"), ["device_serial"])
        batch_op.create_index(batch_op.f("ix_table_lockouts_acknowledged_at"), ["acknowledged_at"])

    op.create_table(
        "lockout_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lockout_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=200), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["lockout_id"], ["table_lockouts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lockout_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lockout_events_lockout_id"), ["lockout_id"])


def downgrade() -> None:
    with op.batch_alter_table("lockout_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lockout_events_lockout_id"))
    op.drop_table("lockout_events")
    with op.batch_alter_table("table_lockouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_table_lockouts_acknowledged_at"))
        batch_op.drop_index(batch_op.f("ix_table_lockouts_device_serial"))
        batch_op.drop_index(batch_op.f("ix_table_lockouts_table_name"))
        batch_op.drop_index(batch_op.f("ix_table_lockouts_workstation"))
    op.drop_table("table_lockouts")
