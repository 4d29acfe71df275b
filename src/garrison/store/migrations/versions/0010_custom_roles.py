"""Custom roles: a tenant's own named sets of permissions (garrison.core.permissions).

Revision ID: 0010_custom_roles
Revises: 0009_indicators
"""
import sqlalchemy as sa
from alembic import op

from garrison.store.base import UTCDateTime

revision = "0010_custom_roles"
down_revision = "0009_indicators"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custom_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_custom_roles_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_roles")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_custom_roles_tenant_id")),
    )
    op.create_index(op.f("ix_custom_roles_tenant_id"), "custom_roles", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_custom_roles_tenant_id"), table_name="custom_roles")
    op.drop_table("custom_roles")
