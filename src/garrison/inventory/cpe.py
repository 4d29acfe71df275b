"""CPE names (NIST IR 7695): the 2.3 formatted string and the 2.2 URI.

``cpe:2.3:a:postgresql:postgresql:11.15:*:*:*:*:*:*:*`` → part ``a``, vendor ``postgresql``, product
``postgresql``, version ``11.15``. Attributes are unescaped (``9.9\\+deb9u13`` → ``9.9+deb9u13``) and
lower-cased where CPE is case-insensitive (vendor, product). ``*`` is ANY, ``-`` is NA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

MAX_CPE_LENGTH = 512
ANY, NA = "*", "-"
_SPLIT_23 = re.compile(r"(?<!\\):")  # a colon not escaped by a backslash
_UNESCAPE = re.compile(r"\\(.)")


class CpeError(ValueError):
    """Not a CPE name."""


@dataclass(frozen=True)
class Cpe:
    part: str  # a (application), o (operating system), h (hardware)
    vendor: str
    product: str
    version: str = ANY
    update: str = ANY

    @property
    def product_key(self) -> str:
        """``vendor:product``, the name CPE-keyed advisories are stored under."""
        return f"{self.vendor}:{self.product}"

    @property
    def full_version(self) -> str:
        """The version with its update appended (``8.5`` + ``p1`` → ``8.5p1``), ``""`` when ANY/NA."""
        if self.version in (ANY, NA):
            return ""
        return self.version + ("" if self.update in (ANY, NA, "") else self.update)


def _attr(raw: str) -> str:
    return _UNESCAPE.sub(r"\1", raw)


def parse_cpe(text: str) -> Cpe:
    """Parse a CPE 2.3 formatted string or a CPE 2.2 URI; ``CpeError`` says what is wrong."""
    if not isinstance(text, str) or len(text) > MAX_CPE_LENGTH:
        raise CpeError(f"not a CPE name (longer than {MAX_CPE_LENGTH} characters or not text)")
    if any(c.isspace() for c in text):
        raise CpeError("a CPE name contains no whitespace")
    if text.startswith("cpe:2.3:"):
        fields = _SPLIT_23.split(text)
        if len(fields) != 13:
            raise CpeError(f"a CPE 2.3 name has 13 colon-separated fields, this has {len(fields)}")
        part, vendor, product, version, update = (_attr(f) for f in fields[2:7])
    elif text.lower().startswith("cpe:/"):
        fields = text[5:].split(":")
        fields += [""] * (5 - len(fields))
        part, vendor, product, version, update = (unquote(f) for f in fields[:5])
        version, update = version or ANY, update or ANY
    else:
        raise CpeError("a CPE name starts with 'cpe:2.3:' or 'cpe:/'")
    if part not in ("a", "o", "h"):
        raise CpeError(f"CPE part must be a, o or h, not {part[:8]!r}")
    if not vendor or not product or vendor in (ANY, NA) or product in (ANY, NA):
        raise CpeError("a CPE name must give its vendor and product")
    return Cpe(part, vendor.lower(), product.lower(), version, update)
