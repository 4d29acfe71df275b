"""CRAN (R packages): ``package_version``, numbers separated by ``.`` or ``-``.

Hand-written: numbers compare by value; when one version is a prefix of the other the longer is
newer (``0.1.0 < 0.1.0.0``), which is exactly tuple order.
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_SHAPE = re.compile(r"[0-9]+(?:[.-][0-9]+)*")


@register_scheme("cran")
class CranScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        if not _SHAPE.fullmatch(version):
            raise self.invalid(version, "expected numbers separated by '.' or '-'")
        return tuple(int(p) for p in re.split(r"[.-]", version))
