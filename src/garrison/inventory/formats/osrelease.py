"""An os-release file on its own: no packages, but the OS identity an import needs."""

from __future__ import annotations

import re

from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.osrelease import parse_os_release
from garrison.protocol import OsIdentity, SoftwarePackage

_KV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


@register_format
class OsRelease(InventoryFormat):
    name = "os-release"
    priority = 80

    @classmethod
    def sniff(cls, head: str) -> bool:
        lines = [ln.strip() for ln in head.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
        return bool(lines) and all(_KV.fullmatch(ln) for ln in lines[:-1]) and any(
            ln.startswith(("ID=", "NAME=")) for ln in lines
        )

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return [], parse_os_release(data)
