"""Alpine secdb (https://secdb.alpinelinux.org/): per release and repository, each package's
``secfixes`` map fixed version -> CVE ids, in YAML (the old GitHub copy) or JSON (secdb today).

One advisory per (release, package, fixed version), id ``ALPINE-v3.10-openssl-1.1.1d-r0``: it names the
CVEs fixed in that version. Fixed version "0" means the package in that release was never affected.
Package names are origin (aports) names, as apk's installed database records them. A fixed version
listed with an empty list of ids (real data: heimdal ``7.4.0-r0`` in v3.6) records no fix and is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml

from garrison.tvm.kb.records import (
    ADVISORY_ID_RE,
    CVE_RE,
    RANK_DISTRO,
    AdvisoryRecord,
    Affected,
    Record,
    RecordError,
)
from garrison.tvm.kb.registry import Importer, register_importer

_RELEASE_RE = re.compile(r"^(v\d+\.\d+|edge)$")
_PKG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9._+~-]{1,128}$")
RELEASES = [f"v3.{n}" for n in range(12, 23)]


@register_importer
class AlpineSecdbImporter(Importer):
    name = "alpine-secdb"
    priority = 30
    default_urls: ClassVar[dict[str, str]] = {
        f"{rel}/{repo}.json": f"https://secdb.alpinelinux.org/{rel}/{repo}.json"
        for rel in RELEASES for repo in ("main", "community")
    }

    def sniff(self, head: bytes) -> bool:
        return b"distroversion" in head and b"packages" in head and (b"reponame" in head or b"secfixes" in head)

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        try:
            text = data.decode("utf-8-sig")
            if text.lstrip()[:1] == "{":
                doc = json.loads(text)
            else:
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
                doc = yaml.load(text, Loader=loader)
        except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            yield RecordError(f"{origin}: not valid YAML/JSON: {str(exc)[:200]}")
            return
        if not isinstance(doc, dict):
            yield RecordError(f"{origin}: top level is not a mapping")
            return
        release = doc.get("distroversion")
        if not isinstance(release, str) or not _RELEASE_RE.match(release):
            yield RecordError(f"{origin}: distroversion: expected 'v3.N' or 'edge', got {str(release)[:32]!r}")
            return
        ecosystem = f"Alpine:{release}"
        packages = doc.get("packages") or []  # an empty repository has "packages: null"
        if not isinstance(packages, list):
            yield RecordError(f"{origin}: packages: not a list")
            return
        for i, item in enumerate(packages):
            pkg = item.get("pkg") if isinstance(item, dict) else None
            name = pkg.get("name") if isinstance(pkg, dict) else None
            if not isinstance(pkg, dict) or not isinstance(name, str) or not _PKG_RE.match(name):
                yield RecordError(f"{origin}: packages[{i}].pkg.name: missing or not a package name")
                continue
            secfixes = pkg.get("secfixes") or {}
            if not isinstance(secfixes, dict):
                yield RecordError(f"{origin}: packages[{i}].pkg.secfixes: not a mapping ({name})")
                continue
            for version, ids in secfixes.items():
                if ids is None or ids == []:
                    # A version listed with no ids fixes nothing (real data: heimdal 7.4.0-r0 in v3.6).
                    continue
                yield self._fix(origin, i, release, ecosystem, name, version, ids)

    def _fix(self, origin: str, i: int, release: str, ecosystem: str, name: str, version: Any,
             ids: Any) -> Record:
        path = f"{origin}: packages[{i}].pkg.secfixes[{str(version)[:64]!r}] ({name})"
        version = str(version) if isinstance(version, (int, float)) else version
        if not isinstance(version, str) or not _VERSION_RE.match(version):
            return RecordError(f"{path}: not a package version")
        if not isinstance(ids, list) or not ids:
            return RecordError(f"{path}: expected a list of CVE ids")
        vulns: list[str] = []
        for entry in ids:
            tokens = str(entry).split()
            cves = [t for t in tokens if CVE_RE.match(t)]
            if cves:
                vulns += cves
            else:
                # A fix known only by the project's id (XSA-207, wnpa-sec-…; "CVE-????-????? XSA-295").
                vulns += [t for t in tokens if ADVISORY_ID_RE.match(t) and "?" not in t][:1]
        if not vulns:
            return RecordError(f"{path}: names no CVE or advisory id")
        rid = f"ALPINE-{release}-{name}-{version}"
        if not ADVISORY_ID_RE.match(rid):
            return RecordError(f"{path}: id {rid[:140]!r} too long")
        if version == "0":  # secdb's way of saying the package in this release never had the flaw
            row = Affected(ecosystem, name, [], status="not_affected")
        else:
            row = Affected(ecosystem, name, [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                              {"fixed": version}]}])
        return AdvisoryRecord(
            id=rid,
            source=self.name,
            summary=f"{name} {version}: {', '.join(vulns[:20])}"[:1000],
            raw={"distroversion": release, "name": name, "version": version, "ids": [str(x)[:200] for x in ids]},
            vulnerabilities=list(dict.fromkeys(vulns)),
            affected=[row],
            rank=RANK_DISTRO,
        )
