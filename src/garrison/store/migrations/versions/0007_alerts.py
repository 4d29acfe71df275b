"""Alerts raised by the detection engine.

Revision ID: 0007_alerts
Revises: 0006_sensor_exclusions
"""
import sqlalchemy as sa
from alembic import op

import garrison.store.base

revision = "0007_alerts"
down_revision = "0006_sensor_exclusions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('classification', sa.String(length=40), nullable=True),
    sa.Column('determination', sa.String(length=40), nullable=True),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('detection_source', sa.String(length=40), nullable=False),
    sa.Column('detector_id', sa.String(length=64), nullable=False),
    sa.Column('mitre_techniques', sa.JSON(), nullable=False),
    sa.Column('assigned_to', sa.String(length=256), nullable=True),
    sa.Column('rule', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('comments', sa.JSON(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=64), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('first_event_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_event_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('alert_creation_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_update_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_time', garrison.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_alerts_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alerts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_dedupe', ['tenant_id', 'dedupe_key', 'last_event_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_alerts_tenant_created', ['tenant_id', 'alert_creation_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_table("alerts")
