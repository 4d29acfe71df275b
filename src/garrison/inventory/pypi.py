"""Python distribution names and core-metadata headers."""

from __future__ import annotations

import re

from garrison.inventory.errors import InventoryParseError

_RUN = re.compile(r"[-_.]+")


def normalize_pypi_name(name: str) -> str:
    """PEP 503: lowercase, every run of ``-``, ``_`` and ``.`` becomes one ``-``."""
    return _RUN.sub("-", name).lower()


def parse_core_metadata(text: str, *, fmt: str = "python-metadata") -> tuple[str, str]:
    """Name and Version from a METADATA / PKG-INFO header block (RFC 822 style).

    Only the header block is read: the body after the first blank line is the description.
    """
    name = version = ""
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            break
        if line[:1] in " \t":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise InventoryParseError(f"expected 'Field: value', got {line[:60]!r}", fmt=fmt, line=lineno)
        key = key.strip().lower()
        if key == "name" and not name:
            name = value.strip()
        elif key == "version" and not version:
            version = value.strip()
    if not name:
        raise InventoryParseError("missing", fmt=fmt, field="Name")
    if not version:
        raise InventoryParseError("missing", fmt=fmt, field="Version")
    return name, version
