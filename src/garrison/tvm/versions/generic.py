"""Generic versions, for software matched by CPE (NVD gives no ecosystem, so no scheme of its own).

The version is split into runs of digits and of letters; separators (``.``, ``-``, ``_``, ``+``) only
split. Digits compare as numbers (``11.15 > 11.2``); zeros at the end of the release are ignored
(``1.0 == 1.0.0``, ``1.0rc1 == 1.0.0rc1``).
A run of letters is a pre-release when it is one of the usual words (``1.0rc1 < 1.0``, ``1.0a1 < 1.0``),
otherwise a post-release suffix as OpenSSL and OpenSSH use them (``1.0.2k > 1.0.2``, ``8.5p1 > 8.5``;
a lone letter ending the version is always one: ``1.0.2a > 1.0.2``). A leading
``v`` is dropped. This is the order NVD's version bounds are written in for most products.
"""

from __future__ import annotations

import re

from ._base import SortKey, VersionScheme, register_scheme

_TOKEN = re.compile(r"[0-9]+|[a-z]+")
_SHAPE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_~\-]*")
PRE_RELEASE = frozenset({"alpha", "a", "beta", "b", "rc", "c", "pre", "preview", "dev", "snapshot", "m", "milestone",
                         "ea", "cr"})
# Token ranks: pre-release words < end of version < other words < numbers.
_PRE, _END, _POST, _NUM = 0, 1, 2, 3


def _letter_release(text: str, parts: list[str], i: int) -> bool:
    """A single letter right after a number and ending the version (OpenSSL's ``1.0.2a``, ``1.1.1c``)
    is a letter release, not an alpha/beta: ``1.0a1`` and ``1.0-b2`` stay pre-releases."""
    followed_by_number = i + 1 < len(parts) and parts[i + 1].isdigit()
    return not followed_by_number and i > 0 and parts[i - 1].isdigit() and f"{parts[i - 1]}{parts[i]}" in text
@register_scheme("generic")
class GenericScheme(VersionScheme):
    def _key(self, version: str) -> SortKey:
        text = version.lower()
        if text[:1] == "v" and text[1:2].isdigit():
            text = text[1:]
        if not _SHAPE.fullmatch(text):
            raise self.invalid(version, "expected letters, digits and . - _ + ~ separators")
        tokens: list[tuple[int, int, str]] = []
        zeros: list[tuple[int, int, str]] = []  # zero numbers count only if more release numbers follow
        parts = _TOKEN.findall(text)
        for i, tok in enumerate(parts):
            if tok.isdigit() and int(tok) == 0:
                zeros.append((_NUM, 0, ""))
                continue
            if tok.isdigit():
                tokens += zeros
                tokens.append((_NUM, int(tok), ""))
            elif tok in PRE_RELEASE and not (len(tok) == 1 and _letter_release(text, parts, i)):
                tokens.append((_PRE, 0, tok))  # 1.0rc1 == 1.0.0rc1 < 1.0
            else:
                tokens += zeros
                tokens.append((_POST, 0, tok))
            zeros = []
        tokens.append((_END, 0, ""))
        return tuple(tokens)
