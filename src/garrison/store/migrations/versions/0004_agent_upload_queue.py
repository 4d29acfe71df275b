"""Queue of accepted agent uploads, applied by the worker off the request path.

Revision ID: 0004_agent_upload_queue
Revises: 0003_tvm_read_indexes
"""
import sqlalchemy as sa
from alembic import op

import garrison.store.base

revision = "0004_agent_upload_queue"
down_revision = "0003_tvm_read_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_upload_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=False),
        sa.Column("received_at", garrison.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_agent_upload_queue_device_id_devices"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_agent_upload_queue_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_upload_queue")),
    )
    with op.batch_alter_table("agent_upload_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_upload_queue_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_upload_queue_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_agent_upload_queue_state_id", ["state", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("agent_upload_queue")
