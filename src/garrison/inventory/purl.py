"""Package URLs (https://github.com/package-url/purl-spec), built and parsed.

Built purls are canonical: lowercase type, percent-encoded segments (``:`` kept, as
packageurl-python does), qualifiers sorted by key and empty ones dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from garrison.inventory.errors import InventoryParseError


def _q(s: str) -> str:
    return quote(s, safe="").replace("%3A", ":")


def build_purl(
    type_: str,
    name: str,
    version: str = "",
    *,
    namespace: str = "",
    qualifiers: dict[str, str] | None = None,
    subpath: str = "",
) -> str:
    out = f"pkg:{type_.lower()}/"
    if namespace:
        out += "/".join(_q(seg) for seg in namespace.split("/") if seg) + "/"
    out += _q(name)
    if version:
        out += "@" + _q(version)
    quals = {k.lower(): v for k, v in (qualifiers or {}).items() if v}
    if quals:
        out += "?" + "&".join(f"{k}={_q(quals[k])}" for k in sorted(quals))
    if subpath:
        out += "#" + "/".join(_q(seg) for seg in subpath.split("/") if seg not in ("", ".", ".."))
    return out


@dataclass
class Purl:
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: dict[str, str] = field(default_factory=dict)
    subpath: str = ""


def parse_purl(text: str, *, fmt: str | None = None, field_name: str = "purl") -> Purl:
    """Parse a purl; raise :class:`InventoryParseError` when it is not one."""
    if not text.startswith("pkg:") or len(text) > 4096:
        raise InventoryParseError(f"not a package URL: {text[:80]!r}", fmt=fmt, field=field_name)
    rest = text[4:].lstrip("/")
    rest, _, subpath = rest.partition("#")
    rest, _, query = rest.partition("?")
    type_, _, path = rest.partition("/")
    if not type_ or not path:
        raise InventoryParseError(f"package URL without type or name: {text[:80]!r}", fmt=fmt, field=field_name)
    # The version separator is the first '@' after the last '/': npm scopes may be written '@scope' unencoded.
    slash = path.rfind("/")
    at = path.find("@", slash + 1)
    version = ""
    if at >= 0:
        path, version = path[:at], path[at + 1 :]
    segs = [unquote(s) for s in path.strip("/").split("/") if s]
    if not segs:
        raise InventoryParseError(f"package URL without a name: {text[:80]!r}", fmt=fmt, field=field_name)
    quals: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise InventoryParseError(f"bad qualifier {pair[:40]!r} in {text[:80]!r}", fmt=fmt, field=field_name)
        quals[k.lower()] = unquote(v)
    return Purl(
        type=type_.lower(),
        namespace="/".join(segs[:-1]),
        name=segs[-1],
        version=unquote(version),
        qualifiers=quals,
        subpath=unquote(subpath),
    )
