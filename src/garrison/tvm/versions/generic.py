"""Generic versions, for software matched by CPE (NVD gives no ecosystem, so no scheme of its own).

The version is split into runs of digits and of letters; separators (``.``, ``-``, ``_``, ``+``) only
split. Digits compare as numbers (``11.15 > 11.2``); zeros at the end of the release are ignored
(``1.0 == 1.0.0``, ``1.0rc1 == 1.0.0rc1``).
A run of letters is a pre-release when it is one of the usual words (``1.0rc1 < 1.0``), otherwise a
post-release suffix as OpenSSL and OpenSSH use them (``1.0.2k > 1.0.2``, ``8.5p1 > 8.5``). A leading
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
        for tok in _TOKEN.findall(text):
            if tok.isdigit() and int(tok) == 0:
                zeros.append((_NUM, 0, ""))
                continue
            if tok.isdigit():
                tokens += zeros
                tokens.append((_NUM, int(tok), ""))
            elif tok in PRE_RELEASE:
                tokens.append((_PRE, 0, tok))  # 1.0rc1 == 1.0.0rc1 < 1.0
            else:
                tokens += zeros
                tokens.append((_POST, 0, tok))
            zeros = []
        tokens.append((_END, 0, ""))
        return tuple(tokens)
