"""Windows event logs (real Sysmon/Security logs from SigmaHQ and OTRF) mapped to the hunting tables;
`garrison events import` stores all or nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from garrison.edr.events.windows import LogImportError, parse_file

DATA = Path(__file__).resolve().parents[1] / "data" / "edr" / "windows"


def _parse(rel: str):  # type: ignore[no-untyped-def]
    return parse_file(rel, (DATA / rel).read_bytes())


def test_sysmon_process_creation_from_evtx() -> None:
    r = _parse("sigma/sysmon1_process_creation.evtx")
    rows = [x for x in r.rows if x["Table"] == "DeviceProcessEvents"]
    assert len(rows) == r.records >= 2
    p = rows[0]
    assert p["ActionType"] == "ProcessCreated" and p["FileName"] == "SnippingTool.exe"
    assert p["FolderPath"].endswith("\\SnippingTool\\SnippingTool.exe") and p["ProcessId"] == 6180
    assert "ms-screensketch:edit" in p["ProcessCommandLine"] and p["ProcessIntegrityLevel"] == "Medium"
    assert (p["AccountDomain"], p["AccountName"]) == ("swachchhanda", "xodih") and p["LogonId"] == 0x33E8D150
    assert p["SHA256"].startswith("a80cb394d251f781") and p["MD5"] == "ff9d1ed3795b9ad94f2390d5e5da5905"
    assert p["InitiatingProcessFileName"] and p["InitiatingProcessId"] is not None
    assert p["Timestamp"].isoformat().startswith("2026-04-20T10:00:35.64")
    extra = json.loads(p["AdditionalFields"])  # every original field is kept
    assert extra["EventRecordID"] == 86918 and extra["ProcessGuid"] == "0197231E-F943-69E5-A527-000000000800"
    assert extra["Channel"] == "Microsoft-Windows-Sysmon/Operational" and extra["CurrentDirectory"]


def test_every_mapped_kind_from_real_logs() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    by_kind = {}
    for rel in ("sigma/sysmon7_image_load.evtx", "sigma/sysmon11_file_create.evtx", "sigma/sysmon12_registry_delete.evtx",
                "sigma/sysmon13_registry_set.json", "otrf/cmd_sharpview_pcre_net.zip",
                "otrf/covenant_copy_smb_CreateRequest.zip"):
        for row in _parse(rel).rows:
            seen[(row["Table"], row["ActionType"])] += 1
            by_kind.setdefault((row["Table"], row["ActionType"]), row)
    for kind in [("DeviceImageLoadEvents", "ImageLoaded"), ("DeviceFileEvents", "FileCreated"),
                 ("DeviceFileEvents", "FileDeleted"), ("DeviceRegistryEvents", "RegistryValueSet"),
                 ("DeviceRegistryEvents", "RegistryValueDeleted"), ("DeviceRegistryEvents", "RegistryKeyCreated"),
                 ("DeviceNetworkEvents", "ConnectionSuccess"),
                 ("DeviceEvents", "ProcessTerminated"), ("DeviceEvents", "DnsQueryResponse"),
                 ("DeviceProcessEvents", "ProcessCreated"), ("DeviceLogonEvents", "LogonSuccess"),
                 ("DeviceEvents", "OpenProcessApiCall"), ("DeviceEvents", "SecurityLogCleared")]:
        assert seen[kind], kind
    net = by_kind[("DeviceNetworkEvents", "ConnectionSuccess")]
    assert (net["LocalIP"], net["RemoteIP"], net["RemotePort"], net["Protocol"]) == (
        "172.18.39.5", "172.18.38.5", 389, "Tcp")
    assert net["InitiatingProcessFileName"] == "SharpView.exe"
    logon = by_kind[("DeviceLogonEvents", "LogonSuccess")]
    assert (logon["LogonType"], logon["AccountName"], logon["AccountDomain"], logon["RemoteIP"], logon["Protocol"]) == (
        "Network", "pgustavo", "THESHIRE.LOCAL", "172.18.39.5", "Kerberos")
    dns = by_kind[("DeviceEvents", "DnsQueryResponse")]
    assert dns["RemoteUrl"].endswith("THESHIRE.LOCAL.")
    reg = by_kind[("DeviceRegistryEvents", "RegistryValueSet")]
    assert reg["RegistryKey"].startswith("HK") and reg["RegistryValueName"] and reg["RegistryValueData"]
    sec = [r for r in _parse("otrf/cmd_sharpview_pcre_net.zip").rows
           if json.loads(r["AdditionalFields"]).get("EventID") == 4688]
    assert sec and sec[0]["FileName"] == "SharpView.exe" and sec[0]["ProcessId"] == 0xEA8
    assert sec[0]["InitiatingProcessId"] == 0x1E7C and sec[0]["ProcessTokenElevation"] == "TokenElevationTypeFull"
    assert sec[0]["ProcessIntegrityLevel"] == "High" and sec[0]["InitiatingProcessFileName"] == "cmd.exe"


def test_account_and_failed_logon_events() -> None:
    # No small public sample holds 4720/4732/4625; these WEF-style records use the documented field names.
    lines = [
        {"EventID": 4720, "SourceName": "Microsoft-Windows-Security-Auditing", "TimeCreated": "2024-03-01T10:00:00Z",
         "Hostname": "ws1", "TargetUserName": "backdoor", "TargetDomainName": "WS1", "TargetSid": "S-1-5-21-1-1001",
         "SubjectUserName": "admin", "SubjectLogonId": "0x3e7"},
        {"EventID": 4732, "SourceName": "Microsoft-Windows-Security-Auditing", "TimeCreated": "2024-03-01T10:00:01Z",
         "Hostname": "ws1", "MemberSid": "S-1-5-21-1-1001", "MemberName": "-", "TargetUserName": "Administrators",
         "SubjectUserName": "admin"},
        {"EventID": 4625, "SourceName": "Microsoft-Windows-Security-Auditing", "TimeCreated": "2024-03-01T10:00:02Z",
         "Hostname": "ws1", "TargetUserName": "root", "LogonType": "10", "IpAddress": "203.0.113.9", "IpPort": "5555",
         "Status": "0xc000006d", "SubStatus": "0xc000006a"},
    ]
    rows = parse_file("sec.jsonl", "\n".join(json.dumps(x) for x in lines).encode()).rows
    assert [(r["Table"], r["ActionType"]) for r in rows] == [
        ("DeviceEvents", "UserAccountCreated"), ("DeviceEvents", "UserAccountAddedToLocalGroup"),
        ("DeviceLogonEvents", "LogonFailed")]
    assert rows[0]["AccountName"] == "backdoor" and rows[0]["AccountSid"] == "S-1-5-21-1-1001"
    assert rows[1]["AccountSid"] == "S-1-5-21-1-1001" and json.loads(rows[1]["AdditionalFields"])[
        "TargetUserName"] == "Administrators"
    assert (rows[2]["LogonType"], rows[2]["FailureReason"], rows[2]["RemotePort"]) == (
        "RemoteInteractive", "WrongPassword", 5555)


@pytest.mark.parametrize("content, where", [
    ((b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "TimeCreated": "2024-01-01T00:00:00Z"}\n'
     b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "TimeCreated": "2024-01-01T00:00:00Z"}\n{"Event'),
     "bad.jsonl line 3"),
    ((b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "TimeCreated": "2024-01-01T00:00:00Z"}\n'
     b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "TimeCreated": "yesterday"}\n'), "bad.jsonl line 2"),
    ((b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "TimeCreated": "2024-01-01T00:00:00Z",'
     b' "ProcessId": "x12"}\n{"EventID": 2}\n'), "bad.jsonl line 1: ProcessId"),
    (b"\x00\x01binary", "bad.jsonl"),
])
def test_a_malformed_file_names_the_record(content: bytes, where: str) -> None:
    with pytest.raises(LogImportError, match=where.replace(".", r"\.")):
        parse_file("bad.jsonl", content)


def test_a_corrupt_evtx_names_the_record() -> None:
    data = bytearray((DATA / "sigma/sysmon1_process_creation.evtx").read_bytes())
    data[4096 + 512: 4096 + 1400] = b"\xff" * 888  # inside the first chunk's records
    with pytest.raises(LogImportError, match=r"broken\.evtx.*record"):
        parse_file("broken.evtx", bytes(data))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "garrison.cli.main", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_imports_a_directory_or_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli("tenant", "create", "acme", "--data-dir", str(data), "--json").returncode == 0
    bad = tmp_path / "logs" / "zz-bad.jsonl"
    bad.parent.mkdir()
    (bad.parent / "sub").mkdir()
    (bad.parent / "sub" / "good.evtx").write_bytes((DATA / "sigma/sysmon1_process_creation.evtx").read_bytes())
    bad.write_text('{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon"}\n{"x": 1}\n')
    r = _cli("events", "import", "--tenant", "acme", "--device", "win-1", str(bad.parent), "--data-dir", str(data),
             "--json")
    assert r.returncode == 2 and "zz-bad.jsonl line 1" in (r.stdout + r.stderr)
    events_db = data / "events.duckdb"
    if events_db.exists():  # nothing of the good file either
        with duckdb.connect(str(events_db), read_only=True) as db:
            assert db.execute('SELECT count(*) FROM "DeviceProcessEvents"').fetchone()[0] == 0
    bad.unlink()
    (bad.parent / "otrf.zip").write_bytes((DATA / "otrf/cmd_sharpview_pcre_net.zip").read_bytes())
    r = _cli("events", "import", "--tenant", "acme", "--device", "WIN-1", str(bad.parent), "--data-dir", str(data),
             "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["files"] == 2 and out["created"] is True and out["computerDnsName"] == "win-1"
    assert out["stored"] == sum(out["tables"].values()) > 100 and "Microsoft-Windows-Security-Auditing 4658" in out[
        "skipped"]
    with duckdb.connect(str(events_db), read_only=True) as db:
        n, name = db.execute('SELECT count(*), any_value("DeviceName") FROM "DeviceProcessEvents"').fetchone()
    assert n == out["tables"]["DeviceProcessEvents"] and name == "win-1"
    # importing again adds the events again (an import is not an agent batch), under a new ReportId range
    r = _cli("events", "import", "--tenant", "acme", "--device", "win-1", str(bad.parent / "sub"), "--data-dir",
             str(data), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["created"] is False
