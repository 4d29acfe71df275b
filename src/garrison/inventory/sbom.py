"""From SBOM components (CycloneDX, SPDX) to :class:`SoftwarePackage`.

The purl is the authority on a component's type, name, version, arch and epoch; the
component's own name and version fill in when there is none. Source packages come from
what the generators write: Trivy's ``aquasecurity:trivy:Src*`` properties, Syft's
``syft:metadata:source*`` properties or purl ``upstream`` qualifier, SPDX ``sourceInfo``.
"""

from __future__ import annotations

import re
from typing import Any

from garrison.inventory.common import make_package, split_epoch
from garrison.inventory.cpe import CpeError, parse_cpe
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.osrelease import ecosystem_for, os_from_distro_qualifier
from garrison.inventory.purl import build_purl, parse_purl
from garrison.inventory.pypi import normalize_pypi_name
from garrison.protocol import OsIdentity, SoftwarePackage

MAX_DEPTH = 32

PURL_MANAGERS = {"deb": "dpkg", "rpm": "rpm", "apk": "apk", "pypi": "python", "npm": "npm", "golang": "go"}
DISTRO_TYPES = frozenset({"deb", "rpm", "apk"})
LANGUAGE_ECOSYSTEMS = {
    "pypi": "PyPI", "npm": "npm", "golang": "Go", "maven": "Maven", "gem": "RubyGems", "cargo": "crates.io",
    "nuget": "NuGet", "composer": "Packagist", "hex": "Hex", "pub": "Pub", "hackage": "Hackage",
    "cran": "CRAN", "conan": "ConanCenter", "swift": "SwiftURL",
}
_MANAGER = re.compile(r"[a-z0-9_-]{1,32}")


def _source_from(
    ptype: str, props: dict[str, str], qualifiers: dict[str, str], source_info: tuple[str, str] | None
) -> tuple[str, str]:
    """(source name, source version) as the document states it; ``("", "")`` when it does not."""
    name = props.get("aquasecurity:trivy:SrcName", "")
    if name:
        ver = props.get("aquasecurity:trivy:SrcVersion", "")
        rel = props.get("aquasecurity:trivy:SrcRelease", "")
        epoch = props.get("aquasecurity:trivy:SrcEpoch", "")
        vr = f"{ver}-{rel}" if ver and rel else ver
        return name, (f"{epoch}:{vr}" if vr and epoch and epoch != "0" else vr)
    name = props.get("syft:metadata:source", "")
    if name:
        return name, props.get("syft:metadata:sourceVersion", "")
    upstream = qualifiers.get("upstream", "")
    if upstream:
        if ptype == "rpm" and upstream.endswith(".rpm"):
            from garrison.inventory.formats.rpm import parse_source_rpm  # here: formats imports this module

            parsed = parse_source_rpm(upstream)
            if parsed:
                return parsed
        name, _, ver = upstream.partition("@")
        return name, ver
    return source_info or ("", "")


def sbom_package(
    fmt: str,
    where: str,
    *,
    name: str,
    version: str,
    purl: str,
    props: dict[str, str],
    os: OsIdentity | None,
    source_info: tuple[str, str] | None = None,
    path: str = "",
    cpe: str = "",
) -> SoftwarePackage | None:
    """One component as a package; None for components that are not software packages."""
    if cpe:
        try:
            parse_cpe(cpe)
        except CpeError as exc:
            raise InventoryParseError(str(exc), fmt=fmt, field=f"{where}.cpe") from None
    arch = epoch = ""
    qualifiers: dict[str, str] = {}
    if purl:
        p = parse_purl(purl, fmt=fmt, field_name=f"{where}.purl")
        ptype = p.type
        qualifiers = p.qualifiers
        if ptype == "npm" and p.namespace:
            full_name = f"{p.namespace}/{p.name}"
        elif ptype == "maven" and p.namespace:
            full_name = f"{p.namespace}:{p.name}"  # OSV Maven names are group:artifact
        elif p.namespace and ptype not in DISTRO_TYPES:
            full_name = f"{p.namespace}/{p.name}"
        else:
            full_name = p.name
        version = p.version or version
        arch = qualifiers.get("arch", "")
        epoch = qualifiers.get("epoch", "")
    else:
        if not version:
            return None  # the described container/file itself, not a package
        ptype = ""
        full_name = name
        purl = build_purl("generic", name, version)
    if not full_name:
        raise InventoryParseError("component without a name", fmt=fmt, field=f"{where}.name")
    manager = PURL_MANAGERS.get(ptype, ptype or "generic")
    if not _MANAGER.fullmatch(manager):
        manager = "generic"
    ecosystem = LANGUAGE_ECOSYSTEMS.get(ptype, "")
    source_name = source_version = ""
    if ptype == "pypi":
        full_name = normalize_pypi_name(full_name)
    if ptype in DISTRO_TYPES:
        target_os = os or os_from_distro_qualifier(qualifiers.get("distro", ""))
        ecosystem = ecosystem_for(target_os) if target_os else ""
        if ptype == "rpm":
            # rpm purls carry the epoch as a qualifier; some documents write E:V-R as the version.
            v_epoch, vr = split_epoch(version)
            epoch = epoch or v_epoch
            version = f"{epoch}:{vr}" if epoch and epoch != "0" else vr
        else:
            epoch = split_epoch(version)[0]
        source_name, source_version = _source_from(ptype, props, qualifiers, source_info)
        source_name = source_name or full_name
        source_version = source_version or version
    return make_package(
        fmt,
        None,
        where,
        manager=manager,
        name=full_name,
        version=version,
        ecosystem=ecosystem,
        arch=arch,
        source_name=source_name,
        source_version=source_version,
        epoch=epoch,
        purl=purl,
        path=path,
        cpe=cpe,
    )


_KIND_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def expect(value: Any, kind: type, fmt: str, where: str) -> Any:
    """Shape check of a JSON value with an error naming the JSON path."""
    if not isinstance(value, kind):
        want = _KIND_NAMES.get(kind, kind.__name__)
        raise InventoryParseError(f"expected {want}, got {type(value).__name__}", fmt=fmt, field=where)
    return value


def os_identity(fmt: str, where: str, name: str, version: str, codename: str = "", pretty: str = "") -> OsIdentity:
    try:
        return OsIdentity(id=name.strip().lower(), version_id=version.strip(), codename=codename, pretty_name=pretty)
    except ValueError as exc:
        raise InventoryParseError(f"invalid operating system: {exc}", fmt=fmt, field=where) from None
