"""RPM (Red Hat, SUSE, Fedora, Rocky, Alma, ...): ``[epoch:]version[-release]`` with ``rpmvercmp``.

Hand-written. rpmvercmp walks both strings segment by segment; the same walk can be expressed as a
token sequence whose plain tuple order is identical, which gives a fast, sortable key:

* separators (anything but ASCII letters, digits, ``~`` and ``^``) only split segments;
* ``~`` sorts before everything, even the end of the string (pre-releases: ``1.0~rc1 < 1.0``);
* ``^`` sorts after the end of the string but before any further segment (``1.0 < 1.0^git1 < 1.0.1``);
* a numeric segment is newer than an alphabetic one; numbers compare by value, letters by strcmp.
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_TOKENS = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")

# Token ranks, in rpmvercmp's order. _END terminates every key.
_TILDE = (0,)
_END = (1,)
_CARET = (2,)
_ALPHA = 3
_NUM = 4


def rpmvercmp_key(s: str) -> tuple[tuple[object, ...], ...]:
    """Key for one EVR component such that key order == rpmvercmp."""
    out: list[tuple[object, ...]] = []
    for tok in _TOKENS.findall(s):
        if tok == "~":
            out.append(_TILDE)
        elif tok == "^":
            out.append(_CARET)
        elif tok[0].isdigit():
            out.append((_NUM, int(tok)))
        else:
            out.append((_ALPHA, tok))
    out.append(_END)
    return tuple(out)


@register_scheme("rpm")
class RpmScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        # As rpm's parseEVR: the epoch is a run of digits followed by ':' at the very start;
        # any other colon belongs to the version (e.g. "1.module+el9:1").
        epoch = 0
        vr = version
        head, colon, tail = version.partition(":")
        if colon and (head == "" or (head.isascii() and head.isdigit())):
            epoch = int(head) if head else 0
            vr = tail
        # The release follows the last '-' (rpm uses strrchr).
        ver, dash, rel = vr.rpartition("-")
        if not dash:
            ver = vr
        # A version without a release sorts before any version with one ("1 < 1-0 < 1-1"): OSV
        # ranges always carry releases, so a bare version means "the earliest build of it".
        release_key: tuple[object, ...] = (1, rpmvercmp_key(rel)) if dash else (0,)
        return (epoch, rpmvercmp_key(ver), release_key)
