"""Pub (Dart): SemVer, except build metadata *does* order versions (pub_semver's ``Version.compareTo``).

``1.0.0 < 1.0.0+build`` and builds compare like pre-release identifiers (numbers below text).
"""

from __future__ import annotations

from ._base import SortKey, register_scheme
from .semver import SemverScheme, identifiers_key


@register_scheme("pub")
class PubScheme(SemverScheme):
    def _key(self, version: str) -> SortKey:
        numbers, pre, build = self._parse(version)
        pre_key = (1,) if pre is None else (0, identifiers_key(pre))
        build_key = (0,) if build is None else (1, identifiers_key(build))
        return (*numbers, pre_key, build_key)
