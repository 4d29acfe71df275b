"""Hash reputation: known-bad MD5, SHA1 and SHA256 values with a name.

Lists are data in LOKI's format (``HASH;COMMENT``, ``#`` comments), as signature-base's
``iocs/hash-iocs.txt``; the tenant's file indicators join the same table later. The kind of a hash
is its length. A malformed line is counted, never fatal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_KIND_BY_LENGTH = {32: "MD5", 40: "SHA1", 64: "SHA256"}
MAX_LIST_BYTES = 64 << 20  # a hash list bigger than this is refused rather than read into memory
MAX_NAME = 256


@dataclass(frozen=True)
class FileHashes:
    md5: str
    sha1: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> FileHashes:
        return cls(hashlib.md5(data, usedforsecurity=False).hexdigest(),
                   hashlib.sha1(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest())


@dataclass
class HashReputation:
    """``lookup(hashes)`` → the name of the first list entry matching any of the three hashes."""

    entries: dict[str, str] = field(default_factory=dict)  # lower-case hex → name
    malformed: int = 0

    def add(self, value: str, name: str) -> bool:
        value = value.strip().lower()
        if len(value) not in _KIND_BY_LENGTH or not _HEX.match(value):
            self.malformed += 1
            return False
        self.entries[value] = name.strip()[:MAX_NAME] or f"{_KIND_BY_LENGTH[len(value)]} indicator"
        return True

    def add_lines(self, lines: Iterable[str]) -> int:
        added = 0
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            value, _, comment = line.partition(";")
            added += self.add(value, comment)
        return added

    def load(self, path: Path) -> int:
        if path.stat().st_size > MAX_LIST_BYTES:
            raise ValueError(f"{path}: hash list larger than {MAX_LIST_BYTES} bytes")
        return self.add_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())

    def lookup(self, hashes: FileHashes) -> str | None:
        for value in (hashes.sha256, hashes.sha1, hashes.md5):
            name = self.entries.get(value)
            if name is not None:
                return name
        return None

    def __len__(self) -> int:
        return len(self.entries)
