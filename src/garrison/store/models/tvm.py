"""Software inventory and findings of vulnerability management.

Matching cost grows with the fleet's *variety*, not its size, so the tables split in two:

Global (``Base``; shared by all tenants, no tenant data in them):

* ``software_products`` — Defender-style software ids ``vendor-_-name`` (``ubuntu-_-sudo``,
  ``python-_-pyyaml``). The vendor of a distro package is the distro (os-release ``ID``).
* ``package_versions`` — one row per distinct (ecosystem, manager, name, version, source name,
  source version, arch) seen anywhere; ``key`` is a hash of that tuple so lookups and the
  uniqueness check use one short index. ``match_name`` is the name advisories use for it (the
  source package for Debian/Ubuntu/Alpine, the PEP 503 name for PyPI, …). ``matched_at`` is
  NULL until matching has run for it.
* ``package_version_vulns`` — the result of matching: which vulnerabilities a package version
  has, the smallest fixed version above it (NULL: no fix yet) and the advisories that say so.

Per tenant (``TenantScoped``):

* ``device_packages`` — which package versions each device has (+ evidence path, runtime use).
* ``device_inventory_state`` — the generation of the last inventory, for delta uploads.
* ``software_history`` — installs, removals and updates (the event timeline).
* ``resolved_findings`` — findings that ended because the vulnerable version left the device
  (or the knowledge base stopped listing it).

A finding is a row of ``device_packages`` JOIN ``package_version_vulns``; nothing per device is
written when the knowledge base changes.

The hunting views (``DeviceTvmSoftwareInventory``, ``DeviceTvmSoftwareVulnerabilities``) are
created with the tables (``metadata.create_all``) and by the migration through
:func:`create_hunting_views`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from garrison.store.base import TENANT_VIEWS, Base, TenantScoped, utcnow
from garrison.store.groups import by_group_id, group_scoped

HISTORY_EVENTS = ("installed", "uninstalled", "updated")


class SoftwareProduct(Base):
    __tablename__ = "software_products"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)  # vendor-_-name
    vendor: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PackageVersion(Base):
    __tablename__ = "package_versions"
    __table_args__ = (
        Index("ix_package_versions_match", "ecosystem", "match_name"),
        Index("ix_package_versions_source", "ecosystem", "source_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the identity tuple
    ecosystem: Mapped[str] = mapped_column(String(128))
    manager: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(256))
    source_name: Mapped[str] = mapped_column(String(256))
    source_version: Mapped[str] = mapped_column(String(256))
    arch: Mapped[str] = mapped_column(String(128), default="")
    match_name: Mapped[str] = mapped_column(String(256))
    software_id: Mapped[str] = mapped_column(ForeignKey("software_products.id"), index=True)
    purl: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    matched_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)


class PackageVersionVuln(Base):
    __tablename__ = "package_version_vulns"

    package_version_id: Mapped[int] = mapped_column(
        ForeignKey("package_versions.id", ondelete="CASCADE"), primary_key=True
    )
    vulnerability_id: Mapped[str] = mapped_column(
        ForeignKey("vulnerabilities.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    fixed_version: Mapped[str | None] = mapped_column(String(256), default=None)
    # The advisory that gives fixed_version (else the first that names the finding).
    fix_advisory: Mapped[str] = mapped_column(String(128), default="")
    advisory_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(128), default="")  # advisory feed(s), e.g. "osv"
    # affected, no_dsa (Debian: minor issue, no advisory planned), end_of_life (no longer supported)
    status: Mapped[str] = mapped_column(String(32), default="affected")
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DevicePackage(TenantScoped, Base):
    __tablename__ = "device_packages"
    # tenant_id leads the key: every query carries it (the session adds it), and SQLite, without
    # statistics, otherwise picks the tenant_id index and scans the tenant for one device's packages.
    # The second index answers "which devices have these package versions" from the index alone.
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "device_id", "package_version_id"),
                      Index("ix_device_packages_pv_devices", "package_version_id", "tenant_id", "device_id",
                            "last_used"))

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    package_version_id: Mapped[int] = mapped_column(ForeignKey("package_versions.id"))
    path: Mapped[str] = mapped_column(String(1024), default="")  # evidence: where it was found
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used: Mapped[dt.datetime | None] = mapped_column(default=None)  # runtime context


class DeviceInventoryState(TenantScoped, Base):
    __tablename__ = "device_inventory_state"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    os_id: Mapped[str] = mapped_column(String(128), default="")
    os_version_id: Mapped[str] = mapped_column(String(128), default="")
    os_codename: Mapped[str] = mapped_column(String(128), default="")
    ecosystem: Mapped[str] = mapped_column(String(128), default="")  # OSV ecosystem of its distro release
    package_count: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16), default="agent")  # agent | import
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The device group its packages are counted under in the tvm_group_* summaries (0: none).
    counted_group: Mapped[int] = mapped_column(Integer, default=0)


class SoftwareHistory(TenantScoped, Base):
    __tablename__ = "software_history"
    __table_args__ = (Index("ix_software_history_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    software_id: Mapped[str] = mapped_column(String(300), index=True)
    old_version: Mapped[str | None] = mapped_column(String(256), default=None)
    new_version: Mapped[str | None] = mapped_column(String(256), default=None)
    event: Mapped[str] = mapped_column(String(16))  # installed | uninstalled | updated
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ResolvedFinding(TenantScoped, Base):
    __tablename__ = "resolved_findings"
    __table_args__ = (Index("ix_resolved_findings_tenant_at", "tenant_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    vulnerability_id: Mapped[str] = mapped_column(String(128), index=True)
    package_version_id: Mapped[int] = mapped_column(Integer)
    software_id: Mapped[str] = mapped_column(String(300))
    version: Mapped[str] = mapped_column(String(256))
    fixed_version: Mapped[str | None] = mapped_column(String(256), default=None)
    first_seen: Mapped[dt.datetime] = mapped_column()
    resolved_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # updated (another version replaced it), uninstalled, knowledge_base (no longer listed)
    reason: Mapped[str] = mapped_column(String(32), default="updated")


# --- summaries per device group (what the org-wide lists read) -----------------------------
# Device counts are kept per (tenant, device group) so that a caller limited to some groups sums
# the rows of those groups: a device is in exactly one group, so distinct counts add up. They are
# maintained incrementally by ingest and re-matching and rebuilt by a job (garrison.tvm.findings).

@group_scoped(by_group_id)
class GroupPackageCount(TenantScoped, Base):
    __tablename__ = "tvm_group_packages"
    # The second index serves the per-version sums of the Software list (GROUP BY package version
    # within a tenant) from the index alone, in order.
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "group_id", "package_version_id"),
                      Index("ix_tvm_group_packages_tenant_pv", "tenant_id", "package_version_id", "group_id",
                            "devices"))

    group_id: Mapped[int] = mapped_column(Integer)
    package_version_id: Mapped[int] = mapped_column(ForeignKey("package_versions.id", ondelete="CASCADE"),
                                                    index=True)
    devices: Mapped[int] = mapped_column(Integer, default=0)
    in_use: Mapped[int] = mapped_column(Integer, default=0)  # devices that ran it within IN_USE_WINDOW


@group_scoped(by_group_id)
class GroupSoftwareCount(TenantScoped, Base):
    __tablename__ = "tvm_group_software"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "group_id", "software_id"),)

    group_id: Mapped[int] = mapped_column(Integer)
    software_id: Mapped[str] = mapped_column(String(300), index=True)
    installed: Mapped[int] = mapped_column(Integer, default=0)  # devices with any version
    exposed: Mapped[int] = mapped_column(Integer, default=0)  # devices with a vulnerable version
    in_use: Mapped[int] = mapped_column(Integer, default=0)


@group_scoped(by_group_id)
class GroupVulnerabilityCount(TenantScoped, Base):
    __tablename__ = "tvm_group_vulnerabilities"
    # The second index looks up a machine's thousands of vulnerabilities within the tenant (SQLite
    # otherwise scans the tenant's rows through the tenant_id index).
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "group_id", "vulnerability_id"),
                      Index("ix_tvm_group_vulnerabilities_tenant_vuln", "tenant_id", "vulnerability_id",
                            "group_id", "exposed"))

    group_id: Mapped[int] = mapped_column(Integer)
    vulnerability_id: Mapped[str] = mapped_column(String(128), index=True)
    exposed: Mapped[int] = mapped_column(Integer, default=0)  # devices with it, through any software


# --- hunting views ----------------------------------------------------------------------

_INVENTORY_COLUMNS = """
    dp.tenant_id AS "TenantId",
    d.id AS "DeviceId",
    d.computer_dns_name AS "DeviceName",
    d.os_platform AS "OSPlatform",
    d.os_version AS "OSVersion",
    d.os_architecture AS "OSArchitecture",
    sp.vendor AS "SoftwareVendor",
    sp.name AS "SoftwareName",
    pv.version AS "SoftwareVersion\""""

