"""Session facts: what documents and claims need from a session's samples, computed at sealing;
and an index on sessions (started_at, id) for listings paged by that key.

Sessions sealed before this revision get their facts on first use (session.facts.facts_for).

Revision ID: facts
Revises: cosign
Create Date: 2026-11-28 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "facts"
down_revision: str | None = "cosign"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_facts",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("seal_digest", sa.String(length=80), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("first_t", sa.Float(), nullable=True),
        sa.Column("last_t", sa.Float(), nullable=True),
        sa.Column("paused_s", sa.Float(), nullable=False),
        sa.Column("at_target_s", sa.Float(), nullable=False),
        sa.Column("tolerance_n", sa.Float(), nullable=True),
        sa.Column("peak_hold_n", sa.Float(), nullable=True),
        sa.Column("mean_hold_n", sa.Float(), nullable=True),
        sa.Column("cycles", sa.JSON(), nullable=False),
        sa.Column("occurrences", sa.JSON(), nullable=False),
        sa.Column("plot", sa.JSON(), nullable=False),
        sa.Column("seal_verified", sa.Boolean(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"]),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index("ix_sessions_started_at_id", "sessions", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_started_at_id", table_name="sessions")
    op.drop_table("session_facts")
