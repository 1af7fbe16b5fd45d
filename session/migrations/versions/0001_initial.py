"""Initial schema: patients, clinicians, sessions, samples, events, amendments.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 02:41:59.948034
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clinicians',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('credentials', sa.String(length=64), nullable=False),
    sa.Column('discipline', sa.String(length=8), nullable=False),
    sa.Column('npi', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('npi')
    )
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('body_weight_kg', sa.Float(), nullable=False),
    sa.Column('sex', sa.String(length=16), nullable=False),
    sa.Column('contraindications', sa.JSON(), nullable=False),
    sa.Column('payer_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_reference'), ['reference'], unique=True)

    op.create_table('sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('treating_clinician_id', sa.Integer(), nullable=False),
    sa.Column('supervising_clinician_id', sa.Integer(), nullable=True),
    sa.Column('workstation', sa.String(length=128), nullable=False),
    sa.Column('table_label', sa.String(length=256), nullable=False),
    sa.Column('device_manufacturer', sa.String(length=128), nullable=False),
    sa.Column('device_model', sa.String(length=128), nullable=False),
    sa.Column('device_serial', sa.String(length=128), nullable=False),
    sa.Column('device_firmware', sa.String(length=64), nullable=False),
    sa.Column('device_rated_max_force_n', sa.Float(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('start_t', sa.Float(), nullable=False),
    sa.Column('diagnosis_codes', sa.JSON(), nullable=False),
    sa.Column('medical_necessity', sa.Text(), nullable=True),
    sa.Column('plan_of_care_ref', sa.String(length=128), nullable=True),
    sa.Column('patient_position', sa.String(length=64), nullable=True),
    sa.Column('pull_angle_deg', sa.Float(), nullable=True),
    sa.Column('patient_response', sa.Text(), nullable=True),
    sa.Column('signed_by_id', sa.Integer(), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('abn_status', sa.String(length=32), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('outcome_reason', sa.Text(), nullable=True),
    sa.Column('last_sample_t', sa.Float(), nullable=True),
    sa.Column('sample_count', sa.Integer(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('seal_digest', sa.String(length=80), nullable=True),
    sa.Column('seal_parts', sa.JSON(), nullable=True),
    sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['signed_by_id'], ['clinicians.id'], ),
    sa.ForeignKeyConstraint(['supervising_clinician_id'], ['clinicians.id'], ),
    sa.ForeignKeyConstraint(['treating_clinician_id'], ['clinicians.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_supervising_clinician_id'), ['supervising_clinician_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_treating_clinician_id'), ['treating_clinician_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sessions_workstation'), ['workstation'], unique=False)

    op.create_table('amendments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('field_name', sa.String(length=64), nullable=False),
    sa.Column('old_value', sa.JSON(), nullable=False),
    sa.Column('new_value', sa.JSON(), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('amendments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_amendments_session_id'), ['session_id'], unique=False)

    op.create_table('events',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('session_id', 'seq')
    )
    op.create_table('samples',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('target_n', sa.Float(), nullable=False),
    sa.Column('measured_n', sa.Float(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('session_id', 'seq')
    )


def downgrade() -> None:
    op.drop_table('samples')
    op.drop_table('events')
    with op.batch_alter_table('amendments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_amendments_session_id'))

    op.drop_table('amendments')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_workstation'))
        batch_op.drop_index(batch_op.f('ix_sessions_treating_clinician_id'))
        batch_op.drop_index(batch_op.f('ix_sessions_supervising_clinician_id'))
        batch_op.drop_index(batch_op.f('ix_sessions_started_at'))
        batch_op.drop_index(batch_op.f('ix_sessions_patient_id'))
        batch_op.drop_index(batch_op.f('ix_sessions_outcome'))

    op.drop_table('sessions')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_reference'))

    op.drop_table('patients')
    op.drop_table('clinicians')
