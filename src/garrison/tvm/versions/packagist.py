"""Packagist (Composer / PHP): PHP's ``version_compare`` on canonicalised versions.

Hand-written (univers' ComposerVersion agrees with only 93% of the vectors). Canonical form: drop a
leading ``v``/``V``, turn ``-_+`` into ``.``, and put a ``.`` between digit and non-digit runs. Parts
then compare pairwise: numbers by value; words by their special form only
(``dev < alpha = a < beta = b < RC = rc < # < pl = p``; other words rank with ``dev``); a number
ranks as ``#``. When one side runs out, a following number makes the longer side newer; a following
word is compared with ``#``.

PHP's ``#`` placeholder equals *every* number, so comparisons involving a literal ``#`` are not
transitive: ``compare`` reproduces them exactly, ``key`` treats ``#`` as "absent" (the only total
order that agrees with most of them). No real package uses ``#``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from ._base import SortKey, VersionScheme, register_scheme

_SPECIALS = ("dev", "a", "b", "rc", "#", "p")
_HASH_WEIGHT = 4
_END = (1,)


@functools.lru_cache(maxsize=1 << 16)
def canonical_parts(version: str) -> tuple[str, ...]:
    v = version.removeprefix("v").removeprefix("V")
    v = re.sub(r"[-_+]", ".", v)
    v = re.sub(r"([^0-9.])([0-9])", r"\1.\2", v)
    v = re.sub(r"([0-9])([^0-9.])", r"\1.\2", v)
    return tuple(v.split("."))


def _is_number(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _weight(part: str) -> int:
    if part.startswith("RC"):
        return 3
    for i, special in enumerate(_SPECIALS):
        if part.startswith(special):
            return i
    return 0


def _cmp_part(x: str, y: str) -> int:
    if _is_number(x) and _is_number(y):
        a, b = int(x), int(y)
    else:
        a = _HASH_WEIGHT if _is_number(x) else _weight(x)
        b = _HASH_WEIGHT if _is_number(y) else _weight(y)
    return (a > b) - (a < b)


def compare_parts(a: Sequence[str], b: Sequence[str]) -> int:
    for x, y in zip(a, b):
        r = _cmp_part(x, y)
        if r:
            return r
    if len(a) > len(b):
        return 1 if _is_number(a[len(b)]) else compare_parts(a[len(b) :], ("#",))
    if len(a) < len(b):
        return -1 if _is_number(b[len(a)]) else compare_parts(("#",), b[len(a) :])
    return 0


def packagist_key(parts: Sequence[str]) -> tuple[tuple[object, ...], ...]:
    """Tuple order equal to ``compare_parts`` for versions without a literal ``#``.

    Running out of parts behaves like an endless run of ``#``, so each remaining part is stored
    with the number ``k`` of ``#`` before it: a part ranked below ``#`` sorts below the end and
    lower the sooner it comes, one ranked above it (numbers, ``p``) the other way round.
    """
    out: list[tuple[object, ...]] = []
    hashes = 0
    for part in parts:
        if _is_number(part):
            out.append((2, -hashes, _HASH_WEIGHT, int(part)))
        else:
            w = _weight(part)
            if w == _HASH_WEIGHT:
                hashes += 1
                continue
            out.append((0, hashes, w) if w < _HASH_WEIGHT else (2, -hashes, w, 0))
        hashes = 0
    out.append(_END)
    return tuple(out)


@register_scheme("packagist")
class PackagistScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        if not any(c.isalnum() for c in version):
            raise self.invalid(version, "no letters or digits")
        return packagist_key(canonical_parts(version))

    def compare(self, a: str, b: str) -> int:
        self.validate(a)
        self.validate(b)
        return compare_parts(canonical_parts(a), canonical_parts(b))
