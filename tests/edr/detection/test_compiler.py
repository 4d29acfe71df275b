"""The Sigma compiler: every modifier the SigmaHQ ruleset uses, keywords, field mapping and the reasons a
rule cannot run — each asserted on events shaped as the event store holds them (MDE columns)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from garrison.edr.detection import rules
from garrison.edr.detection.engine import Detector
from garrison.edr.detection.logsources import EventView
from garrison.edr.detection.rules import Rule, Unrunnable

PROC = "logsource: {product: windows, category: process_creation}"


def compile_one(detection: str, logsource: str = PROC, placeholders: dict[str, list[str]] | None = None,
                ) -> Rule | Unrunnable:
    text = f"title: t\nid: 5f0b8c63-3c0e-4d4e-9d0b-000000000001\nstatus: test\nlevel: high\n{logsource}\n" \
           f"detection:\n{detection}"
    ruleset = rules.load([("t.yml", text)], placeholders)
    assert len(ruleset.rules) + len(ruleset.unrunnable) == 1
    return (ruleset.rules or ruleset.unrunnable)[0]


WIN = '{"EventID": 1}'  # an imported Windows event (its original fields name its EventID)


def proc(**cols: Any) -> dict[str, Any]:
    return {"ActionType": "ProcessCreated", "AdditionalFields": WIN, **cols}


def matches(detection: str, row: dict[str, Any], table: str = "DeviceProcessEvents", **kw: Any) -> bool:
    rule = compile_one(detection, **kw)
    assert isinstance(rule, Rule), rule
    direct = rule.compiled.predicate(EventView(row, table))
    # the indexed engine must agree with the bare predicate (the index only saves work)
    via_engine = bool(Detector(rules.RuleSet([rule])).evaluate(table, [row]))
    assert direct == via_engine
    return direct


def sel(body: str) -> str:
    lines = "\n".join("        " + line for line in body.strip().splitlines())
    return f"    selection:\n{lines}\n    condition: selection\n"


CMD = r"C:\Windows\System32\cmd.exe"


@pytest.mark.parametrize(("detection", "row", "expected"), [
    # plain value: whole-value, case-insensitive equality on the mapped column (Image -> FolderPath)
    (sel(r"Image: 'c:\windows\system32\CMD.EXE'"), proc(FolderPath=CMD), True),
    (sel(r"Image: 'C:\Windows\System32\cmd'"), proc(FolderPath=CMD), False),
    (sel(r"Image|endswith: '\cmd.exe'"), proc(FolderPath=CMD), True),
    (sel(r"Image|startswith: 'C:\Windows\'"), proc(FolderPath=CMD), True),
    (sel(r"Image|startswith: 'C:\Program Files\'"), proc(FolderPath=CMD), False),
    (sel("CommandLine|contains: ' /C '"), proc(ProcessCommandLine="cmd.exe /c whoami"), True),
    # wildcards inside a value
    (sel("CommandLine: 'cmd*who?mi'"), proc(ProcessCommandLine="cmd.exe /c whoami"), True),
    (sel("CommandLine: 'cmd*who?mi'"), proc(ProcessCommandLine="cmd.exe /c whoamii"), False),
    # a list is OR; |all makes it AND
    (sel("CommandLine|contains:\n  - 'nothing'\n  - 'whoami'"), proc(ProcessCommandLine="whoami /all"), True),
    (sel("CommandLine|contains|all:\n  - 'whoami'\n  - '/priv'"), proc(ProcessCommandLine="whoami /all"), False),
    (sel("CommandLine|contains|all:\n  - 'whoami'\n  - '/all'"), proc(ProcessCommandLine="whoami /all"), True),
    # cased
    (sel("CommandLine|cased|contains: 'WhoAmI'"), proc(ProcessCommandLine="whoami"), False),
    (sel("CommandLine|cased|contains: 'WhoAmI'"), proc(ProcessCommandLine="x WhoAmI"), True),
    # windash: -, /, en dash, em dash, horizontal bar
    (sel("CommandLine|windash|contains: ' -enc '"), proc(ProcessCommandLine="powershell /enc AAA"), True),
    (sel("CommandLine|windash|contains: ' -enc '"), proc(ProcessCommandLine="powershell \u2013enc AAA"), True),
    (sel("CommandLine|windash|contains: ' -enc '"), proc(ProcessCommandLine="powershell +enc AAA"), False),
    # re, with flags
    (sel(r"CommandLine|re: '\d{3}\.\d+'"), proc(ProcessCommandLine="ping 127.0.0.1"), True),
    (sel("CommandLine|re: 'WHOAMI'"), proc(ProcessCommandLine="whoami"), False),
    (sel("CommandLine|re|i: 'WHOAMI'"), proc(ProcessCommandLine="whoami"), True),
    (sel("CommandLine|re|m: '^second$'"), proc(ProcessCommandLine="first\nsecond"), True),
    (sel("CommandLine|re: '^second$'"), proc(ProcessCommandLine="first\nsecond"), False),
    (sel("CommandLine|re|s: 'first.second'"), proc(ProcessCommandLine="first\nsecond"), True),
    # numbers (the column is a long; the rule's number as text or number)
    (sel("ProcessId: 4242"), proc(ProcessId=4242), True),
    (sel("ProcessId: 4243"), proc(ProcessId=4242), False),
    # gt/gte/lt/lte
    (sel("ProcessId|gt: 4000"), proc(ProcessId=4242), True),
    (sel("ProcessId|lt: 4000"), proc(ProcessId=4242), False),
    (sel("ProcessId|gte: 4242"), proc(ProcessId=4242), True),
    (sel("ProcessId|lte: 4241"), proc(ProcessId=4242), False),
    # exists / null
    (sel("CommandLine|exists: true"), proc(ProcessCommandLine="x"), True),
    (sel("CommandLine|exists: false"), proc(ProcessCommandLine="x"), False),
    (sel("CommandLine|exists: false"), proc(), True),
    (sel("CommandLine: null"), proc(), True),
    (sel("CommandLine: ''"), proc(ProcessCommandLine="x"), False),
    # fieldref: the value of another field (the process names itself as its parent)
    (sel("Image|fieldref: ParentImage"), proc(FolderPath=CMD, InitiatingProcessFolderPath=CMD.upper()), True),
    (sel("Image|fieldref: ParentImage"), proc(FolderPath=CMD, InitiatingProcessFolderPath="x"), False),
    (sel("CommandLine|fieldref|startswith: Image"), proc(FolderPath="a.exe", ProcessCommandLine="A.exe -x"), True),
    (sel("CommandLine|fieldref|endswith: Image"), proc(FolderPath="a.exe", ProcessCommandLine="A.exe -x"), False),
    # derived field: Sysmon's User = DOMAIN\name from Defender's two columns
    (sel(r"User|contains: 'CORP\admin'"), proc(AccountDomain="CORP", AccountName="Admin"), True),
    # Hashes: a field Defender splits into SHA1/MD5/SHA256 columns
    (sel("Hashes|contains: 'MD5=0123456789ABCDEF0123456789ABCDEF'"),
     proc(MD5="0123456789abcdef0123456789abcdef"), True),
    # a Sysmon field Defender has no column for: read from the original fields
    (sel(r"CurrentDirectory: 'C:\Temp\'"), proc(AdditionalFields=json.dumps(
        {"EventID": 1, "CurrentDirectory": "C:\\Temp\\"})), True),
])
def test_value_modifiers(detection: str, row: dict[str, Any], expected: bool) -> None:
    assert matches(detection, row) is expected


def _utf16le_b64_offsets(text: str) -> list[str]:
    data = text.encode("utf-16le")
    return [base64.b64encode(b"\0" * i + data).decode() for i in range(3)]


def test_base64_and_base64offset_and_wide() -> None:
    plain = base64.b64encode(b"Invoke-Mimikatz").decode()
    assert matches(sel("CommandLine|base64: 'Invoke-Mimikatz'"), proc(ProcessCommandLine=f"x {plain}")) is False
    assert matches(sel("CommandLine|base64: 'Invoke-Mimikatz'"), proc(ProcessCommandLine=plain)) is True
    for i in range(3):
        encoded = base64.b64encode(b"xy"[:i] + b"IEX (New-Object" + b"z").decode()
        assert matches(sel("CommandLine|base64offset|contains: 'IEX (New-Object'"),
                       proc(ProcessCommandLine=f"powershell -e {encoded}")), i
    for variant in _utf16le_b64_offsets("Invoke-Expression"):
        assert matches(sel("CommandLine|wide|base64offset|contains: 'Invoke-Expression'"),
                       proc(ProcessCommandLine=f"powershell -enc {variant}"))
    be = base64.b64encode("whoami".encode("utf-16be")).decode()
    assert matches(sel("CommandLine|utf16be|base64offset|contains: 'whoami'"), proc(ProcessCommandLine=be))
    le = base64.b64encode("whoami".encode("utf-16le")).decode()
    assert matches(sel("CommandLine|wide|base64offset|contains: 'whoami'"), proc(ProcessCommandLine=le))
    bom = base64.b64encode("whoami".encode("utf-16")).decode()  # with its byte-order mark
    assert matches(sel("CommandLine|utf16|base64offset|contains: 'whoami'"), proc(ProcessCommandLine=bom))
    assert not matches(sel("CommandLine|wide|base64offset|contains: 'whoami'"),
                       proc(ProcessCommandLine=base64.b64encode(b"whoami").decode()))


def test_cidr_on_the_remote_address_of_an_outbound_connection() -> None:
    net = "logsource: {product: windows, category: network_connection}"
    d = sel("DestinationIp|cidr:\n  - '10.0.0.0/8'\n  - 'fd00::/8'")
    out = {"ActionType": "ConnectionSuccess", "AdditionalFields": '{"EventID": 3}', "LocalIP": "192.168.1.5", "RemoteIP": "10.1.2.3"}
    inbound = {**out, "ActionType": "InboundConnectionAccepted", "LocalIP": "192.168.1.5", "RemoteIP": "10.1.2.3"}
    v6 = {**out, "LocalIP": "::1", "RemoteIP": "fd12::1"}
    assert matches(d, out, "DeviceNetworkEvents", logsource=net)
    assert not matches(d, inbound, "DeviceNetworkEvents", logsource=net)  # the destination is this device
    assert matches(d, v6, "DeviceNetworkEvents", logsource=net)
    assert not matches(d, {**out, "RemoteIP": "not-an-ip"}, "DeviceNetworkEvents", logsource=net)


def test_expand_with_configured_placeholders_and_without() -> None:
    d = sel("Image|endswith|expand: '%admin_tools%'")
    ok = compile_one(d, placeholders={"admin_tools": [r"\psexec.exe", r"\adfind.exe"]})
    assert isinstance(ok, Rule)
    assert ok.compiled.predicate(EventView(proc(FolderPath=r"C:\t\AdFind.exe"), "DeviceProcessEvents"))
    assert not ok.compiled.predicate(EventView(proc(FolderPath=r"C:\t\cmd.exe"), "DeviceProcessEvents"))
    missing = compile_one(d)
    assert isinstance(missing, Unrunnable)
    assert missing.reason == "placeholder %admin_tools% has no configured values"


def test_keywords_search_every_text_of_the_event() -> None:
    d = "    keywords:\n        - 'mimikatz'\n        - 'sekurlsa::'\n    condition: keywords\n"
    assert matches(d, proc(ProcessCommandLine="x SEKURLSA::logonpasswords"))
    assert matches(d, proc(AdditionalFields='{"EventID": 1, "Description": "Mimikatz"}'))
    assert not matches(d, proc(ProcessCommandLine="notepad"))


def test_condition_operators() -> None:
    d = ("    a:\n        Image|endswith: '\\rundll32.exe'\n    b:\n        CommandLine|contains: 'javascript:'\n"
         "    filter_1:\n        ParentImage|endswith: '\\explorer.exe'\n"
         "    condition: a and b and not 1 of filter_*\n")
    hit = proc(FolderPath=r"C:\w\rundll32.exe", ProcessCommandLine="javascript:x", InitiatingProcessFolderPath="a")
    assert matches(d, hit)
    assert not matches(d, {**hit, "InitiatingProcessFolderPath": r"C:\Windows\explorer.exe"})
    assert not matches(d, {**hit, "ProcessCommandLine": "x"})
    # a rule whose only condition is a negation has no trigger literal: evaluated for every event
    neg = compile_one("    f:\n        Image|endswith: '\\svchost.exe'\n    condition: not f\n")
    assert isinstance(neg, Rule) and neg.compiled.trigger is None
    assert Detector(rules.RuleSet([neg])).evaluate("DeviceProcessEvents", [proc(FolderPath="a.exe")])


def test_logsource_selects_table_action_and_platform() -> None:
    rule = compile_one(sel(r"Image|endswith: '\cmd.exe'"))
    assert isinstance(rule, Rule)
    det = Detector(rules.RuleSet([rule]))
    windows = proc(FolderPath=CMD)
    assert det.evaluate("DeviceProcessEvents", [windows])
    assert not det.evaluate("DeviceFileEvents", [windows])  # another table
    assert not det.evaluate("DeviceProcessEvents", [{**windows, "ActionType": "ProcessTerminated"}])
    # a Linux rule does not see an imported Windows event, nor a Windows rule a Linux sensor's event
    linux = compile_one(sel("Image|endswith: '/cmd.exe'"), logsource="logsource: {product: linux, category: "
                        "process_creation}")
    assert isinstance(linux, Rule)
    assert not Detector(rules.RuleSet([linux])).evaluate(
        "DeviceProcessEvents", [proc(FolderPath="/x/cmd.exe", AdditionalFields='{"EventID":1}')])
    linux_row = {"ActionType": "ProcessCreated", "FolderPath": "/x/cmd.exe"}
    assert Detector(rules.RuleSet([linux])).evaluate("DeviceProcessEvents", [linux_row])


def test_security_service_rules_read_the_original_event() -> None:
    sec = "logsource: {product: windows, service: security}"
    d = sel("EventID: 4625\nLogonType: 3")
    rule = compile_one(d, logsource=sec)
    assert isinstance(rule, Rule)
    original = {"EventID": 4625, "Channel": "Security", "LogonType": "3", "TargetUserName": "bob"}
    row = {"ActionType": "LogonFailed", "AdditionalFields": json.dumps(original)}
    det = Detector(rules.RuleSet([rule]))
    assert det.evaluate("DeviceLogonEvents", [row])
    other_channel = {**original, "Channel": "Microsoft-Windows-Sysmon/Operational"}
    assert not det.evaluate("DeviceLogonEvents", [{**row, "AdditionalFields": json.dumps(other_channel)}])


@pytest.mark.parametrize(("text", "reason"), [
    (("title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s:\n        eventName: x\n"
     "    condition: s\n"), "no Garrison telemetry for logsource aws/*/cloudtrail"),
    (("title: t\nlogsource: {product: windows, category: process_creation}\ndetection:\n    s:\n"
     "        Image: x\n    condition: s and missing\n"), "invalid"),
    (("title: t\nlogsource: {product: windows, category: process_creation}\ndetection:\n    s:\n"
     "        Image|nosuchmodifier: x\n    condition: s\n"), "invalid rule"),
    ("just: [a, yaml, list", "not a Sigma rule"),
])
def test_rules_that_cannot_run_say_why(text: str, reason: str) -> None:
    ruleset = rules.load([("bad.yml", text)])
    assert not ruleset.rules
    assert len(ruleset.unrunnable) == 1 and ruleset.unrunnable[0].reason.startswith(reason)
    assert ruleset.status()["notRunnable"] == 1


def test_rule_metadata_for_alerts() -> None:
    text = ("title: Whoami\nid: 5f0b8c63-3c0e-4d4e-9d0b-000000000002\nauthor: Jane Doe, John Roe\nlevel: high\n"
            "tags: [attack.discovery, attack.t1033, attack.t1059.001]\n" + PROC +
            "\ndetection:\n" + sel("Image|endswith: '\\whoami.exe'"))
    rule = rules.load([("w.yml", text)]).rules[0]
    assert (rule.title, rule.level, rule.author) == ("Whoami", "high", "Jane Doe, John Roe")
    assert rule.techniques == ["T1033", "T1059.001"]
    assert rule.tactics == ["discovery"]
