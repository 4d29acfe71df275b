"""SPDX 2.x JSON documents."""

from __future__ import annotations

import re
from typing import Any

from garrison.inventory.common import check_count
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.formats.cyclonedx import load_json
from garrison.inventory.sbom import expect, os_identity, sbom_package
from garrison.protocol import OsIdentity, SoftwarePackage

FMT = "spdx-json"
_SOURCE_INFO = re.compile(r"built package from:\s*(\S+)\s+(\S+)")


def _str(pkg: dict[str, Any], key: str, where: str) -> str:
    value = pkg.get(key, "")
    return expect(value, str, FMT, f"{where}.{key}") if value is not None else ""


def _is_os(pkg: dict[str, Any]) -> bool:
    spdx_id = pkg.get("SPDXID", "")
    return pkg.get("primaryPackagePurpose") == "OPERATING-SYSTEM" or (
        isinstance(spdx_id, str) and spdx_id.startswith("SPDXRef-OperatingSystem")
    )


def parse_spdx_json(
    data: bytes, os: OsIdentity | None = None, *, path: str = ""
) -> tuple[list[SoftwarePackage], OsIdentity | None]:
    doc = expect(load_json(data, FMT), dict, FMT, "$")
    version = doc.get("spdxVersion")
    if not isinstance(version, str) or not version.startswith("SPDX-"):
        raise InventoryParseError("expected 'SPDX-2.x'", fmt=FMT, field="spdxVersion")
    pkgs = expect(doc.get("packages", []), list, FMT, "packages")
    check_count(len(pkgs), FMT)
    for i, pkg in enumerate(pkgs):
        expect(pkg, dict, FMT, f"packages[{i}]")
    doc_os: OsIdentity | None = None
    for i, pkg in enumerate(pkgs):
        if _is_os(pkg):
            where = f"packages[{i}]"
            doc_os = os_identity(FMT, where, _str(pkg, "name", where), _str(pkg, "versionInfo", where))
            break
    use_os = os or doc_os
    out: list[SoftwarePackage] = []
    for i, pkg in enumerate(pkgs):
        where = f"packages[{i}]"
        if _is_os(pkg):
            continue
        name = _str(pkg, "name", where)
        if not name:
            raise InventoryParseError("missing", fmt=FMT, field=f"{where}.name")
        purl = cpe = ""
        for j, ref in enumerate(expect(pkg.get("externalRefs", []), list, FMT, f"{where}.externalRefs")):
            ref = expect(ref, dict, FMT, f"{where}.externalRefs[{j}]")
            kind = ref.get("referenceType")
            if kind == "purl" and not purl or kind in ("cpe23Type", "cpe22Type") and not cpe:
                locator = expect(ref.get("referenceLocator", ""), str, FMT, f"{where}.externalRefs[{j}].referenceLocator")
                purl, cpe = (locator, cpe) if kind == "purl" else (purl, locator)
        source_info = None
        m = _SOURCE_INFO.match(_str(pkg, "sourceInfo", where))
        if m:
            source_info = (m.group(1), m.group(2))
        p = sbom_package(
            FMT, where, name=name, version=_str(pkg, "versionInfo", where), purl=purl, props={},
            os=use_os, source_info=source_info, path=path, cpe=cpe,
        )
        if p is not None:
            out.append(p)
    return out, use_os


@register_format
class SpdxJson(InventoryFormat):
    name = FMT
    priority = 10

    @classmethod
    def sniff(cls, head: str) -> bool:
        return head.startswith("{") and re.search(r'"spdxVersion"\s*:\s*"SPDX-', head) is not None

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_spdx_json(data, os, path=path)
