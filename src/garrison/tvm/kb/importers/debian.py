"""Debian Security Tracker: the JSON dump (``/tracker/data/json``: source package -> CVE -> releases)
and the DSA/DLA advisory lists (``data/DSA/list``, ``data/DLA/list`` of the tracker repository).

Package names are Debian *source* packages. Release codenames map to OSV ecosystems ("bookworm" ->
"Debian:12", "sid" -> "Debian:unstable"). Per release, the tracker's verdict becomes the row status:
resolved with fixed version "0" = not_affected; resolved = affected below the fixed version; open =
affected with no fix, or no_dsa / unimportant / end_of_life when the tracker says so; undetermined.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.tvm.kb.cvss import severity_from_text
from garrison.tvm.kb.records import (
    ADVISORY_ID_RE,
    CVE_RE,
    MAX_TEXT,
    RANK_DISTRO,
    AdvisoryRecord,
    Affected,
    FieldError,
    Record,
    RecordError,
    VulnInfo,
    bounded_raw,
    json_object,
)
from garrison.tvm.kb.registry import Importer, register_importer

RELEASES = {
    "buzz": "1.1", "rex": "1.2", "bo": "1.3", "hamm": "2.0", "slink": "2.1", "potato": "2.2", "woody": "3.0",
    "sarge": "3.1", "etch": "4", "lenny": "5", "squeeze": "6", "wheezy": "7", "jessie": "8", "stretch": "9",
    "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14", "duke": "15",
    "sid": "unstable",
}
_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,199}$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9.+~:_-]{1,256}$")


def ecosystem_of(codename: str) -> str | None:
    number = RELEASES.get(codename.lower())
    return f"Debian:{number}" if number else None


def _range(fixed: str | None) -> list[dict[str, Any]]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    return [{"type": "ECOSYSTEM", "events": events}]


@register_importer
class DebianTrackerImporter(Importer):
    name = "debian-tracker"
    priority = 30
    default_urls: ClassVar[dict[str, str]] = {"json": "https://security-tracker.debian.org/tracker/data/json"}

    def sniff(self, head: bytes) -> bool:
        return re.match(rb'\s*\{\s*"[^"\\]{1,200}"\s*:\s*\{\s*"(?:CVE|TEMP)-', head) is not None

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        doc = json_object(data, origin)
        if isinstance(doc, RecordError):
            yield doc
            return
        # package -> CVE becomes CVE -> packages: one advisory per CVE, like OSV's DEBIAN-CVE records.
        by_cve: dict[str, dict[str, Any]] = {}
        for package, cves in doc.items():
            if not isinstance(package, str) or not _PKG_RE.match(package):
                yield RecordError(f"{origin}: {str(package)[:64]!r}: not a Debian source package name")
                continue
            if not isinstance(cves, dict):
                yield RecordError(f"{origin}: {package}: not an object of CVEs")
                continue
            for cve, entry in cves.items():
                if not isinstance(cve, str) or not ADVISORY_ID_RE.match(cve):
                    yield RecordError(f"{origin}: {package}.{str(cve)[:64]}: not a CVE or TEMP id")
                    continue
                if not isinstance(entry, dict):
                    yield RecordError(f"{origin}: {package}.{cve}: not an object")
                    continue
                by_cve.setdefault(cve, {})[package] = entry
        for cve, packages in by_cve.items():
            try:
                yield self._record(cve, packages, origin)
            except ValueError as exc:
                yield RecordError(f"{origin}: {cve}: {exc}")

    def _record(self, cve: str, packages: dict[str, Any], origin: str) -> AdvisoryRecord:
        affected: list[Affected] = []
        warnings: list[str] = []
        description = None
        for package, entry in sorted(packages.items()):
            desc = entry.get("description")
            if isinstance(desc, str) and desc and description is None:
                description = desc[:MAX_TEXT]
            releases = entry.get("releases") or {}
            if not isinstance(releases, dict):
                raise FieldError(f"{package}.releases", "not an object")
            for codename, rel in sorted(releases.items()):
                path = f"{package}.releases.{codename}"
                ecosystem = ecosystem_of(str(codename))
                if ecosystem is None:
                    warnings.append(f"{origin}: {cve}: {path}: unknown release, skipped")
                    continue
                if not isinstance(rel, dict):
                    raise FieldError(path, "not an object")
                affected.append(_tracker_row(rel, ecosystem, package, path))
        rid = f"DEBIAN-{cve}"
        return AdvisoryRecord(
            id=rid,
            source=self.name,
            summary=(description or "")[:1000],
            raw=bounded_raw({"id": cve, "packages": packages}),
            vulnerabilities=[cve] if CVE_RE.match(cve) else [],
            affected=affected,
            info={"*": VulnInfo(description=description, severity=_highest_urgency(affected))},
            rank=RANK_DISTRO,
            warnings=warnings,
        )


def _highest_urgency(rows: list[Affected]) -> str | None:
    """The distro's own rating of the CVE: the highest urgency over its packages and releases (the last
    source in the severity order, after NVD and OSV CVSS; see garrison.tvm.kb.cvss)."""
    rated = [severity_from_text(r.severity) for r in rows]
    known = [s for s in rated if s in _URGENCY_ORDER]
    return max(known, key=_URGENCY_ORDER.index) if known else None


_URGENCY_ORDER = ("None", "Low", "Medium", "High", "Critical")


def _tracker_row(rel: dict[str, Any], ecosystem: str, package: str, path: str) -> Affected:
    status = rel.get("status")
    if status not in ("resolved", "open", "undetermined"):
        raise ValueError(f"{path}.status: expected resolved, open or undetermined, got {str(status)[:32]!r}")
    urgency = rel.get("urgency")
    urgency = urgency if isinstance(urgency, str) and len(urgency) <= 32 else None
    fixed = rel.get("fixed_version")
    if fixed is not None and (not isinstance(fixed, str) or not _VERSION_RE.match(fixed)):
        raise ValueError(f"{path}.fixed_version: not a Debian version")
    severity = urgency.rstrip("*") if urgency and urgency not in ("not yet assigned", "end-of-life") else None
    row = Affected(ecosystem=ecosystem, package=package, severity=severity)
    if status == "resolved":
        if fixed == "0":  # the tracker's way of saying this release never had the flaw
            row.status = "not_affected"
        else:
            row.ranges = _range(fixed)
    elif status == "undetermined":
        row.status = "undetermined"
        row.ranges = _range(None)
    else:
        row.ranges = _range(None)
    if row.status == "not_affected":
        pass  # never vulnerable, whatever the urgency says
    elif urgency == "unimportant":
        row.status = "unimportant"
    elif status == "open" and urgency == "end-of-life":
        row.status = "end_of_life"
    elif status == "open" and rel.get("nodsa") is not None:
        row.status = "no_dsa"
    return row


_HEADER_RE = re.compile(r"^\[(\d{1,2}) ([A-Za-z]{3}) (\d{4})\] (D[SL]A-\d+(?:-\d+)?) (.*)$")
_FIX_RE = re.compile(r"^\[([a-z]+)\]\s+-\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_TAGS = {"<not-affected>": "not_affected", "<end-of-life>": "end_of_life", "<no-dsa>": "no_dsa",
         "<unfixed>": "affected", "<ignored>": "no_dsa", "<postponed>": "no_dsa"}


@register_importer
class DebianAdvisoryListImporter(Importer):
    """The tracker's DSA/DLA ``list`` files: advisory -> CVEs and per-release fixed versions."""

    name = "debian-advisories"
    priority = 30
    default_urls: ClassVar[dict[str, str]] = {
        "DSA/list": "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data/DSA/list",
        "DLA/list": "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data/DLA/list",
    }

    def sniff(self, head: bytes) -> bool:
        return re.match(rb"\[\d{1,2} [A-Za-z]{3} \d{4}\] D[SL]A-\d+", head) is not None

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RecordError(f"{origin}: not UTF-8 text: {exc}")
            return
        block: list[tuple[int, str]] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.startswith("["):
                if block:
                    yield self._block(block, origin)
                block = [(lineno, line)]
            elif line.strip():
                if not block:
                    yield RecordError(f"{origin}:{lineno}: text before the first advisory")
                    continue
                block.append((lineno, line.strip()))
        if block:
            yield self._block(block, origin)

    def _block(self, block: list[tuple[int, str]], origin: str) -> Record:
        lineno, header = block[0]
        m = _HEADER_RE.match(header)
        if not m:
            return RecordError(f"{origin}:{lineno}: header: expected '[dd Mon yyyy] DSA-n-m package - title'")
        day, month, year, rid, title = m.groups()
        try:
            published = dt.datetime(int(year), _MONTHS[month], int(day), tzinfo=dt.UTC)
        except (KeyError, ValueError):
            return RecordError(f"{origin}:{lineno}: {rid}: date: not a valid date")
        cves: list[str] = []
        affected: list[Affected] = []
        warnings: list[str] = []
        for n, line in block[1:]:
            if line.startswith("{"):
                cves += [t for t in line.strip("{}").split() if CVE_RE.match(t)]
            elif line.startswith("["):
                fm = _FIX_RE.match(line)
                if not fm:
                    return RecordError(f"{origin}:{n}: {rid}: release line: expected '[release] - package version'")
                codename, package, version, _rest = fm.groups()
                ecosystem = ecosystem_of(codename)
                if ecosystem is None:
                    warnings.append(f"{origin}:{n}: {rid}: release {codename!r} unknown, skipped")
                    continue
                if not _PKG_RE.match(package):
                    return RecordError(f"{origin}:{n}: {rid}: package: not a Debian source package name")
                if version.startswith("<"):
                    status = _TAGS.get(version)
                    if status is None:
                        warnings.append(f"{origin}:{n}: {rid}: tag {version[:32]!r} unknown, skipped")
                        continue
                    ranges = _range(None) if status != "not_affected" else []
                    affected.append(Affected(ecosystem, package, ranges, status=status))
                elif _VERSION_RE.match(version):
                    affected.append(Affected(ecosystem, package, _range(version)))
                else:
                    return RecordError(f"{origin}:{n}: {rid}: version: not a Debian version")
            # NOTE: lines and anything else are commentary.
        return AdvisoryRecord(
            id=rid,
            source=self.name,
            summary=title[:1000],
            published=published,
            aliases=list(dict.fromkeys(cves)),
            raw={"header": header[:1000], "lines": [line[:1000] for _, line in block[1:200]]},
            vulnerabilities=list(dict.fromkeys(cves)),
            affected=affected,
            info={"*": VulnInfo(published=published)},
            rank=RANK_DISTRO,
            warnings=warnings,
        )
