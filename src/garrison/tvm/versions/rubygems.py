"""RubyGems: ``Gem::Version#<=>``.

Hand-written. Segments are runs of digits or letters (``-`` means ``.pre.``); trailing zeros are
dropped from the release part and from the pre-release part (``canonical_segments``); then segments
compare pairwise with the shorter side padded by 0, where any string is below any number.
univers rejects forms RubyGems orders (``1beta``).
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)
_SHAPE = re.compile(r"[0-9][0-9A-Za-z.\-]*")
_END = (1,)


def canonical_segments(version: str) -> list[int | str]:
    segments: list[int | str] = [
        int(s) if s[0].isdigit() else s for s in _SEGMENT.findall(version.replace("-", ".pre."))
    ]
    first_str = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    release, prerelease = segments[:first_str], segments[first_str:]
    for part in (release, prerelease):
        while part and part[-1] == 0:
            part.pop()
    return release + prerelease


def gem_key(version: str) -> tuple[tuple[object, ...], ...]:
    """Tuple whose order equals Gem::Version's zero-padded segment comparison.

    Padding with 0 means a run of zeros only matters through what follows it. So each non-zero
    segment is stored with the count ``k`` of zeros before it: a string at k sorts below the
    end (all zeros), and lower the sooner it comes; a number above the end, higher the sooner.
    """
    out: list[tuple[object, ...]] = []
    zeros = 0
    for seg in canonical_segments(version):
        if seg == 0:
            zeros += 1
            continue
        out.append((0, zeros, seg) if isinstance(seg, str) else (2, -zeros, seg))
        zeros = 0
    out.append(_END)
    return tuple(out)


@register_scheme("rubygems")
class RubygemsScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        # Gem::Version.correct? is stricter (no "1beta"); accept what <=> can order, as OSV does.
        if not _SHAPE.fullmatch(version):
            raise self.invalid(version, "expected digits, letters, '.' and '-', starting with a digit")
        return gem_key(version)
