"""Alpine (apk): ``number{.number}...{letter}{_suffix{number}}...{-r#}``.

A port of apk-tools 2.x ``apk_version_compare`` (src/version.c), the tokenizer that Alpine 3.x ships
and that produced the generated test vectors. apk compares token values and, between them, token
*types*; interleaving the two as ints gives a tuple whose plain order is apk's order.

Versions apk calls invalid are still ordered (``apk version -t`` accepts them). For those, three
rules follow newer apk-tools and the OSV reference vectors instead of 2.x:

1. an invalid token sorts below everything, including the end of the string (``1-ruff < 1``);
2. a ``.`` not followed by a digit ranks like an invalid token, but comparison goes on after it
   (``0.r1 < 0r2``, ``0..8 > 0...8``);
3. a revision is ``-r`` plus digits at the very end; anything else makes the ``-`` invalid
   (``1-r0-1 = 1-r-2``).

And one fix of a 2.x bug (apk-tools 3 has it right): 4. after a ``.``, a run of zeros reads as a
negative value followed by a number token, which 2.x left out when the zeros end the string, so
``1.0 < 1.0_rc1`` although ``1.1 > 1.1_rc1``. Alpine's own versions end in ``-rN``, where the bug
does not show, so no generated vector depends on it.
"""

from __future__ import annotations

from ._base import SortKey, VersionScheme, register_scheme

# apk-tools 2.x token types; their numeric order matters (see _next_type).
_INVALID, _DOZ, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _REV, _END = -1, 0, 1, 2, 3, 4, 5, 6
_PRE = ("alpha", "beta", "pre", "rc")  # values -4..-1: before the release
_POST = ("cvs", "svn", "git", "hg", "p")  # values 0..4: after it

# Ranks of a token type when two versions differ in type at the same place. apk: the later
# type (higher number) is the *older* version, except a pre-release suffix is older still.
_RANK_PRE_SUFFIX = -20
_RANK_INVALID = -10  # rule 1


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _suffix_value(s: str, p: int) -> int | None:
    for i, suffix in enumerate(_PRE):
        if s.startswith(suffix, p):
            return i - len(_PRE)
    for i, suffix in enumerate(_POST):
        if s.startswith(suffix, p):
            return i
    return None


def _next_type(t: int, s: str, p: int) -> tuple[int, int]:
    """apk's next_token: the type of the token starting at ``p`` (and skip its separator)."""
    n = _INVALID
    if p >= len(s):
        n = _END
    else:
        c = s[p]
        if t in (_DIGIT, _DOZ) and "a" <= c <= "z":
            n = _LETTER
        elif t == _LETTER and _is_digit(c):
            n = _DIGIT
        elif t == _SUFFIX and _is_digit(c):
            n = _SUFFIX_NO
        else:
            if c == ".":
                n = _DOZ
            elif c == "_":
                n = _SUFFIX
            elif c == "-" and s.startswith("r", p + 1):
                tail = s[p + 2 :]
                if tail == "" or (tail.isascii() and tail.isdigit()):  # rule 3
                    n = _REV
                    p += 1
            p += 1
    # Types only move forward, bar the loops digit->'.'->digit, suffix->'_'->suffix, letter->digit.
    if n < t and not (
        (n == _DOZ and t == _DIGIT) or (n == _SUFFIX and t == _SUFFIX_NO) or (n == _DIGIT and t == _LETTER)
    ):
        n = _INVALID
    return n, p


def _get_token(t: int, s: str, p: int) -> tuple[int, int, int]:
    """apk's get_token: (value of the token of type ``t`` at ``p``, type of the next token, new p)."""
    if p >= len(s):
        return 0, _END, p
    i = p
    forced_next = None
    if t == _DOZ and s[i] == "0":
        # After a '.', leading zeros count as a negative value so "1.05" < "1.1" (fractional reading).
        while i < len(s) and s[i] == "0":
            i += 1
        v = p - i
        forced_next = _DIGIT  # then a digit token (maybe empty: value 0) for what follows the zeros
    elif t in (_DOZ, _DIGIT, _SUFFIX_NO, _REV):
        while i < len(s) and _is_digit(s[i]):
            i += 1
        v = int(s[p:i]) if i > p else 0
    elif t == _LETTER:
        v = ord(s[i])
        i += 1
    elif t == _SUFFIX:
        sv = _suffix_value(s, p)
        if sv is None:
            return -1, _INVALID, p
        v = sv
        i = p + (len(_PRE[sv + len(_PRE)]) if sv < 0 else len(_POST[sv]))
    else:
        return -1, _INVALID, p
    p = i
    if forced_next is not None:
        # Rule 4: apk 2.x ends here when the zeros end the string, so "1.0" lacks the empty digit
        # token that "1.0_rc1" has; emitting it for both keeps pre-releases below the release.
        return v, forced_next, p
    if p >= len(s):
        return v, _END, p
    nt, p = _next_type(t, s, p)
    return v, nt, p


def _rank(t: int, s: str, p: int) -> int:
    if t == _SUFFIX:
        sv = _suffix_value(s, p)
        # An unknown suffix reads as -1 in apk, i.e. as a pre-release.
        return _RANK_PRE_SUFFIX if sv is None or sv < 0 else -_SUFFIX
    if t == _INVALID:
        return _RANK_INVALID
    if t == _DOZ and p < len(s) and not _is_digit(s[p]):
        return _RANK_INVALID  # rule 2
    return -t


def apk_key(s: str) -> tuple[int, ...]:
    """Interleave token values and type ranks: v1, rank(t2), v2, rank(t3), ... up to END/INVALID."""
    out: list[int] = []
    t, p = _DIGIT, 0
    while True:
        v, t, p = _get_token(t, s, p)
        out.append(v)
        if t == _END or t == _INVALID:
            out.append(-_END if t == _END else _RANK_INVALID)
            return tuple(out)
        out.append(_rank(t, s, p))


@register_scheme("apk")
class ApkScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        return apk_key(version)
