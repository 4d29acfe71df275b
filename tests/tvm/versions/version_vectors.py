"""Loader for the version-comparison vectors in tests/data/versions/ (see PROVENANCE.md there)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

DATA = Path(__file__).resolve().parents[2] / "data" / "versions"

# Vector file prefix -> schemes that must agree with it.
FILE_SCHEMES: dict[str, tuple[str, ...]] = {
    "alpine": ("apk",),
    "cran": ("cran",),
    "debian": ("dpkg",),
    "hackage": ("hackage",),
    "maven": ("maven",),
    "nuget": ("nuget",),
    "packagist": ("packagist",),
    "pub": ("pub",),
    "pypi": ("pep440",),
    "redhat": ("rpm",),
    "rubygems": ("rubygems",),
    "semver": ("semver", "go"),
}

EXPECTED = {"<": -1, "=": 0, ">": 1}


class Vector(NamedTuple):
    file: str
    line: int
    a: str
    op: str
    b: str


@functools.cache
def load(prefix: str) -> tuple[Vector, ...]:
    """Every comparison in ``<prefix>-versions*.txt``."""
    out: list[Vector] = []
    for path in sorted(DATA.glob(f"{prefix}-versions*.txt")):
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", "//")):
                continue
            a, op, b = line.split(" ")
            assert op in EXPECTED, f"{path.name}:{n}: bad operator {op!r}"
            out.append(Vector(path.name, n, a, op, b))
    return tuple(out)


def versions(prefix: str) -> list[str]:
    """The distinct version strings in a prefix's files, in first-seen order."""
    seen: dict[str, None] = {}
    for v in load(prefix):
        seen.setdefault(v.a)
        seen.setdefault(v.b)
    return list(seen)
