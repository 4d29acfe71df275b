"""Debian / Ubuntu: dpkg's ``[epoch:]upstream[-revision]`` ordering (``verrevcmp`` in lib/dpkg/version.c).

Hand-written: the algorithm is short, and a tuple key compares in C instead of through a Python ``__lt__``.
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_UPSTREAM_OK = re.compile(r"[A-Za-z0-9.+~:-]+")
_REVISION_OK = re.compile(r"[A-Za-z0-9.+~]+")
_PARTS = re.compile(r"(\D*)(\d*)")


def _weight(c: str) -> int:
    # dpkg's order(): '~' sorts before everything, even the end of the string (weight 0);
    # letters sort before all other characters.
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


_WEIGHTS = {chr(i): _weight(chr(i)) for i in range(128)}


def _part_key(s: str) -> tuple[int, ...]:
    """Flatten a version part into ints so tuple order equals ``verrevcmp``.

    Each (non-digit run, digit run) pair becomes the run's character weights, a 0 terminator,
    then the number. The 0 terminator is "end of run": it is above '~' and below every other
    character, exactly dpkg's rule. A trailing (0, 0) stands for the implicit empty tail, and
    the first pair is always emitted so "" and "0" get the same key.
    """
    out: list[int] = []
    pos = 0
    while True:
        m = _PARTS.match(s, pos)
        assert m is not None  # the pattern also matches the empty string
        letters, digits = m.group(1), m.group(2)
        out.extend(_WEIGHTS[c] for c in letters)  # validated: ASCII only
        out.append(0)
        out.append(int(digits) if digits else 0)
        pos = m.end()
        if pos >= len(s):
            break
    out.extend((0, 0))
    return tuple(out)


@register_scheme("dpkg")
class DpkgScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        epoch = 0
        rest = version
        if ":" in version:
            head, rest = version.split(":", 1)
            if not head.isascii() or not head.isdigit():
                raise self.invalid(version, "epoch is not a number")
            epoch = int(head)
            if not rest:
                raise self.invalid(version, "nothing after the epoch colon")
        upstream, dash, revision = rest.rpartition("-")
        if not dash:
            upstream, revision = rest, ""
        elif not revision:
            raise self.invalid(version, "empty revision after '-'")
        if not upstream:
            raise self.invalid(version, "empty upstream version")
        # dpkg only warns about these, but they are not Debian versions and usually mean a parsing slip.
        if not _UPSTREAM_OK.fullmatch(upstream):
            raise self.invalid(version, "invalid character in upstream version")
        if revision and not _REVISION_OK.fullmatch(revision):
            raise self.invalid(version, "invalid character in revision")
        # An absent revision compares like "0", which _part_key("") already equals.
        return (epoch, _part_key(upstream), _part_key(revision))
