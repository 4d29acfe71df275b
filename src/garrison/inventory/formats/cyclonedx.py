"""CycloneDX SBOMs, JSON and XML (any 1.x spec version)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from garrison.inventory.common import MAX_INPUT_BYTES, check_count
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.sbom import MAX_DEPTH, expect, os_identity, sbom_package
from garrison.protocol import OsIdentity, SoftwarePackage

FMT_JSON = "cyclonedx-json"
FMT_XML = "cyclonedx-xml"
SKIP_TYPES = frozenset({"operating-system", "container", "file", "data", "device", "firmware", "platform"})


def load_json(data: bytes, fmt: str) -> Any:
    if len(data) > MAX_INPUT_BYTES:
        raise InventoryParseError(f"input larger than {MAX_INPUT_BYTES} bytes", fmt=fmt)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise InventoryParseError(f"invalid JSON at column {exc.colno}: {exc.msg}", fmt=fmt, line=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InventoryParseError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", fmt=fmt) from None
    except RecursionError:
        raise InventoryParseError("JSON nested too deeply", fmt=fmt) from None


def _json_props(comp: dict[str, Any], where: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for i, prop in enumerate(expect(comp.get("properties", []), list, FMT_JSON, f"{where}.properties")):
        prop = expect(prop, dict, FMT_JSON, f"{where}.properties[{i}]")
        name, value = prop.get("name"), prop.get("value", "")
        if isinstance(name, str) and isinstance(value, str) and name not in props:
            props[name] = value
    return props


def _str(comp: dict[str, Any], key: str, where: str) -> str:
    value = comp.get(key, "")
    return expect(value, str, FMT_JSON, f"{where}.{key}") if value is not None else ""


def _os_of(name: str, version: str, props: dict[str, str], description: str, fmt: str, where: str) -> OsIdentity:
    return os_identity(
        fmt,
        where,
        props.get("syft:distro:id", name),
        props.get("syft:distro:versionID", version),
        props.get("syft:distro:versionCodename", ""),
        props.get("syft:distro:prettyName", description),
    )


def parse_cyclonedx_json(
    data: bytes, os: OsIdentity | None = None, *, path: str = ""
) -> tuple[list[SoftwarePackage], OsIdentity | None]:
    doc = expect(load_json(data, FMT_JSON), dict, FMT_JSON, "$")
    if doc.get("bomFormat") != "CycloneDX":
        raise InventoryParseError("expected 'CycloneDX'", fmt=FMT_JSON, field="bomFormat")
    comps = expect(doc.get("components", []), list, FMT_JSON, "components")
    # Walk all components (nested ones too) first: the OS component decides the ecosystem of the rest.
    flat: list[tuple[str, dict[str, Any]]] = []
    stack: list[tuple[str, list[Any], int]] = [("components", comps, 0)]
    while stack:
        prefix, items, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InventoryParseError(f"components nested deeper than {MAX_DEPTH}", fmt=FMT_JSON, field=prefix)
        for i, comp in enumerate(items):
            where = f"{prefix}[{i}]"
            comp = expect(comp, dict, FMT_JSON, where)
            flat.append((where, comp))
            if "components" in comp:
                stack.append((f"{where}.components", expect(comp["components"], list, FMT_JSON, where), depth + 1))
    check_count(len(flat), FMT_JSON)
    doc_os: OsIdentity | None = None
    for where, comp in flat:
        if comp.get("type") == "operating-system" and doc_os is None:
            doc_os = _os_of(
                _str(comp, "name", where), _str(comp, "version", where), _json_props(comp, where),
                _str(comp, "description", where), FMT_JSON, where,
            )
    use_os = os or doc_os
    out: list[SoftwarePackage] = []
    for where, comp in flat:
        if comp.get("type") in SKIP_TYPES:
            continue
        pkg = sbom_package(
            FMT_JSON,
            where,
            name=_str(comp, "name", where),
            version=_str(comp, "version", where),
            purl=_str(comp, "purl", where),
            props=_json_props(comp, where),
            os=use_os,
            path=path,
            cpe=_str(comp, "cpe", where),
        )
        if pkg is not None:
            out.append(pkg)
    return out, use_os


class _NoDtd(ET.TreeBuilder):
    """CycloneDX needs no DTD: expat reports a DOCTYPE, wherever it stands in the document, before
    reading any entity declared in it, and this refuses it there — no entity expansion (a "billion
    laughs" bomb behind megabytes of comment) and no external entities."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise InventoryParseError("XML with a DOCTYPE or ENTITY declaration is refused", fmt=FMT_XML)


def _parse_xml(data: bytes) -> ET.Element:
    parser = ET.XMLParser(target=_NoDtd())
    try:
        parser.feed(data)
        return parser.close()
    except ET.ParseError as exc:
        line, col = exc.position
        raise InventoryParseError(f"invalid XML at column {col}: {exc.msg if hasattr(exc, 'msg') else exc}",
                                  fmt=FMT_XML, line=line) from None


def parse_cyclonedx_xml(
    data: bytes, os: OsIdentity | None = None, *, path: str = ""
) -> tuple[list[SoftwarePackage], OsIdentity | None]:
    if len(data) > MAX_INPUT_BYTES:
        raise InventoryParseError(f"input larger than {MAX_INPUT_BYTES} bytes", fmt=FMT_XML)
    root = _parse_xml(data)
    m = re.fullmatch(r"\{(http://cyclonedx\.org/schema/bom/[0-9.]+)\}bom", root.tag)
    if not m:
        raise InventoryParseError(f"root element is {root.tag[:80]!r}, not a CycloneDX <bom>", fmt=FMT_XML, field="bom")
    ns = "{" + m.group(1) + "}"

    def text(el: ET.Element, tag: str) -> str:
        child = el.find(ns + tag)
        return (child.text or "").strip() if child is not None else ""

    def props(el: ET.Element) -> dict[str, str]:
        out: dict[str, str] = {}
        holder = el.find(ns + "properties")
        for prop in holder.findall(ns + "property") if holder is not None else ():
            name = prop.get("name")
            if name and name not in out:
                out[name] = (prop.text or "").strip()
        return out

    flat: list[tuple[str, ET.Element]] = []
    stack: list[tuple[str, ET.Element, int]] = []
    top = root.find(ns + "components")
    if top is not None:
        stack.append(("components", top, 0))
    while stack:
        prefix, holder, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InventoryParseError(f"components nested deeper than {MAX_DEPTH}", fmt=FMT_XML, field=prefix)
        for i, comp in enumerate(holder.findall(ns + "component")):
            where = f"{prefix}/component[{i + 1}]"
            flat.append((where, comp))
            nested = comp.find(ns + "components")
            if nested is not None:
                stack.append((f"{where}/components", nested, depth + 1))
    check_count(len(flat), FMT_XML)
    doc_os: OsIdentity | None = None
    for where, comp in flat:
        if comp.get("type") == "operating-system" and doc_os is None:
            doc_os = _os_of(text(comp, "name"), text(comp, "version"), props(comp), text(comp, "description"),
                            FMT_XML, where)
    use_os = os or doc_os
    packages: list[SoftwarePackage] = []
    for where, comp in flat:
        if comp.get("type") in SKIP_TYPES:
            continue
        pkg = sbom_package(
            FMT_XML, where, name=text(comp, "name"), version=text(comp, "version"), purl=text(comp, "purl"),
            props=props(comp), os=use_os, path=path, cpe=text(comp, "cpe"),
        )
        if pkg is not None:
            packages.append(pkg)
    return packages, use_os


@register_format
class CycloneDxJson(InventoryFormat):
    name = FMT_JSON
    priority = 10

    @classmethod
    def sniff(cls, head: str) -> bool:
        return head.startswith("{") and re.search(r'"bomFormat"\s*:\s*"CycloneDX"', head) is not None

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_cyclonedx_json(data, os, path=path)


@register_format
class CycloneDxXml(InventoryFormat):
    name = FMT_XML
    priority = 10

    @classmethod
    def sniff(cls, head: str) -> bool:
        return head.startswith("<") and "http://cyclonedx.org/schema/bom/" in head

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_cyclonedx_xml(data, os, path=path)
