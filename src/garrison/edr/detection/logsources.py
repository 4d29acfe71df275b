"""Where a Sigma rule's events are in Garrison: logsource → hunting table + ActionType, Sigma field → column.

Data, not code paths (pySigma's "pipeline" idea): :data:`LOGSOURCES` says, for a Sigma logsource
``(product, category, service)``, which hunting table(s) and ``ActionType``s hold its events and how its
field names map to Defender's columns. A field a source does not map is read from the event's original
fields (``AdditionalFields``: the Windows import keeps every original field there), so a rule on a
Sysmon field that Defender has no column for (``CurrentDirectory``, ``GrantedAccess``…) still runs on
imported Windows logs. A mapped column that is empty falls back to the original field of the same name.

A logsource that is not here has no telemetry in Garrison: its rules are reported as not runnable with
that reason (``garrison rules status``), never silently dropped.

Platforms: Windows telemetry arrives only as imported Windows logs, whose ``AdditionalFields`` carry the
original ``EventID``; the agent's sensor telemetry is Linux. :func:`event_platform` is that one rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

WINDOWS, LINUX = "windows", "linux"


class EventView:
    """One stored event as the rules see it: its columns, its original fields (parsed once, lazily) and a
    cache of lower-cased values (case-insensitive matching lowers each value once per event, not per rule)."""

    __slots__ = ("_low", "_orig", "row", "table")

    def __init__(self, row: Mapping[str, Any], table: str) -> None:
        self.row = row
        self.table = table
        self._orig: dict[str, Any] | None = None
        self._low: dict[str, str | None] = {}

    @property
    def original(self) -> dict[str, Any]:
        if self._orig is None:
            raw = self.row.get("AdditionalFields")
            parsed: Any = raw
            if isinstance(raw, str | bytes) and raw[:1] in ("{", b"{"):
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
            self._orig = parsed if isinstance(parsed, dict) else {}
        return self._orig

    def low(self, key: str, getter: Getter) -> str | None:
        try:
            return self._low[key]
        except KeyError:
            v = getter(self)
            text = None if v is None else _text(v).lower()
            self._low[key] = text
            return text


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else str(v)


Getter = Callable[[EventView], Any]


def event_platform(view: EventView) -> str:
    return WINDOWS if "EventID" in view.original else LINUX


def _column(col: str, original: str) -> Getter:
    def get(v: EventView) -> Any:
        value = v.row.get(col)
        return v.original.get(original) if value is None or value == "" else value
    return get


def original_field(name: str) -> Getter:
    return lambda v: v.original.get(name)


def _account(domain_col: str, name_col: str, original: str) -> Getter:
    """Sysmon's ``User`` is ``DOMAIN\\name``; Defender splits it."""
    def get(v: EventView) -> Any:
        if original in v.original:
            return v.original[original]
        name = v.row.get(name_col)
        if name is None:
            return None
        domain = v.row.get(domain_col)
        return f"{domain}\\{name}" if domain else name
    return get


def _hashes(prefix: str) -> Getter:
    def get(v: EventView) -> Any:
        if "Hashes" in v.original:
            return v.original["Hashes"]
        parts = [f"{a}={v.row[prefix + a].upper()}" for a in ("SHA1", "MD5", "SHA256") if v.row.get(prefix + a)]
        return ",".join(parts) or None
    return get


_INBOUND = "InboundConnectionAccepted"


def _endpoint(outbound_col: str, inbound_col: str, original: str) -> Getter:
    """Sysmon 3 names the two ends Source/Destination by who initiated; Defender names them Local/Remote."""
    def get(v: EventView) -> Any:
        if original in v.original:
            return v.original[original]
        return v.row.get(inbound_col if v.row.get("ActionType") == _INBOUND else outbound_col)
    return get


def _registry_target(v: EventView) -> Any:
    if "TargetObject" in v.original:
        return v.original["TargetObject"]
    key, value = v.row.get("RegistryKey"), v.row.get("RegistryValueName")
    return f"{key}\\{value}" if key and value else key


_REGISTRY_EVENT_TYPES = {"RegistryKeyCreated": "CreateKey", "RegistryKeyDeleted": "DeleteKey",
                         "RegistryValueDeleted": "DeleteValue", "RegistryValueSet": "SetValue",
                         "RegistryKeyRenamed": "RenameKey"}


def _registry_event_type(v: EventView) -> Any:
    return v.original.get("EventType") or _REGISTRY_EVENT_TYPES.get(v.row.get("ActionType") or "")


