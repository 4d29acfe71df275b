"""Columns the agent fills sized as the protocol bounds them (garrison.protocol.limits).

A value the protocol accepted could be longer than its column (agent_version 128 vs 32, os_platform
128 vs 64, …): PostgreSQL then refused the enrollment (500) or the fleet's whole heartbeat write.
Only PostgreSQL enforces VARCHAR lengths and widening one there is a catalogue change (no rewrite);
SQLite ignores the length, and recreating ``devices`` there (batch mode) would cascade-delete the
rows that reference it, so SQLite is left as it is.

Revision ID: 0005_wire_column_sizes
Revises: 0004_agent_upload_queue
"""
import sqlalchemy as sa
from alembic import op

from garrison.store.models.assessment import create_views as create_assessment_views
from garrison.store.models.assessment import drop_views as drop_assessment_views
from garrison.store.models.tvm import create_hunting_views, drop_hunting_views

revision = "0005_wire_column_sizes"
down_revision = "0004_agent_upload_queue"
branch_labels = None
depends_on = None

# table, column, old length, new length
WIDENED = [
    ("devices", "agent_version", 32, 64),
    ("devices", "os_platform", 64, 128),
    ("devices", "os_version", 64, 128),
    ("devices", "os_id", 64, 128),
    ("devices", "os_codename", 64, 128),
    ("devices", "os_processor", 32, 128),
    ("device_assessment_state", "os_family", 32, 128),
]


def upgrade() -> None:
    _resize(to_new=True)


def downgrade() -> None:
    _resize(to_new=False)


def _resize(to_new: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        return
    # PostgreSQL will not change the type of a column a view reads: the views are made again.
    drop_assessment_views(bind)
    drop_hunting_views(bind)
    for table, column, old, new in WIDENED:
        before, after = (old, new) if to_new else (new, old)
        op.alter_column(table, column, type_=sa.String(after), existing_type=sa.String(before), existing_nullable=False)
    create_hunting_views(bind)
    create_assessment_views(bind)
