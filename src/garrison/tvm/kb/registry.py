"""The registry of feed importers. An importer is a class registered by name; adding one is adding
one module under :mod:`garrison.tvm.kb.importers` (every module there is imported)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, TypeVar

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


_REGISTRY: dict[str, type[Importer]] = {}
_loaded = False

T = TypeVar("T", bound=type[Importer])


def register_importer(cls: T) -> T:
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__name__} has no name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"importer {name!r} is already registered")
    _REGISTRY[name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    package = importlib.import_module("garrison.tvm.kb.importers")
    for mod in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{mod.name}")
    _loaded = True


_instances: list[Importer] = []


def importers() -> list[Importer]:
    """Every registered importer, in detection order."""
    _load()
    if len(_instances) != len(_REGISTRY):
        _instances[:] = [cls() for cls in sorted(_REGISTRY.values(), key=lambda c: (c.priority, c.name))]
    return list(_instances)


def get_importer(name: str) -> Importer:
    _load()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"no importer named {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


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
