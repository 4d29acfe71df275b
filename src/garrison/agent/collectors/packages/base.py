"""The package-source plugin interface and its registry.

A source has two steps so that an unchanged device costs only a few stats and hashes:
``fingerprint`` (cheap, no parsing: stat and hash the package database) and ``collect``
(parse it). The inventory collector calls ``collect`` only when the fingerprint changed.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from garrison.agent.collectors.base import AgentContext
from garrison.protocol import OsIdentity, SoftwarePackage
from garrison.registry import Registry

# Package databases larger than this are not hashed, only stat()ed (mtime, size, inode).
MAX_HASH_BYTES = 256 * 1024 * 1024


class SourceSkipped(Exception):
    """The source applies to this device but cannot run here; the message goes to health."""


class PackageSource(ABC):
    name: ClassVar[str]

    def __init__(self) -> None:
        # Problems that did not stop the source (an unreadable entry skipped), for health.
        self.notes: list[str] = []

    @abstractmethod
    def fingerprint(self, ctx: AgentContext) -> str | None:
        """A token that changes whenever ``collect`` would return something else.

        None when the package manager is absent from the device. Raise
        :class:`SourceSkipped` when it is present but cannot be read here.
        """

    @abstractmethod
    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        """The installed packages (may raise; the collector keeps the previous result)."""


PACKAGE_SOURCES: Registry[type[PackageSource]] = Registry(
    "package source", package="garrison.agent.collectors.packages", name_of=lambda cls: cls.name)


def register_package_source(cls: type[PackageSource]) -> type[PackageSource]:
    return PACKAGE_SOURCES.register(cls)


def load_package_sources() -> Registry[type[PackageSource]]:
    return PACKAGE_SOURCES


def files_fingerprint(paths: Iterable[Path], *, content: bool = True) -> str | None:
    """Hash of stat facts (and, when ``content``, the bytes) of the existing files; None if none exist.

    The content hash makes the token exact even where two writes share an mtime tick;
    hashing a multi-MB status file costs a few milliseconds.
    """
    h = hashlib.blake2b(digest_size=16)
    found = False
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        found = True
        h.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\0{st.st_ino}\0".encode())
        if content and st.st_size <= MAX_HASH_BYTES:
            try:
                with path.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            except OSError as exc:
                h.update(f"unreadable:{exc.errno}".encode())
    return h.hexdigest() if found else None


def device_path(ctx: AgentContext, path: Path) -> str:
    """The absolute path on the device of ``path`` (which lies under ``ctx.root``)."""
    try:
        rel = path.relative_to(ctx.root)
    except ValueError:
        return str(path)
    return "/" + str(rel) if str(rel) != "." else "/"


def root_is_host(ctx: AgentContext) -> bool:
    """True when the agent reads the running system itself (not a prepared tree)."""
    try:
        return os.path.samefile(ctx.root, "/")
    except OSError:
        return False
