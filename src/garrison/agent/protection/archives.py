"""Archive members (zip, tar, gzip/bzip2/xz), read within limits.

An archive is untrusted input: every byte it expands to is counted against one budget per scanned
file (``ArchiveLimits.max_total_bytes``), every member against ``max_member_bytes``, members against
``max_members`` and nesting against ``max_depth``. Reading stops at a limit; it never decompresses
more than the budget, so a zip bomb (42.zip, an overlapping-member zip, a gzip of zeros) costs a
bounded amount of time and memory. A limit reached with a high expansion ratio is an archive bomb
(reported as a detection by the engine); other limits make the scan of that archive incomplete
(reported in the scan record).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

CHUNK = 1 << 20
# The compressed size behind what was expanded: a member's size in a zip, or how far a compressed
# stream has been read (a function: it grows while the stream is read).
Compressed = int | Callable[[], int]


def _size(compressed: Compressed) -> int:
    return max(compressed() if callable(compressed) else compressed, 1)


@dataclass(frozen=True)
class ArchiveLimits:
    max_depth: int = 3  # archives inside archives inside archives
    max_member_bytes: int = 32 << 20  # one member held in memory for scanning
    max_total_bytes: int = 256 << 20  # everything one scanned file expands to
    max_members: int = 10_000
    bomb_ratio: int = 100  # expanded / compressed at a limit → bomb (deflate's best is ~1032:1)


class LimitReached(Exception):
    def __init__(self, reason: str, *, bomb: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bomb = bomb


class Budget:
    """What one scanned file may still expand to (shared by every nesting level)."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.bytes_left = limits.max_total_bytes
        self.members_left = limits.max_members
        self.expanded = 0

    def take(self, n: int, compressed: Compressed) -> None:
        self.bytes_left -= n
        self.expanded += n
        if self.bytes_left < 0:
            raise LimitReached("total_bytes", bomb=self.expanded >= self.limits.bomb_ratio * _size(compressed))

    def member(self) -> None:
        self.members_left -= 1
        if self.members_left < 0:
            raise LimitReached("members")


class _Counted(io.RawIOBase):
    """A decompressed stream whose every byte is charged to the budget."""

    def __init__(self, inner: IO[bytes], budget: Budget, compressed: Compressed) -> None:
        self.inner, self.budget, self.compressed = inner, budget, compressed

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(b), CHUNK))
        self.budget.take(len(data), self.compressed)
        b[: len(data)] = data
        return len(data)


def kind_of(head: bytes) -> str | None:
    """The archive or compression format from a file's first 512 bytes."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def read_member(reader: IO[bytes], budget: Budget, compressed: Compressed) -> bytes:
    """The member's bytes, at most ``max_member_bytes``; beyond that :class:`LimitReached`."""
    cap = budget.limits.max_member_bytes
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = reader.read(min(CHUNK, cap + 1 - size))
        if not chunk:
            return b"".join(parts)
        budget.take(len(chunk), compressed)
        size += len(chunk)
        if size > cap:
            raise LimitReached("member_bytes", bomb=size >= budget.limits.bomb_ratio * _size(compressed))
        parts.append(chunk)


def members(fileobj: IO[bytes], kind: str, budget: Budget, compressed: Compressed) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each regular member; raises :class:`LimitReached` at a limit and
    ``ValueError`` on a malformed archive."""
    try:
        if kind == "zip":
            yield from _zip_members(fileobj, budget)
        elif kind == "tar":
            yield from _tar_members(fileobj, budget, compressed)
        else:
            yield from _compressed_members(fileobj, kind, budget, compressed)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, lzma.LZMAError,
            zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted zip member (no password); NotImplementedError: an unknown method.
        raise ValueError(f"{kind}: {type(exc).__name__}: {exc}") from None


def _zip_members(fileobj: IO[bytes], budget: Budget) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(fileobj) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            budget.member()
            # The compressed bytes behind the part of the member that fits in memory, pro rata of the
            # declared sizes (a header that lies about them only makes a bomb look like a big file:
            # the limits hold either way).
            cap = budget.limits.max_member_bytes
            share = min(info.compress_size, info.compress_size * cap // max(info.file_size, 1))
            with zf.open(info) as reader:
                yield info.filename, read_member(reader, budget, share)


def _tar_members(fileobj: IO[bytes], budget: Budget, compressed: Compressed) -> Iterator[tuple[str, bytes]]:
    # Stream mode: members are read in order, skipped ones read through (and charged) — never seeked.
    with tarfile.open(fileobj=fileobj, mode="r|") as tf:
        for info in tf:
            if not info.isreg():
                continue
            budget.member()
            reader = tf.extractfile(info)
            if reader is not None:
                yield info.name, read_member(reader, budget, compressed)


_DECOMPRESSORS = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}


def _compressed_members(fileobj: IO[bytes], kind: str, budget: Budget,
                        compressed: Compressed) -> Iterator[tuple[str, bytes]]:
    """A compressed stream: a tarball inside, or one compressed file (its content is the member)."""
    del compressed  # the ratio is taken on what has been read of the stream so far
    compressed = fileobj.tell
    stream = io.BufferedReader(_Counted(_DECOMPRESSORS[kind](fileobj=fileobj), budget, compressed), CHUNK)
    head = stream.peek(512)[:512]
    if kind_of(head) == "tar":
        yield from _tar_members(stream, _Uncharged(budget), compressed)
        return
    budget.member()
    yield "", read_member(stream, _Uncharged(budget), compressed)


class _Uncharged(Budget):
    """The budget of a stream that :class:`_Counted` already charges: only the member cap applies."""

    def __init__(self, budget: Budget) -> None:
        self.limits, self.bytes_left, self.members_left, self.expanded = (budget.limits, 1 << 62, 1 << 62, 0)
        self._outer = budget

    def take(self, n: int, compressed: Compressed) -> None:
        return None

    def member(self) -> None:
        self._outer.member()
