"""The vulnerability knowledge base: shared by all tenants (``Base`` only, never ``TenantScoped``).

Shape (the matching engine depends on these names):

* ``vulnerabilities`` — one row per weakness: the CVE id, or the advisory id when a record names no CVE.
  ``sources`` lists the ids of the non-withdrawn advisories that name it (the evidence).
* ``advisories`` — the source records as given (``raw``, size-bounded), one per feed record.
* ``advisory_vulnerabilities`` — which vulnerabilities an advisory names (aliases merged: USN/DSA/GHSA/PYSEC
  records that name a CVE attach to that CVE).
* ``affected_packages`` — per advisory, per (ecosystem, package): OSV ``ranges`` and explicit ``versions``.
  ``status`` is the distro's verdict for that package in that release:

  ``affected``      vulnerable below the ``fixed`` event of ``ranges`` (no ``fixed`` event: no fix yet)
  ``not_affected``  the package in that release was never vulnerable (Debian/Alpine fixed version "0")
  ``unimportant``   Debian: the security team does not consider it a security issue for this package
  ``no_dsa``        Debian: vulnerable, but no security advisory will be issued (minor issue)
  ``undetermined``  Debian: not yet known whether the package is affected
  ``end_of_life``   Debian: vulnerable, the package is no longer supported in that release

  Rows of withdrawn advisories stay as evidence; matching ignores them (``advisories.withdrawn``).
* ``feed_sources`` — one row per feed: last sync, HTTP validators, record counts, last error.
* ``kb_changes`` — what every import changed, for the event timeline and for re-matching.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from garrison.store.base import Base, utcnow

SEVERITIES = ("Critical", "High", "Medium", "Low", "None", "Unknown")
AFFECTED_STATUSES = ("affected", "not_affected", "unimportant", "no_dsa", "undetermined", "end_of_life")

# List columns default on the server too, so that bulk inserts of bare rows (EPSS: 360k rows)
# need not serialise empty lists in Python.
_EMPTY_LIST = text("'[]'")


class Vulnerability(Base):
    __tablename__ = "vulnerabilities"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    severity: Mapped[str] = mapped_column(String(16), default="Unknown", server_default="Unknown")
    cvss_v3_score: Mapped[float | None] = mapped_column(Float, default=None)
    cvss_v3_vector: Mapped[str | None] = mapped_column(String(256), default=None)
    cvss_v4_score: Mapped[float | None] = mapped_column(Float, default=None)
    cvss_v4_vector: Mapped[str | None] = mapped_column(String(512), default=None)
    cwes: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    published_on: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_on: Mapped[dt.datetime | None] = mapped_column(default=None)
    references: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    epss: Mapped[float | None] = mapped_column(Float, default=None)
    epss_percentile: Mapped[float | None] = mapped_column(Float, default=None)
    kev: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    kev_date_added: Mapped[dt.date | None] = mapped_column(Date, default=None)
    kev_due_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    kev_ransomware: Mapped[str] = mapped_column(String(16), default="", server_default="")
    public_exploit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    exploit_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    exploit_in_kit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    exploit_types: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    exploit_uris: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    sources: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    # Per descriptive field, the rank of the source that set it (NVD 30 > GHSA/PYSEC… 20 > distro 10 >
    # KEV 5 > advisory-wide text 1): a lower-ranked feed only fills empty fields, so import order does
    # not matter.
    info_ranks: Mapped[dict[str, Any]] = mapped_column(JSON, server_default=text("'{}'"))
    # Server defaults: bulk inserts (EPSS) leave these to the database instead of binding 360k timestamps.
    created_at: Mapped[dt.datetime | None] = mapped_column(default=utcnow, server_default=text("CURRENT_TIMESTAMP"))
    modified_at: Mapped[dt.datetime | None] = mapped_column(
        default=utcnow, server_default=text("CURRENT_TIMESTAMP"), index=True
    )


class Advisory(Base):
    __tablename__ = "advisories"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    modified: Mapped[dt.datetime | None] = mapped_column(default=None)
    published: Mapped[dt.datetime | None] = mapped_column(default=None)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    aliases: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # sha256 of the record as given: re-importing an unchanged record is a no-op.
    content_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    imported_at: Mapped[dt.datetime | None] = mapped_column(default=utcnow)


class AdvisoryVulnerability(Base):
    __tablename__ = "advisory_vulnerabilities"

    advisory_id: Mapped[str] = mapped_column(
        ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True
    )
    vulnerability_id: Mapped[str] = mapped_column(
        ForeignKey("vulnerabilities.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AffectedPackage(Base):
    __tablename__ = "affected_packages"
    __table_args__ = (Index("ix_affected_packages_ecosystem_package", "ecosystem", "package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    advisory_id: Mapped[str] = mapped_column(ForeignKey("advisories.id", ondelete="CASCADE"), index=True)
    ecosystem: Mapped[str] = mapped_column(String(128))
    package: Mapped[str] = mapped_column(String(512))
    ranges: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    versions: Mapped[list[Any]] = mapped_column(JSON, server_default=_EMPTY_LIST)
    status: Mapped[str] = mapped_column(String(32), default="affected", server_default="affected")
    severity: Mapped[str | None] = mapped_column(String(32), default=None)


class FeedSource(Base):
    __tablename__ = "feed_sources"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_sync: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_success: Mapped[dt.datetime | None] = mapped_column(default=None)
    etag: Mapped[str | None] = mapped_column(String(512), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(128), default=None)
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    record_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KbChange(Base):
    """One change of the knowledge base. Kinds: vulnerability_added, vulnerability_updated,
    advisory_withdrawn, exploit_added, exploit_verified (added to KEV), exploit_in_kit, kev_removed,
    epss_changed."""

    __tablename__ = "kb_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    vulnerability_id: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
