"""Software inventory: the parsers shared by the agent's package sources and agentless import.

Every parser returns :class:`garrison.protocol.SoftwarePackage` entries and raises
:class:`InventoryParseError` (naming the line or field) on malformed input; nothing
partial is ever returned. This package imports only ``garrison.protocol``.
"""

from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import (
    FORMATS,
    InventoryFormat,
    detect_format,
    parse_inventory,
    register_format,
)
from garrison.inventory.formats.apk import iter_apk_files, parse_apk_installed
from garrison.inventory.formats.cyclonedx import parse_cyclonedx_json, parse_cyclonedx_xml
from garrison.inventory.formats.dpkg import parse_dpkg_status
from garrison.inventory.formats.rpm import RPM_QUERYFORMAT, parse_rpm_qa
from garrison.inventory.formats.spdx import parse_spdx_json
from garrison.inventory.osrelease import ecosystem_for, parse_os_release
from garrison.inventory.purl import build_purl, parse_purl
from garrison.inventory.pypi import normalize_pypi_name, parse_core_metadata
from garrison.protocol import OsIdentity, SoftwarePackage

__all__ = [
    "FORMATS",
    "RPM_QUERYFORMAT",
    "InventoryFormat",
    "InventoryParseError",
    "OsIdentity",
    "SoftwarePackage",
    "build_purl",
    "detect_format",
    "ecosystem_for",
    "iter_apk_files",
    "normalize_pypi_name",
    "parse_apk_installed",
    "parse_core_metadata",
    "parse_cyclonedx_json",
    "parse_cyclonedx_xml",
    "parse_dpkg_status",
    "parse_inventory",
    "parse_os_release",
    "parse_purl",
    "parse_rpm_qa",
    "parse_spdx_json",
    "register_format",
]
