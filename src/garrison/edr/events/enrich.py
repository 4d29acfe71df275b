"""Enrichment at ingest: what hunting needs that a sensor or a log does not say itself.

* ``DeviceId``, ``DeviceName``, ``TenantId`` from the device record (never from the sender);
* ``ReportId``: unique per device and deterministic for a batch (a re-sent batch gets the same ids);
* ``LocalIPType`` / ``RemoteIPType`` (Defender's values) when the sender did not classify the address;
* process-tree links: the initiating process's name, path, command line, creation time and its parent,
  from the process creations already seen on the device.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
from typing import Any

_IP_COLUMNS = (("LocalIP", "LocalIPType"), ("RemoteIP", "RemoteIPType"))
IMPORT_REPORT_BASE = 1 << 62


def report_id(seq: int, index: int) -> int:
    """Agent batch ``seq`` >= 1 (< 2**46, up to 65,536 events); an import has ``seq`` <= -1 (up to 2**24)."""
    if seq > 0:
        return (seq << 16) | index
    return IMPORT_REPORT_BASE | ((-seq) << 24) | index


@functools.lru_cache(maxsize=65_536)
def ip_type(address: str) -> str | None:
    """Defender's IP type of an address: Public, Private, Loopback, LinkLocal, Multicast, Broadcast, …"""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "Unspecified"
    if ip.is_loopback:
        return "Loopback"
    if ip.is_link_local:
        return "LinkLocal"
    if ip.is_multicast:
        return "Multicast"
    if isinstance(ip, ipaddress.IPv4Address) and int(ip) == 0xFFFFFFFF:
        return "Broadcast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "Reserved"
    if ip.is_private:
        return "Private"
    if ip.is_reserved:
        return "Reserved"
    return "Public"


_CGNAT = ipaddress.ip_network("100.64.0.0/10")

# (process id, creation time, name, path, command line, parent id)
_Proc = tuple[int, dt.datetime | None, str | None, str | None, str | None, int | None]


class ProcessLinks:
    """Recent process creations per device, to link a child to its parent (bounded)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._procs: dict[tuple[str, int], _Proc] = {}

    def note(self, device_id: str, row: dict[str, Any]) -> None:
        pid = row.get("ProcessId")
        if pid is None:
            return
        if len(self._procs) >= self.size:
            self._procs.clear()
        self._procs[(device_id, pid)] = (pid, row.get("ProcessCreationTime"), row.get("FileName"),
                                         row.get("FolderPath"), row.get("ProcessCommandLine"),
                                         row.get("InitiatingProcessId"))

    def link(self, device_id: str, row: dict[str, Any]) -> None:
        ppid = row.get("InitiatingProcessId")
        if ppid is None:
            return
        parent = self._procs.get((device_id, ppid))
        if parent is None:
            return
        created = row.get("InitiatingProcessCreationTime")
        if created is not None and parent[1] is not None and created != parent[1]:
            return  # a reused pid: another process
        for column, value in (("InitiatingProcessCreationTime", parent[1]), ("InitiatingProcessFileName", parent[2]),
                              ("InitiatingProcessFolderPath", parent[3]), ("InitiatingProcessCommandLine", parent[4]),
                              ("InitiatingProcessParentId", parent[5])):
            if row.get(column) is None and value is not None:
                row[column] = value
        if parent[5] is not None and row.get("InitiatingProcessParentFileName") is None:
            grand = self._procs.get((device_id, parent[5]))
            if grand is not None:
                row["InitiatingProcessParentFileName"] = grand[2]
                if row.get("InitiatingProcessParentCreationTime") is None:
                    row["InitiatingProcessParentCreationTime"] = grand[1]


def enrich(row: dict[str, Any], table: str, tenant_id: int, device_id: str, device_name: str, rid: int,
           links: ProcessLinks) -> dict[str, Any]:
    """Complete one event row in place (``row`` holds the sender's columns) and return it."""
    row["TenantId"] = tenant_id
    row["DeviceId"] = device_id
    row["DeviceName"] = device_name
    row["ReportId"] = rid
    extra = row.get("AdditionalFields")
    if extra is not None and not isinstance(extra, str):
        row["AdditionalFields"] = json.dumps(extra, default=str, separators=(",", ":"))
    for ip_col, type_col in _IP_COLUMNS:
        ip = row.get(ip_col)
        if ip and row.get(type_col) is None:
            row[type_col] = ip_type(ip)
    if table == "DeviceProcessEvents":
        links.link(device_id, row)
        links.note(device_id, row)
    elif row.get("InitiatingProcessId") is not None:
        links.link(device_id, row)
    return row
