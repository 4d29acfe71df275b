"""Incidents: related alerts grouped; alerts.incident_id.

Revision ID: 0008_incidents
Revises: 0007_alerts
"""
import sqlalchemy as sa
from alembic import op

import garrison.store.base

revision = "0008_incidents"
down_revision = "0007_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('assigned_to', sa.String(length=256), nullable=True),
    sa.Column('classification', sa.String(length=40), nullable=True),
    sa.Column('determination', sa.String(length=40), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('comments', sa.JSON(), nullable=False),
    sa.Column('created_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_update_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_activity', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_activity', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_incidents_device_id_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_incidents_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_tenant_device_activity', ['tenant_id', 'device_id', 'last_activity'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_alerts_incident_id'), ['incident_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_alerts_incident_id_incidents'), 'incidents', ['incident_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_incident_id_incidents"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_alerts_incident_id"))
        batch_op.drop_column("incident_id")
    op.drop_table("incidents")
