"""Hunting-style views (DeviceTvm* tables) over the state store.

Revision ID: 0002_views
Revises: 0001_initial
"""
from alembic import op

from garrison.store.models.assessment import create_views as create_assessment_views
from garrison.store.models.assessment import drop_views as drop_assessment_views
from garrison.store.models.tvm import create_hunting_views, drop_hunting_views

revision = "0002_views"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_hunting_views(op.get_bind())
    create_assessment_views(op.get_bind())


def downgrade() -> None:
    drop_assessment_views(op.get_bind())
    drop_hunting_views(op.get_bind())
