"""The telemetry wire contract: MDE columns, server-owned identity columns, bounds."""

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from garrison.protocol.events import (
    EVENT_MODELS,
    MAX_EVENTS_PER_BATCH,
    TABLES,
    EventBatch,
    columns,
    parse_batch_rows,
)

TS = "2026-12-01T10:00:00Z"


def test_every_table_has_the_mde_columns_in_order() -> None:
    counts = {"DeviceProcessEvents": 66, "DeviceNetworkEvents": 44, "DeviceFileEvents": 57, "DeviceLogonEvents": 48,
              "DeviceRegistryEvents": 43, "DeviceImageLoadEvents": 42, "DeviceEvents": 64, "DeviceInfo": 40,
              "DeviceNetworkInfo": 16}
    assert {t: len(columns(t)) for t in TABLES} == counts
    assert columns("DeviceNetworkEvents")[:6] == [("Timestamp", "datetime"), ("DeviceId", "string"),
                                                  ("DeviceName", "string"), ("ActionType", "string"),
                                                  ("RemoteIP", "string"), ("RemotePort", "int")]
    ref = Path("/work/shared/reference/mde-hunting-schema.txt")
    if ref.exists():  # the copy in the code is the reference's, column for column
        for line in ref.read_text().splitlines():
            m = re.match(r"(\w+) \(\d+\): (.*)", line)
            if m and m.group(1) in EVENT_MODELS:
                names = [c.split(":")[0] for c in m.group(2).split()]
                assert [c for c, _ in columns(m.group(1))][:len(names)] == names


def test_a_batch_validates_into_typed_events() -> None:
    b = EventBatch.model_validate_json(json.dumps({"seq": 3, "events": [
        {"Table": "DeviceProcessEvents", "Timestamp": TS, "ActionType": "ProcessCreated", "ProcessId": 7,
         "ProcessCommandLine": "sleep 1", "AdditionalFields": {"ContainerId": "abc"}},
        {"Table": "DeviceNetworkEvents", "Timestamp": TS, "ActionType": "ConnectionSuccess", "RemotePort": 443},
        {"Table": "DeviceInfo", "Timestamp": TS, "OSPlatform": "Linux"}]}))
    assert [type(e).__name__ for e in b.events] == ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceInfo"]
    assert b.events[0].ProcessId == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("event, where", [
    ({"Table": "DeviceProcessEvents", "Timestamp": TS, "ActionType": "x", "DeviceId": "spoofed"}, "DeviceId"),
    ({"Table": "DeviceProcessEvents", "Timestamp": TS, "ActionType": "x", "ReportId": 1}, "ReportId"),
    ({"Table": "DeviceProcessEvents", "Timestamp": TS, "ActionType": "x", "Nope": 1}, "Nope"),
    ({"Table": "DeviceNetworkEvents", "Timestamp": TS, "ActionType": "x", "RemotePort": 2**31}, "RemotePort"),
    ({"Table": "DeviceProcessEvents", "Timestamp": TS, "ActionType": "x", "FileName": "a" * 5000}, "FileName"),
    ({"Table": "DeviceProcessEvents", "ActionType": "x"}, "Timestamp"),
    ({"Table": "DeviceFileEvents", "Timestamp": TS}, "ActionType"),
    ({"Table": "NotATable", "Timestamp": TS}, "events.0"),
])
def test_untrusted_events_are_refused(event: dict, where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        EventBatch.model_validate({"seq": 1, "events": [event]})
    assert where in str(exc.value)
    with pytest.raises(ValidationError) as exc:  # the server's dict path refuses the same, at the same place
        parse_batch_rows(json.dumps({"seq": 1, "events": [event]}).encode())
    assert where in str(exc.value)


def test_the_server_rows_are_the_sent_columns() -> None:
    body = {"seq": 9, "drops": {"rate_cap": 2}, "events": [
        {"Table": "DeviceNetworkEvents", "Timestamp": TS, "ActionType": "ConnectionSuccess", "RemotePort": 443,
         "AdditionalFields": {"a": 1}}]}
    out = parse_batch_rows(json.dumps(body).encode())
    assert out["seq"] == 9 and out["drops"] == {"rate_cap": 2}
    (row,) = out["events"]
    assert set(row) == {"Table", "Timestamp", "ActionType", "RemotePort", "AdditionalFields"}
    assert row["Timestamp"].tzinfo is not None and row["AdditionalFields"] == {"a": 1}


def test_batch_size_is_bounded() -> None:
    ev = {"Table": "DeviceEvents", "Timestamp": TS, "ActionType": "x"}
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"seq": 1, "events": [ev] * (MAX_EVENTS_PER_BATCH + 1)})
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"seq": 0, "events": []})
    with pytest.raises(ValidationError):
        parse_batch_rows(json.dumps({"seq": 1, "events": [ev] * (MAX_EVENTS_PER_BATCH + 1)}).encode())
