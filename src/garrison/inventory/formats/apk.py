"""apk installed database (``/lib/apk/db/installed``): ``X:value`` lines, blank line between packages."""

from __future__ import annotations

import re
from collections.abc import Iterator

from garrison.inventory.common import check_count, decode, make_package
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.osrelease import ecosystem_for
from garrison.inventory.purl import build_purl
from garrison.protocol import OsIdentity, SoftwarePackage

FMT = "apk-installed"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]*")
_ARCH = re.compile(r"[a-z0-9_]+")
_FIELD_NAMES = {"P": "P (name)", "V": "V (version)", "A": "A (arch)", "o": "o (origin)"}


def _stanzas(text: str) -> Iterator[tuple[int, list[tuple[int, str, str]]]]:
    """(start line, [(line, key, value)]) per package; raises on a line that is not ``X:value``."""
    entries: list[tuple[int, str, str]] = []
    start = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            if entries:
                yield start, entries
                entries, start = [], 0
            continue
        if len(line) < 2 or line[1] != ":" or not line[0].isalpha():
            raise InventoryParseError(f"expected 'X:value', got {line[:60]!r}", fmt=FMT, line=lineno)
        if not entries:
            start = lineno
        entries.append((lineno, line[0], line[2:]))
    if entries:
        yield start, entries


def parse_apk_installed(
    data: bytes | str, os: OsIdentity | None = None, *, path: str = ""
) -> list[SoftwarePackage]:
    """Packages of an apk installed db; the origin (``o:``) is the source package (what secdb tracks)."""
    text = decode(data, FMT)
    ecosystem = ecosystem_for(os) if os else ""
    namespace = (os.id if os and os.id else "alpine").lower()
    distro = os.version_id if os else ""
    out: list[SoftwarePackage] = []
    for start, entries in _stanzas(text):
        f: dict[str, tuple[int, str]] = {}
        for lineno, key, value in entries:
            if key in _FIELD_NAMES and key not in f:
                f[key] = (lineno, value.strip())
        for key in ("P", "V"):
            if key not in f or not f[key][1]:
                raise InventoryParseError(
                    f"missing in the package starting at line {start}", fmt=FMT, line=start, field=_FIELD_NAMES[key]
                )
        for key, rx in (("P", _NAME), ("V", _VERSION), ("A", _ARCH), ("o", _NAME)):
            if key in f and f[key][1] and not rx.fullmatch(f[key][1]):
                raise InventoryParseError(
                    f"invalid value {f[key][1][:60]!r}", fmt=FMT, line=f[key][0], field=_FIELD_NAMES[key]
                )
        name, version = f["P"][1], f["V"][1]
        arch = f.get("A", (0, ""))[1]
        origin = f.get("o", (0, ""))[1] or name
        out.append(
            make_package(
                FMT,
                start,
                manager="apk",
                name=name,
                version=version,
                ecosystem=ecosystem,
                arch=arch,
                source_name=origin,
                source_version=version,  # subpackages are built from their origin at the same version
                purl=build_purl("apk", name, version, namespace=namespace, qualifiers={"arch": arch, "distro": distro}),
                path=path,
            )
        )
    check_count(len(out), FMT)
    return out


def iter_apk_files(data: bytes | str) -> Iterator[tuple[str, str]]:
    """(absolute path, package name) for every file the db lists (``F:`` directory, ``R:`` file)."""
    text = decode(data, FMT)
    for _start, entries in _stanzas(text):
        name = ""
        directory = ""
        for _lineno, key, value in entries:
            if key == "P":
                name = value.strip()
            elif key == "F":
                directory = value.strip().strip("/")
            elif key == "R" and name:
                yield ("/" + directory + "/" + value.strip()) if directory else "/" + value.strip(), name


_SNIFF = re.compile(r"^P:\S+$", re.MULTILINE)
_SNIFF_V = re.compile(r"^V:\S+$", re.MULTILINE)


@register_format
class ApkInstalled(InventoryFormat):
    name = FMT
    priority = 50

    @classmethod
    def sniff(cls, head: str) -> bool:
        first = head.split("\n", 1)[0]
        return len(first) >= 2 and first[1] == ":" and bool(_SNIFF.search(head)) and bool(_SNIFF_V.search(head))

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_apk_installed(data, os, path=path), os
