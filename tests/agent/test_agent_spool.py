"""The durable spool: ordering, acks, sequence numbers across restarts, bounds and drop counters."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from garrison.agent.spool import REJECTED, Spool, iter_documents
from garrison.protocol import Batch


def test_batches_are_wire_documents_in_sequence_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    seqs = [spool.put("device", {"hostname": f"h{i}"}) for i in range(3)]
    assert seqs == [1, 2, 3]
    pending = spool.pending()
    assert [b.seq for b in pending] == [1, 2, 3]
    doc = Batch.model_validate_json(pending[1].json_bytes())
    assert (doc.seq, doc.kind, doc.payload) == (2, "device", {"hostname": "h1"})
    # Stored gzip-compressed: the bytes on disk are the gzip of the JSON document.
    assert pending[1].body[:2] == b"\x1f\x8b" and gzip.decompress(pending[1].body) == pending[1].json_bytes()
    assert [d["seq"] for d in iter_documents(spool)] == [1, 2, 3]
    spool.close()


def test_ack_removes_only_that_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(3):
        spool.put("device", {"i": i})
    spool.ack(2)
    assert [b.seq for b in spool.pending()] == [1, 3]
    assert spool.pending_count() == 2 and spool.drops() == {}
    spool.close()


def test_sequence_numbers_survive_restarts_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    assert [spool.put("device", {}) for _ in range(3)] == [1, 2, 3]
    for seq in (1, 2, 3):
        spool.ack(seq)  # everything acknowledged: the spool is empty
    spool.close()
    spool = Spool(path)
    assert spool.pending_count() == 0 and spool.last_seq() == 3
    assert spool.put("device", {}) == 4
    spool.close()


def _put_then_die(path: str) -> None:
    spool = Spool(Path(path))
    spool.put("device", {"before": "crash"})
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no cleanup


def test_a_put_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    proc = multiprocessing.get_context("fork").Process(target=_put_then_die, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    spool = Spool(path)
    assert [b.document()["payload"] for b in spool.pending()] == [{"before": "crash"}]
    assert spool.put("device", {}) == 2
    spool.close()


def test_files_are_private(tmp_path: Path) -> None:
    Spool(tmp_path / "spool.db").close()
    assert (tmp_path / "spool.db").stat().st_mode & 0o077 == 0


def test_invalid_kind_is_refused_and_consumes_no_number(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    with pytest.raises(ValueError):
        spool.put("Not A Kind", {})
    assert spool.put("device", {}) == 1
    spool.close()


def _big_payload(n: int) -> dict[str, str]:
    # Random hex does not compress much, so sizes on disk are predictable.
    return {"blob": os.urandom(n).hex()}


def test_full_spool_drops_recreatable_kinds_first_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    inv = spool.put("inventory", _big_payload(8000))  # ~8 KB compressed each
    devices = [spool.put("device", _big_payload(8000)) for _ in range(4)]
    inv2 = spool.put("inventory", _big_payload(8000))
    assert spool.drops() == {}
    for _ in range(4):
        spool.put("other", _big_payload(8000))
    # 10 batches of ~8 KB do not fit in 64 KB: the device batches went first, oldest first.
    left = {b.seq: b.kind for b in spool.pending()}
    assert inv in left and inv2 in left
    dropped_devices = [s for s in devices if s not in left]
    assert dropped_devices and dropped_devices == devices[: len(dropped_devices)]
    assert spool.drops() == {"device": len(dropped_devices)}
    assert spool.pending_bytes() <= 64 * 1024
    # Once no re-creatable kind is left, the oldest batch of any kind goes.
    for _ in range(6):
        spool.put("other", _big_payload(8000))
    left = {b.seq: b.kind for b in spool.pending()}
    assert "device" not in left.values() and inv not in left
    assert spool.drops()["device"] == 4 and spool.drops()["inventory"] >= 1
    assert spool.pending_bytes() <= 64 * 1024
    spool.close()


def test_a_telemetry_flood_evicts_only_telemetry_never_inventory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)  # events quota: half, 32 KB
    inv = [spool.put("inventory", _big_payload(8000)) for _ in range(3)]
    events = [spool.put("events", _big_payload(8000)) for _ in range(40)]
    left = {b.seq: b.kind for b in spool.pending()}
    assert all(s in left for s in inv)
    assert spool.drops() == {"events": sum(1 for s in events if s not in left)}
    kept = [s for s in events if s in left]
    assert kept == events[-len(kept):] and 2 <= len(kept) <= 4  # the newest, within 32 KB
    assert sum(b.size for b in spool.pending() if b.kind == "events") <= 32 * 1024
    # Telemetry goes before other kinds when the whole spool is full.
    for _ in range(2):
        spool.put("other", _big_payload(8000))
    assert [b.kind for b in spool.pending()].count("events") < len(kept)
    left = {b.seq: b.kind for b in spool.pending()}
    assert all(s in left for s in inv)
    spool.close()


def test_a_batch_larger_than_the_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    keep = spool.put("device", {"small": True})
    assert spool.put("inventory", _big_payload(100_000)) is None
    assert [b.seq for b in spool.pending()] == [keep]
    assert spool.drops() == {"inventory": 1}
    spool.close()


def test_rejected_batches_are_counted_separately(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    seq = spool.put("device", {})
    spool.reject(seq)
    spool.reject(seq)  # twice is once
    assert spool.pending_count() == 0 and spool.drops() == {REJECTED: 1}
    spool.close()


def test_action_results_are_kept_until_posted(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.add_result("a1", {"id": "a1", "status": "Succeeded", "result": {}})
    spool.add_result("a1", {"id": "a1", "status": "Failed", "result": {}})  # first answer wins
    spool.close()
    spool = Spool(path)
    assert spool.has_result("a1") and not spool.has_result("a2")
    assert [r["status"] for r in spool.unposted_results()] == ["Succeeded"]
    spool.mark_posted("a1")
    assert spool.unposted_results() == [] and spool.has_result("a1")  # still known: not run twice
    spool.close()


def test_clear_forgets_pending_but_not_numbers(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put("device", {})
    spool.add_result("a", {"id": "a", "status": "Succeeded", "result": {}})
    spool.clear()
    assert spool.pending_count() == 0 and spool.unposted_results() == []
    assert spool.put("device", {}) == 2
    spool.close()


def test_pending_is_readable_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    writer = Spool(path)
    writer.put("device", {"x": 1})
    reader = Spool(path)  # e.g. `garrison agent status` while the agent runs
    assert reader.pending_count() == 1
    writer.put("device", {"x": 2})
    assert reader.pending_count() == 2
    assert json.loads(reader.pending()[1].json_bytes())["payload"] == {"x": 2}
    reader.close()
    writer.close()


def test_enrollment_floor_lifts_the_counter_but_never_lowers_it(tmp_path: Path) -> None:
    from garrison.agent.spool import SEQ_EPOCH, enrollment_floor

    spool = Spool(tmp_path / "spool.db")
    assert spool.put("device", {}) == 1
    floor = enrollment_floor(SEQ_EPOCH + 86_400)
    assert floor == 86_400
    spool.raise_seq_floor(floor)
    assert spool.put("device", {}) == 86_400
    spool.raise_seq_floor(10)  # lower: no effect
    assert spool.put("device", {}) == 86_401
    # Today's floor fits a 32-bit column for decades.
    assert enrollment_floor() < 2**31 - 1 and enrollment_floor() > 60_000_000
    spool.close()


def test_a_collectors_drop_rank_is_its_kinds_spool_policy(tmp_path: Path) -> None:
    """A new collector of re-creatable state says so on its class; the spool drops its kind first."""
    from typing import Any, ClassVar

    from garrison.agent.collectors.base import COLLECTORS, AgentContext, Collector, register_collector
    from garrison.agent.spool import RECREATE, SPOOL_POLICIES

    class Snapshot(Collector):
        name = "test_snapshot"
        kinds: ClassVar[tuple[str, ...]] = ("test_snapshot_kind",)
        drop_rank = RECREATE

        def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
            return []

    register_collector(Snapshot)
    try:
        spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
        inv = [spool.put("inventory", _big_payload(8000)) for _ in range(3)]
        snaps = [spool.put("test_snapshot_kind", _big_payload(8000)) for _ in range(3)]
        for _ in range(2):
            spool.put("inventory", _big_payload(8000))
        left = {b.seq for b in spool.pending()}
        assert all(s in left for s in inv)  # the older inventory stays: the snapshot kind went first
        assert spool.drops() == {"test_snapshot_kind": sum(1 for s in snaps if s not in left)} != {}
        spool.close()
    finally:
        COLLECTORS.remove(Snapshot.name)
        SPOOL_POLICIES.remove("test_snapshot_kind")
