"""dpkg status database (``/var/lib/dpkg/status``): RFC 822-style stanzas, one per package."""

from __future__ import annotations

import re

from garrison.inventory.common import check_count, decode, make_package, split_epoch
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.osrelease import ecosystem_for
from garrison.inventory.purl import build_purl
from garrison.protocol import OsIdentity, SoftwarePackage

FMT = "dpkg-status"

# Field names are case-insensitive in deb822; real files use the canonical case (fast path).
_WANTED = {k: k for k in ("Package", "Status", "Version", "Architecture", "Source")}
_WANTED.update({k.lower(): k for k in list(_WANTED)})
_WANTED.update({k.upper(): v for k, v in list(_WANTED.items())})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION = re.compile(r"(?:\d+:)?[A-Za-z0-9][A-Za-z0-9.+~:_-]*")
_ARCH = re.compile(r"[a-z0-9][a-z0-9-]*")
_SOURCE = re.compile(r"(\S+)(?:\s+\((\S+)\))?")


class DebianTarget:
    """What depends on the OS only (ecosystem, purl namespace and distro), computed once per file."""

    def __init__(self, os: OsIdentity | None) -> None:
        self.ecosystem = ecosystem_for(os) if os else ""
        # Without an os-release we cannot tell Ubuntu from Debian; the purl-spec default is debian.
        self.namespace = (os.id if os and os.id else "debian").lower()
        distro = ""
        if os and os.id:
            distro = f"{os.id}-{os.version_id}" if os.version_id else os.codename
        self.distro = distro


def deb_package(
    target: DebianTarget,
    name: str,
    version: str,
    arch: str,
    source: str,
    source_version: str,
    *,
    path: str = "",
    manager: str = "dpkg",
    line: int | None = None,
) -> SoftwarePackage:
    epoch, _ = split_epoch(version)
    return make_package(
        FMT,
        line,
        manager=manager,
        name=name,
        version=version,
        ecosystem=target.ecosystem,
        arch=arch,
        source_name=source or name,
        source_version=source_version or version,
        epoch=epoch,
        purl=build_purl(
            "deb", name, version, namespace=target.namespace, qualifiers={"arch": arch, "distro": target.distro}
        ),
        path=path,
    )


def parse_dpkg_status(
    data: bytes | str, os: OsIdentity | None = None, *, path: str = ""
) -> list[SoftwarePackage]:
    """Installed packages of a dpkg status file.

    Only packages whose status is ``installed`` (``install ok installed``, or ``hold ok
    installed`` for held ones) count; ``deinstall ok config-files`` and the like left only
    configuration behind. ``Source: src (ver)`` gives the source package; without it the
    source is the binary package at the same version.
    """
    text = decode(data, FMT)
    target = DebianTarget(os)
    out: list[SoftwarePackage] = []
    fields: dict[str, str] = {}
    lines: dict[str, int] = {}
    start = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            if start:
                _finish(fields, lines, start, target, path, out)
                fields, lines, start = {}, {}, 0
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not start:
                raise InventoryParseError("continuation line outside of a field", fmt=FMT, line=lineno)
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key or "\t" in key:
            raise InventoryParseError(f"expected 'Field: value', got {line[:60]!r}", fmt=FMT, line=lineno)
        if not start:
            start = lineno
        canon = _WANTED.get(key)
        if canon is not None:
            fields[canon] = value.strip()
            lines[canon] = lineno
    if start:
        _finish(fields, lines, start, target, path, out)
    check_count(len(out), FMT)
    return out


def _finish(
    fields: dict[str, str],
    lines: dict[str, int],
    start: int,
    target: DebianTarget,
    path: str,
    out: list[SoftwarePackage],
) -> None:
    name = fields.get("Package")
    if not name:
        raise InventoryParseError("missing in the stanza that starts here", fmt=FMT, line=start, field="Package")
    if not _NAME.fullmatch(name):
        raise InventoryParseError(f"invalid package name {name[:60]!r}", fmt=FMT, line=lines["Package"], field="Package")
    status = fields.get("Status")
    if status is None:
        raise InventoryParseError(f"missing for package {name!r}", fmt=FMT, line=start, field="Status")
    words = status.split()
    if len(words) != 3:
        raise InventoryParseError(
            f"expected 'want flag state', got {status[:60]!r}", fmt=FMT, line=lines["Status"], field="Status"
        )
    if words[2] != "installed":
        return
    version = fields.get("Version")
    if not version:
        raise InventoryParseError(f"missing for installed package {name!r}", fmt=FMT, line=start, field="Version")
    if not _VERSION.fullmatch(version):
        raise InventoryParseError(f"invalid version {version[:60]!r}", fmt=FMT, line=lines["Version"], field="Version")
    arch = fields.get("Architecture", "")
    if arch and not _ARCH.fullmatch(arch):
        raise InventoryParseError(
            f"invalid architecture {arch[:60]!r}", fmt=FMT, line=lines["Architecture"], field="Architecture"
        )
    source, source_version = name, version
    src = fields.get("Source")
    if src:
        m = _SOURCE.fullmatch(src)
        if not m or not _NAME.fullmatch(m.group(1)) or (m.group(2) and not _VERSION.fullmatch(m.group(2))):
            raise InventoryParseError(
                f"expected 'name' or 'name (version)', got {src[:60]!r}", fmt=FMT, line=lines["Source"], field="Source"
            )
        source, source_version = m.group(1), m.group(2) or version
    out.append(deb_package(target, name, version, arch, source, source_version, path=path, line=start))


_SNIFF = re.compile(r"^Package: \S+$", re.MULTILINE)


@register_format
class DpkgStatus(InventoryFormat):
    name = FMT
    priority = 50

    @classmethod
    def sniff(cls, head: str) -> bool:
        return head.startswith("Package:") or (bool(_SNIFF.search(head)) and "\nStatus: " in head)

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_dpkg_status(data, os, path=path), os
