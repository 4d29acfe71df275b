"""Inventory formats: one plugin class per format, recognised from the content.

A format is a class registered with :func:`register_format`; adding one is adding one
module to this package (every module here is discovered by ``FORMATS``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from garrison.inventory.errors import InventoryParseError
from garrison.protocol import OsIdentity, SoftwarePackage
from garrison.registry import Registry

SNIFF_BYTES = 16 * 1024


class InventoryFormat(ABC):
    name: ClassVar[str]
    # Lower sniffs first: the strict, structured formats before the loose line formats.
    priority: ClassVar[int] = 100

    @classmethod
    @abstractmethod
    def sniff(cls, head: str) -> bool:
        """True when ``head`` (the first bytes of the file, decoded, stripped) is this format."""

    @abstractmethod
    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        """Packages, and the OS identity the document names (or ``os``)."""


FORMATS: Registry[type[InventoryFormat]] = Registry(
    "inventory format", package=__name__, name_of=lambda cls: cls.name, order=lambda cls: cls.priority,
    unknown=InventoryParseError)
"""Every module of this package is discovered; iteration is sniffing order."""


def register_format(cls: type[InventoryFormat]) -> type[InventoryFormat]:
    return FORMATS.register(cls)


def detect_format(data: bytes) -> str:
    """Name of the format of ``data`` (``dpkg-status``, ``cyclonedx-json``, …) from its content."""
    head = data[:SNIFF_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not head:
        raise InventoryParseError("empty input")
    for cls in FORMATS.values():
        if cls.sniff(head):
            return cls.name
    raise InventoryParseError(
        "unrecognised inventory format; expected one of: " + ", ".join(sorted(FORMATS))
    )


def parse_inventory(
    data: bytes, *, os: OsIdentity | None = None, fmt: str | None = None, path: str = ""
) -> tuple[list[SoftwarePackage], OsIdentity | None]:
    """Parse an inventory of any known format (detected unless ``fmt`` is given).

    ``os`` decides the ecosystem of distro packages; SBOMs that name their OS supply it
    when ``os`` is None. Returns the packages and the OS identity in effect.
    """
    name = fmt or detect_format(data)
    return FORMATS[name]().parse(data, os=os, path=path)
