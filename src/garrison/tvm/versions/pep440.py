"""PyPI: PEP 440 via ``packaging``, with pre-PEP 440 ("legacy") strings ordered as setuptools did.

``packaging`` parses; the key is rebuilt from its public fields as a plain tuple (same order as
``Version.__lt__``, but compared in C). ``packaging`` >= 22 rejects legacy strings such as
``0.9-doduo``, yet old PyPI releases and advisories still use them, so those fall back to the
``LegacyVersion`` ordering of packaging 21: every legacy version sorts before every PEP 440 one.
"""

from __future__ import annotations

import math
import re

from packaging.version import InvalidVersion as _PackagingInvalid
from packaging.version import Version

from ._base import SortKey, VersionScheme, register_scheme

_LEGACY_PART = re.compile(r"(\d+|[a-z]+|\.|-)")
_LEGACY_REPLACE = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _legacy_parts(s: str) -> tuple[str, ...]:
    """packaging 21's ``_legacy_cmpkey`` parts (setuptools' old parse_version)."""
    parts: list[str] = []
    for raw in [*_LEGACY_PART.split(s.lower()), "final"]:
        part = _LEGACY_REPLACE.get(raw, raw)
        if not part or part == ".":
            continue
        part = part.zfill(8) if part[0].isdigit() else "*" + part
        if part.startswith("*"):
            # Drop "-" before a pre-release marker and trailing zeros before any marker.
            if part < "*final":
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(part)
    return tuple(parts)


def _pep440_key(v: Version) -> tuple[object, ...]:
    release = list(v.release)
    while len(release) > 1 and release[-1] == 0:  # 1.0 == 1.0.0
        release.pop()
    # A bare .devN (no pre/post) sorts before any pre-release of the same release.
    if v.pre is None and v.post is None and v.dev is not None:
        pre: tuple[object, ...] = (0,)
    elif v.pre is None:
        pre = (2,)
    else:
        pre = (1, v.pre[0], v.pre[1])  # "a" < "b" < "rc" as strings
    post = -1 if v.post is None else v.post
    dev = math.inf if v.dev is None else v.dev
    if v.local is None:
        local: tuple[object, ...] = (0,)
    else:
        # Numeric local segments sort above alphanumeric ones.
        local = (1, tuple((1, p, "") if isinstance(p, int) else (0, 0, p) for p in _local_parts(v)))
    return (v.epoch, tuple(release), pre, post, dev, local)


def _local_parts(v: Version) -> list[int | str]:
    assert v.local is not None
    return [int(p) if p.isdigit() else p for p in re.split(r"[._-]", v.local)]


@register_scheme("pep440")
class Pep440Scheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        try:
            parsed = Version(version)
        except _PackagingInvalid:
            if not any(c.isalnum() for c in version):
                raise self.invalid(version, "no letters or digits") from None
            return (0, _legacy_parts(version))
        return (1, _pep440_key(parsed))
