"""Custom indicators of compromise.

Revision ID: 0009_indicators
Revises: 0008_incidents
"""
import sqlalchemy as sa
from alembic import op

import garrison.store.base

revision = "0009_indicators"
down_revision = "0008_incidents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('indicators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('indicator_value', sa.String(length=1024), nullable=False),
    sa.Column('indicator_type', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('recommended_actions', sa.Text(), nullable=False),
    sa.Column('expiration_time', garrison.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('generate_alert', sa.Boolean(), nullable=False),
    sa.Column('rbac_group_ids', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('creation_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_update_time', garrison.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_indicators_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_indicators')),
    sa.UniqueConstraint('tenant_id', 'indicator_type', 'indicator_value', name=op.f('uq_indicators_tenant_id'))
    )
    with op.batch_alter_table('indicators', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_indicators_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_table("indicators")
