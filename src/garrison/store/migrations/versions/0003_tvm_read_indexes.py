"""Covering indexes for the vulnerability-management read APIs (Software list, a machine's vulnerabilities).

Revision ID: 0003_tvm_read_indexes
Revises: 0002_views
"""
from alembic import op

revision = "0003_tvm_read_indexes"
down_revision = "0002_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tvm_group_packages_tenant_pv", "tvm_group_packages",
                    ["tenant_id", "package_version_id", "group_id", "devices"])
    op.create_index("ix_tvm_group_vulnerabilities_tenant_vuln", "tvm_group_vulnerabilities",
                    ["tenant_id", "vulnerability_id", "group_id", "exposed"])


def downgrade() -> None:
    op.drop_index("ix_tvm_group_vulnerabilities_tenant_vuln", table_name="tvm_group_vulnerabilities")
    op.drop_index("ix_tvm_group_packages_tenant_pv", table_name="tvm_group_packages")
