"""Hackage (Haskell): ``Data.Version`` branches, dot-separated numbers in lexicographic order.

Hand-written: ``1.0 < 1.0.0`` (a longer version with the same prefix is newer), i.e. tuple order.
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_SHAPE = re.compile(r"[0-9]+(?:\.[0-9]+)*")


@register_scheme("hackage")
class HackageScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        if not _SHAPE.fullmatch(version):
            raise self.invalid(version, "expected dot-separated numbers")
        return tuple(int(p) for p in version.split("."))
