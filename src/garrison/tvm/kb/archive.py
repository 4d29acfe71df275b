"""Walk files, directories and archives (.zip, .tar[.gz], .gz) into (origin, bytes) inputs.

The kind of a file is decided by its magic bytes, never its name. Archives are untrusted: a member
whose name is absolute or climbs out (``../``), a link, too many members, a member or a total larger
than the limits, or a suspicious compression ratio refuse the whole archive before anything is read.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_FILE = 1024 * 1024 * 1024  # one input, decompressed
MAX_TOTAL = 8 * 1024 * 1024 * 1024  # all members of one archive, decompressed
MAX_MEMBERS = 2_000_000
MAX_RATIO = 200  # decompressed/compressed, for members above RATIO_MIN_SIZE
RATIO_MIN_SIZE = 1024 * 1024
MAX_DEPTH = 2  # archives inside archives


class ArchiveError(ValueError):
    pass


@dataclass
class Input:
    origin: str  # path, with "!member" for archive members
    data: bytes | None = None
    error: str | None = None


def _kind(head: bytes) -> str:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "plain"


def _safe_member_name(name: str) -> bool:
    if not name or "\x00" in name:
        return False
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return False
    return ".." not in norm.split("/")


def _gunzip(stream: IO[bytes], limit: int = MAX_FILE) -> bytes:
    """Decompress a gzip stream (all members), refusing output beyond ``limit``."""
    out = bytearray()
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    in_member = False
    while True:
        chunk = stream.read(1024 * 1024)
        if not chunk:
            break
        while chunk:
            in_member = True
            out += dec.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit:
                raise ArchiveError(f"decompressed size exceeds {limit} bytes")
            if dec.eof:
                chunk = dec.unused_data
                dec = zlib.decompressobj(16 + zlib.MAX_WBITS)  # concatenated gzip members
                in_member = False
            else:
                chunk = dec.unconsumed_tail
    if in_member:
        raise ArchiveError("truncated gzip stream")
    return bytes(out)


def check_zip(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"more than {MAX_MEMBERS} members")
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        if not _safe_member_name(info.filename):
            raise ArchiveError(f"member {info.filename[:200]!r} escapes the archive")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"member {info.filename[:200]!r} is a symbolic link")
        if info.is_dir():
            continue
        if info.file_size > MAX_FILE:
            raise ArchiveError(f"member {info.filename[:200]!r} is larger than {MAX_FILE} bytes")
        if info.file_size > RATIO_MIN_SIZE and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ArchiveError(f"member {info.filename[:200]!r} has a compression ratio above {MAX_RATIO}")
        total += info.file_size
        if total > MAX_TOTAL:
            raise ArchiveError(f"members add up to more than {MAX_TOTAL} bytes")
        files.append(info)
    return files


def check_tar(tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    total = 0
    files: list[tarfile.TarInfo] = []
    for count, member in enumerate(tf):
        if count >= MAX_MEMBERS:
            raise ArchiveError(f"more than {MAX_MEMBERS} members")
        if not _safe_member_name(member.name):
            raise ArchiveError(f"member {member.name[:200]!r} escapes the archive")
        if member.issym() or member.islnk():
            raise ArchiveError(f"member {member.name[:200]!r} is a link")
        if member.isdir():
            continue
        if not member.isfile():
            raise ArchiveError(f"member {member.name[:200]!r} is not a regular file")
        if member.size > MAX_FILE:
            raise ArchiveError(f"member {member.name[:200]!r} is larger than {MAX_FILE} bytes")
        total += member.size
        if total > MAX_TOTAL:
            raise ArchiveError(f"members add up to more than {MAX_TOTAL} bytes")
        files.append(member)
    return files


def _read_bounded(fh: IO[bytes], declared: int) -> bytes:
    data = fh.read(min(declared, MAX_FILE) + 1)
    if len(data) > declared:
        raise ArchiveError("member is larger than its header says")
    return data


def _expand(origin: str, opener: IO[bytes], head: bytes, depth: int) -> Iterator[Input]:
    """Inputs of one opened file-like object, expanding archives."""
    kind = _kind(head)
    if kind != "plain" and depth >= MAX_DEPTH:
        yield Input(origin, error=f"{origin}: archive nested deeper than {MAX_DEPTH} levels")
        return
    try:
        if kind == "zip":
            with zipfile.ZipFile(opener) as zf:
                members = check_zip(zf)
                for info in sorted(members, key=lambda i: i.filename):
                    with zf.open(info) as fh:
                        data = _read_bounded(fh, info.file_size)
                    yield from _expand_bytes(f"{origin}!{info.filename}", data, depth + 1)
            return
        if kind == "tar":
            yield from _expand_tar(origin, opener, "r:", depth)
            return
        if kind == "gzip":
            data = _gunzip(opener)
            if _kind(data[:512]) == "tar":
                yield from _expand_tar(origin, io.BytesIO(data), "r:", depth)
                return
            # A gzip of one file is the file itself (same nesting level).
            if _kind(data[:512]) != "plain":
                yield from _expand_bytes(origin, data, depth + 1)
                return
            yield Input(origin, data=data)
            return
        data = opener.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise ArchiveError(f"larger than {MAX_FILE} bytes")
        yield Input(origin, data=data)
    except ArchiveError as exc:
        yield Input(origin, error=f"{origin}: refused: {exc}")
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        yield Input(origin, error=f"{origin}: unreadable archive: {exc}")


def _expand_tar(origin: str, fileobj: IO[bytes], mode: str, depth: int) -> Iterator[Input]:
    with tarfile.open(fileobj=fileobj, mode=mode) as tf:  # type: ignore[call-overload]
        members = check_tar(tf)
        for member in sorted(members, key=lambda m: m.name):
            fh = tf.extractfile(member)
            if fh is None:
                continue
            data = _read_bounded(fh, member.size)
            yield from _expand_bytes(f"{origin}!{member.name}", data, depth + 1)


def _expand_bytes(origin: str, data: bytes, depth: int) -> Iterator[Input]:
    if _kind(data[:512]) == "plain":
        yield Input(origin, data=data)
        return
    yield from _expand(origin, io.BytesIO(data), data[:512], depth)


def iter_inputs(paths: list[str | Path] | str | Path) -> Iterator[Input]:
    """Every file under ``paths`` (hidden files and directories skipped), archives expanded."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        yield from _file(Path(root) / name)
        elif path.is_file():
            yield from _file(path)
        else:
            yield Input(str(path), error=f"{path}: no such file or directory")


def _file(path: Path) -> Iterator[Input]:
    origin = posixpath.join(*path.parts) if path.parts else str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
            fh.seek(0)
            yield from _expand(origin, fh, head, 0)
    except OSError as exc:
        yield Input(origin, error=f"{origin}: cannot read: {exc.strerror}")
