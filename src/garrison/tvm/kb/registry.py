"""The registry of feed importers. An importer is a class registered by name; adding one is adding
one module under :mod:`garrison.tvm.kb.importers` (every module there is imported)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, TypeVar

from garrison.registry import Registry
from garrison.tvm.kb.records import Record

HEAD_BYTES = 64 * 1024  # detection reads at most this much of a file


class Importer:
    """Base class: recognise a feed format from content, turn it into normalised records."""

    name: ClassVar[str]
    # Detection order: lower first (more specific formats before generic ones).
    priority: ClassVar[int] = 100
    # Official feed URLs for online sync: {path under a mirror base URL: official URL}.
    default_urls: ClassVar[dict[str, str]] = {}

    def detect(self, path_or_bytes: bytes | str | Path) -> bool:
        """True when the content (not the file name) is in this importer's format."""
        return self.sniff(read_head(path_or_bytes))

    def sniff(self, head: bytes) -> bool:
        """True when ``head`` (the first bytes of a decompressed file) is in this importer's format."""
        raise NotImplementedError

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        """Yield records; a malformed record yields a RecordError naming ``origin`` and the field."""
        raise NotImplementedError


IMPORTERS: Registry[type[Importer]] = Registry("feed importer", package="garrison.tvm.kb.importers",
                                               name_of=lambda cls: cls.name, order=lambda cls: cls.priority)
"""Every module of ``garrison.tvm.kb.importers`` is discovered; iteration is detection order."""

T = TypeVar("T", bound=type[Importer])


def register_importer(cls: T) -> T:
    return IMPORTERS.register(cls)


_instances: dict[str, Importer] = {}


def importers() -> list[Importer]:
    """Every registered importer (one shared instance each), in detection order."""
    return [_instances.get(name) or _instances.setdefault(name, cls()) for name, cls in IMPORTERS.items()]


def get_importer(name: str) -> Importer:
    return IMPORTERS[name]()


def read_head(path_or_bytes: bytes | str | Path) -> bytes:
    if isinstance(path_or_bytes, (str, Path)):
        with open(path_or_bytes, "rb") as fh:
            return fh.read(HEAD_BYTES)
    return bytes(path_or_bytes[:HEAD_BYTES])


def detect(path_or_bytes: bytes | str | Path) -> Importer | None:
    """The importer whose format the content is in, or None."""
    head = read_head(path_or_bytes)
    for imp in importers():
        if imp.sniff(head):
            return imp
    return None
