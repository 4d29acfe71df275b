"""Helpers shared by the format parsers: decoding, bounds, package construction."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from garrison.inventory.errors import InventoryParseError
from garrison.protocol import MAX_PACKAGES, SoftwarePackage

# Agentless uploads are untrusted; the largest real package databases are a few MB.
MAX_INPUT_BYTES = 64 * 1024 * 1024


def decode(data: bytes | str, fmt: str) -> str:
    """Text of an upload: bounded, UTF-8 (bad bytes, e.g. Latin-1 descriptions, replaced), LF only."""
    if isinstance(data, bytes):
        if len(data) > MAX_INPUT_BYTES:
            raise InventoryParseError(f"input larger than {MAX_INPUT_BYTES} bytes", fmt=fmt)
        text = data.decode("utf-8", errors="replace")
    else:
        if len(data) > MAX_INPUT_BYTES:
            raise InventoryParseError(f"input larger than {MAX_INPUT_BYTES} characters", fmt=fmt)
        text = data
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def make_package(fmt: str, line: int | None = None, where: str = "", **fields: Any) -> SoftwarePackage:
    """Build a validated :class:`SoftwarePackage`; a bad field becomes an InventoryParseError."""
    try:
        return SoftwarePackage(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        prefix = f"{where}: " if where else ""
        raise InventoryParseError(
            f"{prefix}{err['msg']} (package {str(fields.get('name', ''))[:80]!r})", fmt=fmt, line=line, field=name
        ) from None


def check_count(n: int, fmt: str) -> None:
    if n > MAX_PACKAGES:
        raise InventoryParseError(f"more than {MAX_PACKAGES} packages", fmt=fmt)


def split_epoch(version: str) -> tuple[str, str]:
    """``1:2.29.2-1`` → ``("1", "2.29.2-1")``; no epoch → ``("", version)``."""
    head, sep, tail = version.partition(":")
    if sep and head.isdigit():
        return head, tail
    return "", version
