"""Test files made on the spot: EICAR, a file built from a real rule's strings, archive bombs."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "protection"
RULES = DATA / "rules"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def rule_strings(rule_file: Path, prefix: str) -> list[bytes]:
    """The plain text strings ``$<prefix>N = "…"`` of a YARA rule file, as the rule states them."""
    text = rule_file.read_text()
    return [m.encode() for m in re.findall(rf'\${prefix}\d+\s*=\s*"([^"]+)"', text)]


def plague_sample() -> bytes:
    """An ELF-headed file carrying the Plague backdoor rule's own strings (its condition: ELF magic,
    < 1 MB, 2 of the strings) — signature-base's MAL_LNX_PLAGUE_BACKDOOR_Jul25 matches it."""
    strings = rule_strings(RULES / "mal_lnx_plague.yar", "x")
    assert len(strings) >= 2
    return b"\x7fELF\x02\x01\x01" + bytes(57) + b"\0".join(strings) + b"\0"


def deflate_zeros(size: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes and its CRC-32, without compressing ``size`` bytes:
    after a full flush every chunk compresses to the same bytes, so the stream is one block repeated."""
    assert size % chunk == 0
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    again = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    stream = first + again * (size // chunk - 1) + co.flush()
    crc = 0
    for _ in range(size // chunk):
        crc = zlib.crc32(zeros, crc)
    return stream, crc


def zip_of(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip (deflate) from pre-compressed entries ``(name, raw deflate, crc, uncompressed size)``;
    sizes up to 4 GiB - 1 (no zip64)."""
    out, central = b"", b""
    for name, data, crc, size in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size, len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return out + central + end


def nested_bomb(copies: int = 16, inner_size: int = 256 << 20) -> bytes:
    """42.zip's shape, one level: ``copies`` zips each holding ``inner_size`` zeros (16 × 256 MiB = 4 GiB
    expanded from about 4 MB)."""
    stream, crc = deflate_zeros(inner_size)
    inner = zip_of([("zeros.bin", stream, crc, inner_size)])
    stored = zlib.compressobj(9, zlib.DEFLATED, -15)
    inner_deflated = stored.compress(inner) + stored.flush()
    icrc = zlib.crc32(inner)
    return zip_of([(f"part{i}.zip", inner_deflated, icrc, len(inner)) for i in range(copies)])