def _initiated(v: EventView) -> Any:
    return v.original.get("Initiated") or ("false" if v.row.get("ActionType") == _INBOUND else "true")


def _columns(mapping: Mapping[str, str]) -> dict[str, Getter]:
    return {sigma: _column(col, sigma) for sigma, col in mapping.items()}


# The initiating process, named as Sysmon names it in most events.
_INITIATOR = {"Image": "InitiatingProcessFolderPath", "ProcessId": "InitiatingProcessId",
              "CommandLine": "InitiatingProcessCommandLine", "ParentImage": "InitiatingProcessParentFileName"}
_HASH_COLUMNS = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}

_PROCESS = {
    **_columns({"Image": "FolderPath", "OriginalFileName": "ProcessVersionInfoOriginalFileName",
                "CommandLine": "ProcessCommandLine", "ParentImage": "InitiatingProcessFolderPath",
                "ParentCommandLine": "InitiatingProcessCommandLine", "ProcessId": "ProcessId",
                "ParentProcessId": "InitiatingProcessId", "IntegrityLevel": "ProcessIntegrityLevel",
                "Company": "ProcessVersionInfoCompanyName", "Product": "ProcessVersionInfoProductName",
                "Description": "ProcessVersionInfoFileDescription", "FileVersion": "ProcessVersionInfoProductVersion",
                "LogonId": "LogonId", **_HASH_COLUMNS,
                # Security 4688's own names, used by some process_creation rules
                "NewProcessName": "FolderPath", "ParentProcessName": "InitiatingProcessFolderPath",
                "SubjectUserName": "InitiatingProcessAccountName", "TargetUserName": "AccountName"}),
    "User": _account("AccountDomain", "AccountName", "User"),
    "ParentUser": _account("InitiatingProcessAccountDomain", "InitiatingProcessAccountName", "ParentUser"),
    "Hashes": _hashes(""),
}
_INITIATED_BY = {
    **_columns({k: v for k, v in _INITIATOR.items() if k != "ParentImage"}),
    "User": _account("InitiatingProcessAccountDomain", "InitiatingProcessAccountName", "User"),
}
_FILE = {**_INITIATED_BY, **_columns({"TargetFilename": "FolderPath", **_HASH_COLUMNS}), "Hashes": _hashes("")}
_IMAGE_LOAD = {**_INITIATED_BY, **_columns({"ImageLoaded": "FolderPath", **_HASH_COLUMNS}), "Hashes": _hashes("")}
_NETWORK = {
    **_INITIATED_BY,
    "DestinationIp": _endpoint("RemoteIP", "LocalIP", "DestinationIp"),
    "DestinationPort": _endpoint("RemotePort", "LocalPort", "DestinationPort"),
    "SourceIp": _endpoint("LocalIP", "RemoteIP", "SourceIp"),
    "SourcePort": _endpoint("LocalPort", "RemotePort", "SourcePort"),
    "DestinationHostname": _endpoint("RemoteUrl", "LocalIP", "DestinationHostname"),
    "Initiated": _initiated,
    **_columns({"Protocol": "Protocol"}),
}
_REGISTRY = {**_INITIATED_BY, "TargetObject": _registry_target, "EventType": _registry_event_type,
             **_columns({"Details": "RegistryValueData", "NewName": "RegistryKey"})}
_TARGET_PROCESS = {  # Sysmon 8 and 10: the source is the initiating process, the target is the event's
    **_columns({"SourceImage": "InitiatingProcessFolderPath", "SourceProcessId": "InitiatingProcessId",
                "TargetImage": "FolderPath", "TargetProcessId": "ProcessId"}),
    "SourceUser": _account("InitiatingProcessAccountDomain", "InitiatingProcessAccountName", "SourceUser"),
}
_DNS = {**_INITIATED_BY, **_columns({"QueryName": "RemoteUrl"})}
_PIPE = {**_INITIATED_BY, **_columns({"PipeName": "FileName"})}
_TERMINATION = {**_columns({"Image": "FolderPath", "ProcessId": "ProcessId"})}
_ORIGINALS: dict[str, Getter] = {}  # Windows services: the rule's fields are the event's own


@dataclass(frozen=True)
class Source:
    """Where a logsource's events are: tables, ActionTypes (None: any), platform, field getters."""

    tables: tuple[str, ...]
    platform: str
    fields: Mapping[str, Getter]
    actions: frozenset[str] | None = None
    channel: str | None = None  # Windows services: the original Channel the event must come from
    note: str = ""

    def getter(self, name: str) -> Getter:
        return self.fields.get(name) or original_field(name)