_JOINS = """
    FROM device_packages dp
    JOIN devices d ON d.id = dp.device_id AND d.tenant_id = dp.tenant_id
    JOIN package_versions pv ON pv.id = dp.package_version_id
    JOIN software_products sp ON sp.id = pv.software_id"""

HUNTING_VIEWS: dict[str, str] = {
    # No end-of-support data and no official CPEs yet: the columns exist so that queries written for
    # Defender run; EndOfSupportStatus is '' (Defender's value for "not EOS") and ProductCodeCpe NULL.
    "DeviceTvmSoftwareInventory": f"""SELECT {_INVENTORY_COLUMNS},
    '' AS "EndOfSupportStatus",
    CAST(NULL AS VARCHAR(512)) AS "ProductCodeCpe"
    {_JOINS}""",
    "DeviceTvmSoftwareVulnerabilities": f"""SELECT {_INVENTORY_COLUMNS},
    pvv.vulnerability_id AS "CveId",
    v.severity AS "VulnerabilitySeverityLevel",
    pvv.fix_advisory AS "RecommendedSecurityUpdate",
    pvv.fixed_version AS "RecommendedSecurityUpdateId"
    {_JOINS}
    JOIN package_version_vulns pvv ON pvv.package_version_id = dp.package_version_id
    JOIN vulnerabilities v ON v.id = pvv.vulnerability_id""",
}
TENANT_VIEWS.update(HUNTING_VIEWS)


