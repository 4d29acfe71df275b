"""SemVer 2.0 precedence (npm, crates.io, Hex) and Go module versions.

Hand-written. ``semver`` and ``semantic_version`` (and univers, which wraps the latter) reject what
advisories actually contain (a leading ``v``, fewer than three components, huge numbers), so the
parser is the lenient one OSV uses: an optional ``v``, dot-separated numbers, then everything from
the first other character is pre-release / build text. Missing components are 0 (``1 == 1.0.0``).
"""

from __future__ import annotations

from typing import NamedTuple

from ._base import SortKey, VersionScheme, register_scheme

_RELEASE = (1,)  # no pre-release sorts after any pre-release


class SemverParts(NamedTuple):
    numbers: tuple[int, ...]  # exactly ``width`` numbers, zero-padded
    prerelease: str | None  # without the leading '-', None if absent
    build: str | None  # after the first '+', None if absent


def parse_semver_like(version: str, width: int) -> SemverParts | None:
    """Split a lenient SemVer-ish string; None when it does not start with a number."""
    s = version.removeprefix("v")
    numbers: list[int] = []
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and "0" <= s[j] <= "9":
            j += 1
        if j == i:
            break
        numbers.append(int(s[i:j]))
        i = j
        if i < len(s) and s[i] == ".":
            i += 1  # a dot only separates; "1.2.beta" has pre-release "beta"
        else:
            break
    if not numbers:
        return None
    rest = s[i:]
    head, plus, build = rest.partition("+")
    pre = head.removeprefix("-")
    # Components past ``width`` (e.g. "1.2.3.4" in npm) are not part of the release; like OSV, treat
    # them as leading pre-release identifiers, so they still order deterministically.
    extra = [str(n) for n in numbers[width:]]
    if extra:
        pre = ".".join(extra + ([pre] if pre else []))
    numbers = numbers[:width] + [0] * (width - len(numbers))
    return SemverParts(tuple(numbers), pre or None, build if plus else None)


def identifiers_key(text: str, fold_case: bool = False) -> tuple[tuple[int, object], ...]:
    """SemVer identifier order: numeric ones by value and below alphanumeric ones (ASCII order)."""
    if fold_case:
        text = text.lower()
    return tuple((0, int(p)) if p.isascii() and p.isdigit() else (1, p) for p in text.split("."))


@register_scheme("semver")
class SemverScheme(VersionScheme):
    width = 3
    fold_case = False

    def _parse(self, version: str) -> SemverParts:
        parts = parse_semver_like(version, self.width)
        if parts is None:
            raise self.invalid(version, "does not start with a number")
        return parts

    def _key(self, version: str) -> SortKey:
        numbers, pre, _build = self._parse(version)  # build metadata never affects precedence
        pre_key = _RELEASE if pre is None else (0, identifiers_key(pre, self.fold_case))
        return (*numbers, pre_key)


@register_scheme("go")
class GoScheme(SemverScheme):
    """Go modules: SemVer with a leading ``v`` (optional here: OSV strips it); ``+incompatible`` ignored."""
