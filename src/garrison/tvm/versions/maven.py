"""Maven: a port of ``org.apache.maven.artifact.versioning.ComparableVersion`` (maven-artifact 3.8.x).

Hand-written: univers' MavenVersion disagrees on 9 generated vectors (the ``release`` alias and
qualifiers before numbers, e.g. ``v0.0.5 < 0.0.1.beta6``). A version is a tree: ``.`` separates
items, ``-`` and digit/letter transitions open a sub-list; trailing "null" items (0, "", "final",
"ga", "release") are dropped. Comparison pads the shorter list with null. Items of different kinds
do not compare like any tuple encoding would (``0`` and ``""`` both equal null but differ from each
other), so the key is a small class with a recursive ``__lt__``.
"""

from __future__ import annotations

import functools
from typing import TypeAlias

from ._base import SortKey, VersionScheme, register_scheme

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_RELEASE_INDEX = _QUALIFIERS.index("")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}

# An item is an int, a qualifier (str) or a sub-list.
Item: TypeAlias = int | str | list["Item"]


@functools.lru_cache(maxsize=1024)
def _qualifier_rank(q: str) -> tuple[int, str]:
    # Known qualifiers in their fixed order; unknown ones after all of them, alphabetically.
    # (Maven compares the strings "0".."6" and "7-<q>"; this tuple order is the same.)
    try:
        return (_QUALIFIERS.index(q), "")
    except ValueError:
        return (len(_QUALIFIERS), q)


def _is_null(item: Item) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, str):
        return item == ""
    return not item


def _cmp_null(item: Item) -> int:
    """item.compareTo(null)."""
    if isinstance(item, int):
        return 1 if item else 0
    if isinstance(item, str):
        rank = _qualifier_rank(item)
        return (rank > (_RELEASE_INDEX, "")) - (rank < (_RELEASE_INDEX, ""))
    for sub in item:  # MNG-6964: the whole list against null, not just its head
        r = _cmp_null(sub)
        if r:
            return r
    return 0


def _cmp(a: Item, b: Item) -> int:
    """a.compareTo(b) for two present items. Kind order: qualifier < list < number."""
    if isinstance(a, int):
        if isinstance(b, int):
            return (a > b) - (a < b)
        return 1
    if isinstance(a, str):
        if isinstance(b, str):
            ra, rb = _qualifier_rank(a), _qualifier_rank(b)
            return (ra > rb) - (ra < rb)
        return -1
    if isinstance(b, int):
        return -1
    if isinstance(b, str):
        return 1
    for i in range(max(len(a), len(b))):
        if i >= len(a):
            r = -_cmp_null(b[i])
        elif i >= len(b):
            r = _cmp_null(a[i])
        else:
            r = _cmp(a[i], b[i])
        if r:
            return r
    return 0


def _normalize(items: list[Item]) -> None:
    # Drop trailing nulls, looking through trailing sub-lists that are themselves non-null.
    for i in range(len(items) - 1, -1, -1):
        if _is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], list):
            break


def parse_maven(version: str) -> list[Item]:
    s = version.lower()
    root: list[Item] = []
    current = root
    stack = [root]
    is_digit = False
    start = 0

    def item(digit: bool, text: str) -> Item:
        if digit:
            return int(text)
        return _ALIASES.get(text, text)

    for i, c in enumerate(s):
        if c in ".-":
            text = s[start:i]
            if c == "-" and current is not root and not current and _ALIASES.get(text) == "":
                # Deviation from maven-artifact 3.8, following OSV: a release alias alone between
                # hyphens is dropped, so "1-ga-1" == "1-1" (Maven nests it one level deeper).
                start = i + 1
                continue
            current.append(0 if i == start else item(is_digit, text))
            start = i + 1
            if c == "-":
                sub: list[Item] = []
                current.append(sub)
                current = sub
                stack.append(sub)
        elif c.isdecimal():
            if not is_digit and i > start:
                # "a1", "b1", "m1" abbreviate alpha/beta/milestone only right before a number.
                text = s[start:i]
                text = _SHORT.get(text, text) if len(text) == 1 else text
                current.append(_ALIASES.get(text, text))
                start = i
                sub = []
                current.append(sub)
                current = sub
                stack.append(sub)
            is_digit = True
        else:
            if is_digit and i > start:
                current.append(int(s[start:i]))
                start = i
                sub = []
                current.append(sub)
                current = sub
                stack.append(sub)
            is_digit = False
    if len(s) > start:
        current.append(item(is_digit, s[start:]))
    for lst in reversed(stack):
        _normalize(lst)
    return root


@functools.total_ordering
class MavenKey:
    """Sort key for one Maven version (only comparable with other MavenKeys)."""

    __slots__ = ("items",)
    __hash__ = None  # type: ignore[assignment]  # equal keys may differ in structure

    def __init__(self, items: list[Item]) -> None:
        self.items = items

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MavenKey):
            return NotImplemented
        return _cmp(self.items, other.items) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MavenKey):
            return NotImplemented
        return _cmp(self.items, other.items) == 0

    def __repr__(self) -> str:
        return f"MavenKey({self.items!r})"


@register_scheme("maven")
class MavenScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        if not any(c.isalnum() for c in version):
            raise self.invalid(version, "no letters or digits")
        return MavenKey(parse_maven(version))

    def compare(self, a: str, b: str) -> int:
        # One recursive walk instead of the base class's two __lt__ calls.
        ka, kb = self.key(a), self.key(b)
        assert isinstance(ka, MavenKey) and isinstance(kb, MavenKey)
        return _cmp(ka.items, kb.items)
