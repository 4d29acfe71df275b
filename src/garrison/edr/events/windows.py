"""Windows event logs → the hunting tables (agentless telemetry: ``garrison events import``).

Inputs: EVTX files (parsed by ``evtx``, the maintained Rust parser), the JSON it or Sigma's regression
data render (``{"Event": {"System": …, "EventData": …}}``: one object, an array or one a line), JSON lines
as NXLog / Windows Event Forwarding exports write them (fields flat: ``EventID``, ``Channel``,
``SourceName``, the event data), Winlogbeat's (``winlog.event_id``, ``winlog.event_data``), and zip
archives of those (as OTRF's Security-Datasets ship them).

Sysmon 1, 3, 5, 7, 8, 10, 11, 12–14, 17, 18, 22, 23 and Security 4624, 4625, 4688, 4720, 4722, 4725, 4726,
4732, 4733, 4728, 4756, 4698, 1102 are mapped (the registry :data:`MAPPERS`); every original field is
kept in ``AdditionalFields``. Other events are counted as skipped. A record that cannot be read or
mapped fails the whole file with an error naming the file and the record: nothing of it is stored.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Any

from pydantic import ValidationError

from garrison.core.errors import Invalid
from garrison.protocol.events import EVENT_MODELS, MAX_LONG_STRING, MAX_STRING

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_RECORDS = 5_000_000
EVTX_MAGIC = b"ElfFile\x00"
SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"
EVENTLOG = "Microsoft-Windows-Eventlog"


class LogImportError(Invalid):
    """A file that cannot be imported; the message names the file and the record."""


@dataclass
class WinRecord:
    ref: str  # "file.evtx record 17", "file.json line 3": where an error points
    provider: str
    event_id: int
    time: dt.datetime
    computer: str
    data: dict[str, Any]  # the event's own fields (EventData / UserData / flat JSON)
    original: dict[str, Any]  # every field as read, for AdditionalFields


@dataclass
class FileResult:
    path: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    computers: Counter[str] = field(default_factory=Counter)


# --- reading ---------------------------------------------------------------------------------

def read_file(name: str, data: bytes) -> Iterator[WinRecord]:
    if len(data) > MAX_FILE_BYTES:
        raise LogImportError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    if data.startswith(EVTX_MAGIC):
        yield from _read_evtx(name, data)
    elif data.startswith(b"PK\x03\x04"):
        yield from _read_zip(name, data)
    else:
        yield from _read_json(name, data)


def _read_zip(name: str, data: bytes) -> Iterator[WinRecord]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        # macOS resource forks (__MACOSX/._name) ride along in some archives: not logs
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    except zipfile.BadZipFile as exc:
        raise LogImportError(f"{name}: not a readable zip archive ({exc})") from None
    total = 0
    for m in members:
        total += m.file_size
        if total > MAX_FILE_BYTES:
            raise LogImportError(f"{name}: unpacks to more than {MAX_FILE_BYTES} bytes")
        with archive.open(m) as fh:
            body = fh.read(MAX_FILE_BYTES + 1)
        yield from read_file(f"{name}:{m.filename}", body)


def _read_evtx(name: str, data: bytes) -> Iterator[WinRecord]:
    from evtx import PyEvtxParser

    try:
        parser = PyEvtxParser(io.BytesIO(data))
        records = parser.records_json()
        n = 0
        while True:
            try:
                rec = next(records)
            except StopIteration:
                return
            except (RuntimeError, OSError, ValueError) as exc:
                raise LogImportError(f"{name}: record after #{n}: unreadable ({str(exc)[:300]})") from None
            n += 1
            if not isinstance(rec, dict):
                raise LogImportError(f"{name}: record #{n}: unreadable ({str(rec)[:300]})")
            ref = f"{name} record {rec.get('event_record_id', n)}"
            try:
                doc = json.loads(rec["data"])
            except (KeyError, ValueError) as exc:
                raise LogImportError(f"{ref}: not JSON ({exc})") from None
            yield _from_event_xml_json(ref, doc)
    except (RuntimeError, OSError) as exc:
        raise LogImportError(f"{name}: not a readable EVTX file ({str(exc)[:300]})") from None


def _read_json(name: str, data: bytes) -> Iterator[WinRecord]:
    try:
        text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LogImportError(f"{name}: neither EVTX nor UTF-8/UTF-16 JSON text (byte {exc.start})") from None
    if not text.strip():
        raise LogImportError(f"{name}: empty file")
    if _is_json_lines(text):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError as exc:
                raise LogImportError(f"{name} line {lineno}: invalid JSON ({exc})") from None
            yield _from_json(f"{name} line {lineno}", d)
        return
    # one document, an array, or several documents one after the other (Sigma's regression JSON)
    decoder = json.JSONDecoder()
    pos, n = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise LogImportError(f"{name} record {n + 1}: invalid JSON ({exc})") from None
        for d in doc if isinstance(doc, list) else [doc]:
            n += 1
            yield _from_json(f"{name} record {n}", d)


def _is_json_lines(text: str) -> bool:
    first, _, rest = text.strip().partition("\n")
    if not first.strip().startswith("{") or not rest.strip():
        return False
    try:
        json.loads(first)
    except ValueError:
        return False
    return True


def _from_json(ref: str, d: Any) -> WinRecord:
    if not isinstance(d, dict):
        raise LogImportError(f"{ref}: not a JSON object")
    if "Event" in d and isinstance(d["Event"], dict):
        return _from_event_xml_json(ref, d)
    winlog = d.get("winlog")
    if isinstance(winlog, dict):  # Winlogbeat
        data = {**(winlog.get("event_data") or {}), **(winlog.get("user_data") or {})}
        return _record(ref, winlog.get("provider_name") or "", winlog.get("event_id"),
                       d.get("@timestamp") or winlog.get("time_created"), winlog.get("computer_name") or "", data, d)
    # NXLog / WEF flat JSON: the event's fields beside the system ones
    return _record(ref, d.get("SourceName") or d.get("ProviderName") or d.get("Provider") or "", d.get("EventID"),
                   d.get("UtcTime") or d.get("TimeCreated") or d.get("@timestamp") or d.get("EventTime"),
                   d.get("Hostname") or d.get("Computer") or "", d, d)


def _from_event_xml_json(ref: str, doc: dict[str, Any]) -> WinRecord:
    ev = doc.get("Event") if isinstance(doc.get("Event"), dict) else None
    if ev is None:
        raise LogImportError(f"{ref}: no Event element")
    system = ev.get("System") or {}
    if not isinstance(system, dict):
        raise LogImportError(f"{ref}: no System element")
    provider = ((system.get("Provider") or {}).get("#attributes") or {}).get("Name", "")
    event_id = system.get("EventID")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    when = ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
    data: dict[str, Any] = {}
    for part in ("EventData", "UserData"):
        block = ev.get(part)
        if isinstance(block, dict):
            for k, v in block.items():
                if isinstance(v, dict) and k != "#attributes":
                    data.update({kk: vv for kk, vv in v.items() if kk != "#attributes"})
                elif k != "#attributes":
                    data[k] = v
    original = {"EventID": event_id, "Provider": provider, "Channel": system.get("Channel"),
                "Computer": system.get("Computer"), "EventRecordID": system.get("EventRecordID"),
                "TimeCreated": when, **data}
    return _record(ref, provider, event_id, data.get("UtcTime") or when, system.get("Computer") or "", data, original)


def _record(ref: str, provider: Any, event_id: Any, when: Any, computer: Any, data: dict[str, Any],
            original: dict[str, Any]) -> WinRecord:
    try:
        eid = int(event_id)
    except (TypeError, ValueError):
        raise LogImportError(f"{ref}: no numeric EventID") from None
    return WinRecord(ref, str(provider), eid, _time(ref, when), str(computer)[:256], data, original)


def _time(ref: str, value: Any) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise LogImportError(f"{ref}: no event time")
    text = value.strip().replace(" UTC", "").replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    if "." in text:  # Windows writes 7 fractional digits; Python reads 6
        head, _, frac = text.partition(".")
        digits = "".join(c for c in frac if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{frac[len(digits):]}"
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise LogImportError(f"{ref}: unreadable event time {value[:60]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --- mapping ---------------------------------------------------------------------------------

Mapper = Callable[[WinRecord], dict[str, Any]]
MAPPERS: dict[tuple[str, int], Mapper] = {}


def mapper(provider: str, *ids: int) -> Callable[[Mapper], Mapper]:
    def register(fn: Mapper) -> Mapper:
        for i in ids:
            MAPPERS[(provider, i)] = fn
        return fn
    return register


def _s(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    v = str(v)
    return None if v in ("", "-") else v


def _int(rec: WinRecord, key: str) -> int | None:
    v = _s(rec.data, key)
    if v is None:
        return None
    try:
        return int(v, 16) if v.lower().startswith("0x") else int(v)
    except ValueError:
        raise LogImportError(f"{rec.ref}: {key} is not a number ({v[:40]!r})") from None


def _name(path: str | None) -> str | None:
    return PureWindowsPath(path).name if path else None


def _account(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    domain, sep, user = value.rpartition("\\")
    return (domain or None, user) if sep else (None, value)


def _hashes(value: str | None, prefix: str = "") -> dict[str, str]:
    out = {}
    for part in (value or "").split(","):
        algo, _, digest = part.partition("=")
        if algo.upper() in ("MD5", "SHA1", "SHA256") and digest:
            out[prefix + algo.upper()] = digest.lower()
    return out


def _time_of(rec: WinRecord, key: str) -> dt.datetime | None:
    v = _s(rec.data, key)
    return _time(rec.ref, v) if v else None


def _initiating(rec: WinRecord, image_key: str = "Image", pid_key: str = "ProcessId",
                user_key: str = "User") -> dict[str, Any]:
    image = _s(rec.data, image_key)
    domain, user = _account(_s(rec.data, user_key))
    return {"InitiatingProcessFolderPath": image, "InitiatingProcessFileName": _name(image),
            "InitiatingProcessId": _int(rec, pid_key), "InitiatingProcessAccountDomain": domain,
            "InitiatingProcessAccountName": user}


_INTEGRITY = {"S-1-16-4096": "Low", "S-1-16-8192": "Medium", "S-1-16-8448": "MediumPlus", "S-1-16-12288": "High",
              "S-1-16-16384": "System", "S-1-16-0": "Untrusted"}
_ELEVATION = {"%%1936": "TokenElevationTypeDefault", "%%1937": "TokenElevationTypeFull",
              "%%1938": "TokenElevationTypeLimited"}
_LOGON_TYPES = {2: "Interactive", 3: "Network", 4: "Batch", 5: "Service", 7: "Unlock", 8: "NetworkCleartext",
                9: "NewCredentials", 10: "RemoteInteractive", 11: "CachedInteractive"}
_FAILURES = {"0xc0000064": "InvalidUserName", "0xc000006a": "WrongPassword", "0xc000006d": "InvalidUserNameOrPassword",
             "0xc0000234": "AccountLocked", "0xc0000072": "AccountDisabled", "0xc000006f": "OutsideAllowedHours",
             "0xc0000070": "UnauthorizedWorkstation", "0xc0000193": "AccountExpired",
             "0xc0000071": "PasswordExpired", "0xc0000133": "ClockOutOfSync", "0xc0000224": "PasswordMustChange",
             "0xc000015b": "LogonTypeNotGranted"}


@mapper(SYSMON, 1)
def _sysmon_process(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    image, parent = _s(d, "Image"), _s(d, "ParentImage")
    domain, user = _account(_s(d, "User"))
    pdomain, puser = _account(_s(d, "ParentUser"))
    return {"Table": "DeviceProcessEvents", "ActionType": "ProcessCreated", "FolderPath": image, "FileName": _name(image),
            "ProcessId": _int(rec, "ProcessId"), "ProcessCommandLine": _s(d, "CommandLine"),
            "ProcessCreationTime": rec.time, "ProcessIntegrityLevel": _s(d, "IntegrityLevel"),
            "AccountDomain": domain, "AccountName": user, "LogonId": _int(rec, "LogonId"),
            "ProcessVersionInfoCompanyName": _s(d, "Company"), "ProcessVersionInfoProductName": _s(d, "Product"),
            "ProcessVersionInfoProductVersion": _s(d, "FileVersion"),
            "ProcessVersionInfoOriginalFileName": _s(d, "OriginalFileName"),
            "ProcessVersionInfoFileDescription": _s(d, "Description"), **_hashes(_s(d, "Hashes")),
            "InitiatingProcessFolderPath": parent, "InitiatingProcessFileName": _name(parent),
            "InitiatingProcessId": _int(rec, "ParentProcessId"),
            "InitiatingProcessCommandLine": _s(d, "ParentCommandLine"),
            "InitiatingProcessAccountDomain": pdomain, "InitiatingProcessAccountName": puser}


@mapper(SYSMON, 3)
def _sysmon_network(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    outbound = str(d.get("Initiated", "true")).lower() != "false"
    src = (_s(d, "SourceIp"), _int(rec, "SourcePort"))
    dst = (_s(d, "DestinationIp"), _int(rec, "DestinationPort"))
    local, remote = (src, dst) if outbound else (dst, src)
    proto = (_s(d, "Protocol") or "").lower()
    return {"Table": "DeviceNetworkEvents", "ActionType": "ConnectionSuccess" if outbound else "InboundConnectionAccepted",
            "LocalIP": local[0], "LocalPort": local[1], "RemoteIP": remote[0], "RemotePort": remote[1],
            "Protocol": {"tcp": "Tcp", "udp": "Udp"}.get(proto, proto or None),
            "RemoteUrl": _s(d, "DestinationHostname") if outbound else _s(d, "SourceHostname"), **_initiating(rec)}


@mapper(SYSMON, 5)
def _sysmon_terminate(rec: WinRecord) -> dict[str, Any]:
    image = _s(rec.data, "Image")
    return {"Table": "DeviceEvents", "ActionType": "ProcessTerminated", "FolderPath": image, "FileName": _name(image),
            "ProcessId": _int(rec, "ProcessId"), **_initiating(rec)}


@mapper(SYSMON, 7)
def _sysmon_image_load(rec: WinRecord) -> dict[str, Any]:
    loaded = _s(rec.data, "ImageLoaded")
    return {"Table": "DeviceImageLoadEvents", "ActionType": "ImageLoaded", "FolderPath": loaded,
            "FileName": _name(loaded), **_hashes(_s(rec.data, "Hashes")), **_initiating(rec)}


@mapper(SYSMON, 8)
def _sysmon_remote_thread(rec: WinRecord) -> dict[str, Any]:
    target = _s(rec.data, "TargetImage")
    return {"Table": "DeviceEvents", "ActionType": "CreateRemoteThreadApiCall", "FolderPath": target,
            "FileName": _name(target), "ProcessId": _int(rec, "TargetProcessId"),
            **_initiating(rec, "SourceImage", "SourceProcessId", "SourceUser")}


@mapper(SYSMON, 10)
def _sysmon_process_access(rec: WinRecord) -> dict[str, Any]:
    target = _s(rec.data, "TargetImage")
    return {"Table": "DeviceEvents", "ActionType": "OpenProcessApiCall", "FolderPath": target,
            "FileName": _name(target), "ProcessId": _int(rec, "TargetProcessId"),
            **_initiating(rec, "SourceImage", "SourceProcessId", "SourceUser")}


@mapper(SYSMON, 11, 23, 26)
def _sysmon_file(rec: WinRecord) -> dict[str, Any]:
    path = _s(rec.data, "TargetFilename")
    action = "FileCreated" if rec.event_id == 11 else "FileDeleted"
    return {"Table": "DeviceFileEvents", "ActionType": action, "FolderPath": path, "FileName": _name(path),
            **_hashes(_s(rec.data, "Hashes")), **_initiating(rec)}


_REG_ACTIONS = {"CreateKey": "RegistryKeyCreated", "DeleteKey": "RegistryKeyDeleted",
                "DeleteValue": "RegistryValueDeleted", "SetValue": "RegistryValueSet", "RenameKey": "RegistryKeyRenamed"}


@mapper(SYSMON, 12, 13, 14)
def _sysmon_registry(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    target = _s(d, "TargetObject") or ""
    kind = _s(d, "EventType") or {12: "CreateKey", 13: "SetValue", 14: "RenameKey"}[rec.event_id]
    row: dict[str, Any] = {"Table": "DeviceRegistryEvents", "ActionType": _REG_ACTIONS.get(kind, kind),
                           **_initiating(rec)}
    if kind in ("SetValue", "DeleteValue"):
        key, _, value = target.rpartition("\\")
        row.update(RegistryKey=key, RegistryValueName=value, RegistryValueData=_s(d, "Details"))
        details = _s(d, "Details") or ""
        row["RegistryValueType"] = "Dword" if details.startswith("DWORD") else "Qword" if details.startswith(
            "QWORD") else "Binary" if details.startswith("Binary") else "String" if details else None
    elif kind == "RenameKey":
        row.update(RegistryKey=_s(d, "NewName"), PreviousRegistryKey=target)
    else:
        row["RegistryKey"] = target
    return row


@mapper(SYSMON, 17, 18)
def _sysmon_pipe(rec: WinRecord) -> dict[str, Any]:
    return {"Table": "DeviceEvents", "ActionType": "NamedPipeEvent", "FileName": _s(rec.data, "PipeName"),
            **_initiating(rec)}


@mapper(SYSMON, 22)
def _sysmon_dns(rec: WinRecord) -> dict[str, Any]:
    return {"Table": "DeviceEvents", "ActionType": "DnsQueryResponse", "RemoteUrl": _s(rec.data, "QueryName"),
            **_initiating(rec)}


@mapper(SECURITY, 4688)
def _security_process(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    image, parent = _s(d, "NewProcessName"), _s(d, "ParentProcessName")
    target_user = _s(d, "TargetUserName")
    return {"Table": "DeviceProcessEvents", "ActionType": "ProcessCreated", "FolderPath": image, "FileName": _name(image),
            "ProcessId": _int(rec, "NewProcessId"), "ProcessCommandLine": _s(d, "CommandLine"),
            "ProcessCreationTime": rec.time, "ProcessIntegrityLevel": _INTEGRITY.get(_s(d, "MandatoryLabel") or ""),
            "ProcessTokenElevation": _ELEVATION.get(_s(d, "TokenElevationType") or ""),
            "AccountName": target_user or _s(d, "SubjectUserName"),
            "AccountDomain": _s(d, "TargetDomainName") if target_user else _s(d, "SubjectDomainName"),
            "AccountSid": _s(d, "TargetUserSid") if target_user else _s(d, "SubjectUserSid"),
            "LogonId": _int(rec, "SubjectLogonId"),
            "InitiatingProcessFolderPath": parent, "InitiatingProcessFileName": _name(parent),
            "InitiatingProcessId": _int(rec, "ProcessId"), "InitiatingProcessAccountName": _s(d, "SubjectUserName"),
            "InitiatingProcessAccountDomain": _s(d, "SubjectDomainName"),
            "InitiatingProcessAccountSid": _s(d, "SubjectUserSid"), "InitiatingProcessLogonId": _int(rec, "SubjectLogonId")}


@mapper(SECURITY, 4624, 4625)
def _security_logon(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    logon_type = _int(rec, "LogonType")
    process = _s(d, "ProcessName")
    row: dict[str, Any] = {
        "Table": "DeviceLogonEvents", "ActionType": "LogonSuccess" if rec.event_id == 4624 else "LogonFailed",
        "LogonType": _LOGON_TYPES.get(logon_type or -1, str(logon_type) if logon_type is not None else None),
        "AccountName": _s(d, "TargetUserName"), "AccountDomain": _s(d, "TargetDomainName"),
        "AccountSid": _s(d, "TargetUserSid"), "LogonId": _int(rec, "TargetLogonId"),
        "Protocol": _s(d, "AuthenticationPackageName") or _s(d, "LogonProcessName"),
        "RemoteIP": _s(d, "IpAddress"), "RemotePort": _int(rec, "IpPort") or None,
        "RemoteDeviceName": _s(d, "WorkstationName"),
        "InitiatingProcessFolderPath": process, "InitiatingProcessFileName": _name(process),
        "InitiatingProcessId": _int(rec, "ProcessId"), "InitiatingProcessAccountName": _s(d, "SubjectUserName"),
        "InitiatingProcessAccountDomain": _s(d, "SubjectDomainName"),
        "InitiatingProcessAccountSid": _s(d, "SubjectUserSid")}
    if rec.event_id == 4625:
        code = (_s(d, "SubStatus") or "").lower()
        if code in ("", "0x0"):
            code = (_s(d, "Status") or "").lower()
        row["FailureReason"] = _FAILURES.get(code, code or None)
    return row


_ACCOUNT_ACTIONS = {4720: "UserAccountCreated", 4722: "UserAccountEnabled", 4725: "UserAccountDisabled",
                    4726: "UserAccountDeleted", 4732: "UserAccountAddedToLocalGroup",
                    4733: "UserAccountRemovedFromLocalGroup", 4728: "UserAccountAddedToGroup",
                    4756: "UserAccountAddedToGroup", 4698: "ScheduledTaskCreated", 1102: "SecurityLogCleared"}


@mapper(SECURITY, *_ACCOUNT_ACTIONS)
@mapper(EVENTLOG, 1102)
def _security_account(rec: WinRecord) -> dict[str, Any]:
    d = rec.data
    row: dict[str, Any] = {"Table": "DeviceEvents", "ActionType": _ACCOUNT_ACTIONS[rec.event_id],
                           "InitiatingProcessAccountName": _s(d, "SubjectUserName"),
                           "InitiatingProcessAccountDomain": _s(d, "SubjectDomainName"),
                           "InitiatingProcessAccountSid": _s(d, "SubjectUserSid"),
                           "InitiatingProcessLogonId": _int(rec, "SubjectLogonId")}
    if rec.event_id in (4732, 4733, 4728, 4756):  # the member is the account; the target is the group
        domain, user = _account(_s(d, "MemberName"))
        row.update(AccountSid=_s(d, "MemberSid"), AccountName=user if user and "=" not in user else None,
                   AccountDomain=domain)
    elif rec.event_id == 4698:
        row.update(FileName=_s(d, "TaskName"))
    elif rec.event_id != 1102:
        row.update(AccountName=_s(d, "TargetUserName"), AccountDomain=_s(d, "TargetDomainName"),
                   AccountSid=_s(d, "TargetSid") or _s(d, "TargetUserSid"))
    return row


# --- the whole file --------------------------------------------------------------------------

def _bounded(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) and len(value) > limit else value


def _additional(rec: WinRecord) -> str:
    text = json.dumps(rec.original, default=str, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= MAX_LONG_STRING:
        return text
    slim = {k: _bounded(v, 1024) for k, v in rec.original.items()}  # long Message texts first
    text = json.dumps(slim, default=str, separators=(",", ":"), ensure_ascii=False)
    return text[:MAX_LONG_STRING]


_LONG = ("ProcessCommandLine", "InitiatingProcessCommandLine", "RegistryValueData")


def map_record(rec: WinRecord) -> dict[str, Any] | None:
    fn = MAPPERS.get((rec.provider, rec.event_id))
    if fn is None:
        return None
    row = {k: _bounded(v, MAX_LONG_STRING if k in _LONG else MAX_STRING) for k, v in fn(rec).items() if v is not None}
    row["Timestamp"] = rec.time
    row["AdditionalFields"] = _additional(rec)
    try:  # the same bounds and types as an agent's events
        EVENT_MODELS[row["Table"]].model_validate(row)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise LogImportError(f"{rec.ref}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    return row


def parse_file(name: str, data: bytes) -> FileResult:
    """Every record of a file mapped, or :class:`LogImportError` naming the first bad record."""
    out = FileResult(name)
    for rec in read_file(name, data):
        out.records += 1
        if out.records > MAX_RECORDS:
            raise LogImportError(f"{name}: more than {MAX_RECORDS} records")
        row = map_record(rec)
        if row is None:
            out.skipped[f"{rec.provider or 'unknown'} {rec.event_id}"] += 1
            continue
        out.computers[rec.computer] += 1
        out.rows.append(row)
    return out