def _src(tables: str, platform: str, fields: Mapping[str, Getter], actions: str | None = None,
         channel: str | None = None) -> Source:
    return Source(tuple(tables.split()), platform, fields, frozenset(actions.split()) if actions else None, channel)


# The tables the Windows import (garrison.edr.events.windows.MAPPERS) writes Security-channel events to.
_SECURITY_TABLES = "DeviceLogonEvents DeviceProcessEvents DeviceEvents"
_SYSMON_TABLES = ("DeviceProcessEvents DeviceNetworkEvents DeviceImageLoadEvents DeviceRegistryEvents "
                  "DeviceFileEvents DeviceEvents")

LOGSOURCES: dict[tuple[str | None, str | None, str | None], Source] = {
    ("windows", "process_creation", None): _src("DeviceProcessEvents", WINDOWS, _PROCESS, "ProcessCreated"),
    ("windows", "process_termination", None): _src("DeviceEvents", WINDOWS, _TERMINATION, "ProcessTerminated"),
    ("windows", "network_connection", None): _src(
        "DeviceNetworkEvents", WINDOWS, _NETWORK,
        "ConnectionSuccess ConnectionFailed ConnectionAttempt InboundConnectionAccepted"),
    ("windows", "image_load", None): _src("DeviceImageLoadEvents", WINDOWS, _IMAGE_LOAD),
    ("windows", "file_event", None): _src("DeviceFileEvents", WINDOWS, _FILE, "FileCreated"),
    ("windows", "file_delete", None): _src("DeviceFileEvents", WINDOWS, _FILE, "FileDeleted"),
    ("windows", "registry_add", None): _src("DeviceRegistryEvents", WINDOWS, _REGISTRY, "RegistryKeyCreated"),
    ("windows", "registry_delete", None): _src("DeviceRegistryEvents", WINDOWS, _REGISTRY,
                                               "RegistryKeyDeleted RegistryValueDeleted"),
    ("windows", "registry_set", None): _src("DeviceRegistryEvents", WINDOWS, _REGISTRY, "RegistryValueSet"),
    ("windows", "registry_rename", None): _src("DeviceRegistryEvents", WINDOWS, _REGISTRY, "RegistryKeyRenamed"),
    ("windows", "registry_event", None): _src("DeviceRegistryEvents", WINDOWS, _REGISTRY),
    ("windows", "dns_query", None): _src("DeviceEvents", WINDOWS, _DNS, "DnsQueryResponse"),
    ("windows", "pipe_created", None): _src("DeviceEvents", WINDOWS, _PIPE, "NamedPipeEvent"),
    ("windows", "create_remote_thread", None): _src("DeviceEvents", WINDOWS, _TARGET_PROCESS,
                                                    "CreateRemoteThreadApiCall"),
    ("windows", "process_access", None): _src("DeviceEvents", WINDOWS, _TARGET_PROCESS, "OpenProcessApiCall"),
    ("windows", None, "security"): _src(_SECURITY_TABLES, WINDOWS, _ORIGINALS, channel="Security"),
    ("windows", None, "sysmon"): _src(_SYSMON_TABLES, WINDOWS, _ORIGINALS,
                                      channel="Microsoft-Windows-Sysmon/Operational"),
    ("linux", "process_creation", None): _src("DeviceProcessEvents", LINUX, _PROCESS, "ProcessCreated"),
    ("linux", "file_event", None): _src("DeviceFileEvents", LINUX, _FILE, "FileCreated FileModified"),
    ("linux", "network_connection", None): _src(
        "DeviceNetworkEvents", LINUX, _NETWORK,
        "ConnectionSuccess ConnectionFailed ConnectionAttempt InboundConnectionAccepted"),
}


@dataclass
class NoSource:
    """Why a logsource cannot run (shown by ``garrison rules status``)."""

    reason: str
    extra: dict[str, str] = field(default_factory=dict)


def find_source(product: str | None, category: str | None, service: str | None) -> Source | NoSource:
    key = (product, category, service)
    source = LOGSOURCES.get(key)
    if source is not None:
        return source
    shown = "/".join(p for p in (product or "*", category or "*", service or "*"))
    return NoSource(f"no Garrison telemetry for logsource {shown}")
