"""Sensor exclusions set from the server (per tenant, optionally per device group).

Revision ID: 0006_sensor_exclusions
Revises: 0005_wire_column_sizes
"""
import sqlalchemy as sa
from alembic import op

import garrison.store.base

revision = "0006_sensor_exclusions"
down_revision = "0005_wire_column_sizes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_exclusion_settings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("exclusions", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", garrison.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["device_groups.id"],
                                name=op.f("fk_sensor_exclusion_settings_group_id_device_groups"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_sensor_exclusion_settings_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_exclusion_settings")),
    )
    with op.batch_alter_table("sensor_exclusion_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sensor_exclusion_settings_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sensor_exclusion_settings_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("sensor_exclusion_settings")
