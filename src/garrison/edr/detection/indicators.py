"""Custom indicators of compromise (Defender's Indicator entity): validated values, and matching at ingest.

:class:`IndicatorMatcher` is an event-store listener beside the Sigma engine: each write's rows are looked
up (one dict probe per candidate column) in the tenant's indicator set — file hashes against the process
and initiating-process hashes, IP addresses against ``RemoteIP``, domains (and their subdomains) and URLs against ``RemoteUrl``.
A tenant's set is re-read from the state store at most every :data:`REFRESH_SECONDS` (an indicator added by
the API matches events ingested after it within that time); the cost per event does not depend on how many
indicators there are. A match of an indicator whose action alerts raises an alert (``detectionSource``
``CustomerTI``) through the same sink as the rules. ``Allowed`` indicators raise nothing.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from garrison.core.errors import Invalid
from garrison.edr.detection.compiler import Compiled
from garrison.edr.detection.engine import Match
from garrison.edr.detection.logsources import Source
from garrison.edr.detection.rules import Rule
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.detection import Indicator

REFRESH_SECONDS = 5.0
MAX_PER_TENANT = 15_000  # Defender's limit per tenant
ACTIONS = ("Alert", "AlertAndBlock", "Allowed", "Audit", "Warn", "Block", "BlockAndRemediate")
SEVERITIES = ("Informational", "Low", "Medium", "High")
_HEX = {"FileSha1": 40, "FileSha256": 64, "FileMd5": 32, "CertificateThumbprint": 40}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# indicator type -> the event columns it is matched against (CertificateThumbprint: no column carries one yet)
COLUMNS: dict[str, tuple[str, ...]] = {
    "FileSha1": ("SHA1", "InitiatingProcessSHA1"),
    "FileSha256": ("SHA256", "InitiatingProcessSHA256"),
    "FileMd5": ("MD5", "InitiatingProcessMD5"),
    "IpAddress": ("RemoteIP",),
    "DomainName": ("RemoteUrl",),
    "Url": ("RemoteUrl",),
    "CertificateThumbprint": (),
}
TYPES = tuple(COLUMNS)


def normalise(indicator_type: str, value: str) -> str:
    """The value as it is stored and matched, or :class:`Invalid` saying what is wrong with it."""
    if indicator_type not in COLUMNS:
        raise Invalid(f"indicatorType must be one of {', '.join(TYPES)}")
    v = (value or "").strip()
    if not v or len(v) > 1024:
        raise Invalid("indicatorValue must be 1 to 1024 characters")
    if indicator_type in _HEX:
        n = _HEX[indicator_type]
        if not re.fullmatch(f"[0-9a-fA-F]{{{n}}}", v):
            raise Invalid(f"a {indicator_type} indicator is {n} hexadecimal digits")
        return v.lower()
    if indicator_type == "IpAddress":
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise Invalid(f"{v[:80]!r} is not an IP address") from None
    if indicator_type == "DomainName":
        d = v.lower().rstrip(".")
        if not _DOMAIN.match(d):
            raise Invalid(f"{v[:80]!r} is not a domain name")
        return d
    parts = urlsplit(v if "://" in v else f"http://{v}")
    if not parts.hostname:
        raise Invalid(f"{v[:80]!r} is not a URL")
    return v.lower()


def _domain_of(value: str) -> str | None:
    host = urlsplit(value if "://" in value else f"http://{value}").hostname
    return host.rstrip(".").lower() if host else None


def _parent_domains(host: str | None) -> list[str]:
    """The host and its parent domains (a domain indicator covers its subdomains), at most 10 levels."""
    if not host:
        return []
    labels = host.split(".")[-10:]
    return [".".join(labels[i:]) for i in range(len(labels))]


@dataclass(frozen=True)
class _Entry:
    id: int
    title: str
    description: str
    severity: str
    action: str
    generate_alert: bool
    group_ids: frozenset[int]
    created_by: str


class IndicatorMatcher:
    """The indicators of each tenant, refreshed from the state store; matches stored rows against them."""

    def __init__(self, store: Store, sink: Callable[[list[Match]], None] | None = None,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.sinks = [sink] if sink else []
        self.refresh_seconds = refresh_seconds
        self._sets: dict[int, tuple[float, dict[tuple[str, str], _Entry]]] = {}
        self._lock = threading.Lock()
        self.matches = 0

    def invalidate(self, tenant_id: int) -> None:
        with self._lock:
            self._sets.pop(tenant_id, None)

    def _set(self, tenant_id: int) -> dict[tuple[str, str], _Entry]:
        now = time.monotonic()
        with self._lock:
            cached = self._sets.get(tenant_id)
            if cached is not None and now - cached[0] < self.refresh_seconds:
                return cached[1]
        found: dict[tuple[str, str], _Entry] = {}
        with self.store.tenant(tenant_id) as s:
            live = s.scalars(select(Indicator).where(or_(Indicator.expiration_time.is_(None),
                                                         Indicator.expiration_time > utcnow())))
            for ind in live:
                found[(ind.indicator_type, ind.indicator_value)] = _Entry(
                    ind.id, ind.title, ind.description, ind.severity, ind.action, ind.generate_alert,
                    frozenset(int(g) for g in ind.rbac_group_ids or ()), ind.created_by)
        with self._lock:
            self._sets[tenant_id] = (now, found)
        return found

    def on_write(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        out: list[Match] = []
        sets: dict[int, dict[tuple[str, str], _Entry]] = {}
        for table, table_rows in rows.items():
            for row in table_rows:
                tenant = int(row["TenantId"])
                indicators = sets.get(tenant)
                if indicators is None:
                    indicators = sets[tenant] = self._set(tenant)
                if indicators:
                    out.extend(self._match(indicators, table, row))
        out = self._in_scope(out)
        self.matches += len(out)
        if out:
            for sink in self.sinks:
                sink(out)

    def _match(self, indicators: dict[tuple[str, str], _Entry], table: str, row: Mapping[str, Any]) -> list[Match]:
        out = []
        for kind, columns in COLUMNS.items():
            for col in columns:
                value = row.get(col)
                if not value or not isinstance(value, str):
                    continue
                keys = _parent_domains(_domain_of(value)) if kind == "DomainName" else [value.lower()]
                for key in keys:
                    entry = indicators.get((kind, key))
                    if entry is not None and entry.generate_alert and entry.action != "Allowed":
                        out.append(Match(_rule(entry, kind, key), table, row, source="CustomerTI"))
                        break
        return out

    def _in_scope(self, found: list[Match]) -> list[Match]:
        """Drop matches of group-scoped indicators on devices outside their groups."""
        scoped = [m for m in found if m.rule.tags]
        if not scoped:
            return found
        groups: dict[str, int | None] = {}
        by_tenant: dict[int, set[str]] = {}
        for m in scoped:
            by_tenant.setdefault(int(m.row["TenantId"]), set()).add(str(m.row["DeviceId"]))
        for tenant, ids in by_tenant.items():
            with self.store.tenant(tenant) as s:
                for device_id, group_id in s.execute(select(Device.id, Device.group_id).where(Device.id.in_(ids))):
                    groups[device_id] = group_id
        return [m for m in found if not m.rule.tags
                or str(groups.get(str(m.row["DeviceId"]))) in {t.split(":", 1)[1] for t in m.rule.tags}]


_NO_SOURCE = Source(tables=(), platform="any", fields={})
_ALWAYS = Compiled(lambda v: True, None)


def _rule(entry: _Entry, kind: str, value: str) -> Rule:
    """An indicator as the alert sink sees a rule (its group scope rides in ``tags`` as ``group:<id>``)."""
    return Rule(id=f"indicator-{entry.id}", title=f"{entry.title} ({kind} {value})"[:256],
                level=entry.severity.lower(), status="", author=entry.created_by, description=entry.description,
                tags=tuple(f"group:{g}" for g in sorted(entry.group_ids)), references=(), falsepositives=(),
                path="", logsource=(None, None, None), source=_NO_SOURCE, compiled=_ALWAYS)