def create_hunting_views(bind: Connection) -> None:
    """Create (or replace) the hunting views; the migration calls this after creating the tables."""
    for name, body in HUNTING_VIEWS.items():
        if bind.dialect.name == "postgresql":
            bind.execute(text(f'CREATE OR REPLACE VIEW "{name}" AS {body}'))
        else:
            bind.execute(text(f'DROP VIEW IF EXISTS "{name}"'))
            bind.execute(text(f'CREATE VIEW "{name}" AS {body}'))


def drop_hunting_views(bind: Connection) -> None:
    for name in HUNTING_VIEWS:
        bind.execute(text(f'DROP VIEW IF EXISTS "{name}"'))


_VIEW_TABLES = ("device_packages", "devices", "package_versions", "software_products", "package_version_vulns",
                "vulnerabilities")


def _after_create(target: Any, connection: Connection, **kw: Any) -> None:
    # metadata.create_all(tables=[...]) may create only some tables; views need all of theirs.
    if all(inspect(connection).has_table(t) for t in _VIEW_TABLES):
        create_hunting_views(connection)


# metadata.create_all / drop_all (tests, fresh installs without Alembic) keep the views in step.
event.listen(Base.metadata, "after_create", _after_create)
event.listen(Base.metadata, "before_drop", lambda target, connection, **kw: drop_hunting_views(connection))
