"""DeviceProcessEvents from the real audit interface: every exec, even of 1 ms processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tests.agent.sensors.conftest import Row


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_short_lived_process_is_recorded_with_image_user_and_parent(start_sensor, tmp_path: Path) -> None:
    run = start_sensor()
    marker = f"garrison-marker-{os.getpid()}"
    # A shell that starts /bin/true (exits at once) with a distinctive command line.
    subprocess.run(["/bin/sh", "-c", f"/bin/true {marker} 'two words'; exit 0"], check=True)
    rows = run.recorder.wait_for(lambda r: marker in r["ProcessCommandLine"] and r["FileName"] == "true",
                                 "DeviceProcessEvents")
    assert len(rows) == 1, run.recorder.rows("DeviceProcessEvents")[-5:]
    row = rows[0]
    true_path = os.path.realpath("/bin/true")
    assert row["ActionType"] == "ProcessCreated"
    assert row["FolderPath"] == os.path.dirname(true_path)
    assert row["ProcessCommandLine"] == f"/bin/true {marker} two words"
    assert row["SHA256"] == _sha256(true_path)
    assert row["FileSize"] == os.path.getsize(true_path)
    assert len(row["SHA1"]) == 40 and len(row["MD5"]) == 32
    assert row["AccountName"] == "root" and row["AccountSid"] == "0"
    assert row["ProcessId"] > 0 and row["ProcessCreationTime"].endswith("Z")
    # The initiating process is the shell (seen at its own exec), and its parent is pytest.
    assert row["InitiatingProcessFileName"] in ("sh", "dash", "bash")
    assert marker in row["InitiatingProcessCommandLine"]
    assert row["InitiatingProcessSHA256"] == _sha256(os.path.realpath("/bin/sh"))
    assert row["InitiatingProcessParentId"] == os.getpid()
    assert row["InitiatingProcessParentFileName"] == os.path.basename(os.path.realpath(sys.executable))
    assert row["AdditionalFields"]["CurrentDirectory"] == os.getcwd()


def test_a_burst_of_short_lived_processes_is_recorded_in_full_and_each_image_hashed_once(start_sensor) -> None:
    run = start_sensor()
    n = 500
    marker = f"burst-{os.getpid()}"
    script = f"i=0; while [ $i -lt {n} ]; do /bin/true {marker} $i; i=$((i+1)); done"
    hashed_before = run.manager.ctx.hashes.computed
    subprocess.run(["/bin/sh", "-c", script], check=True, timeout=60)
    rows = run.recorder.wait_for(lambda r: marker in r["ProcessCommandLine"] and r["FileName"] == "true",
                                 "DeviceProcessEvents", count=n, timeout=30)
    seen = {int(r["ProcessCommandLine"].rsplit(" ", 1)[1]) for r in rows}
    assert seen == set(range(n))
    assert len({r["ProcessId"] for r in rows}) == n
    assert all(r["SHA256"] == rows[0]["SHA256"] != "" for r in rows)
    # /bin/true, /bin/sh and whatever else ran meanwhile: a handful of files, not 500 reads.
    assert run.manager.ctx.hashes.computed - hashed_before < 20
    assert run.manager.drops() == {}


def test_the_agents_own_children_are_not_recorded(start_sensor) -> None:
    run = start_sensor(self_pids={os.getpid()})
    mine, other = f"self-{os.getpid()}", f"other-{os.getpid()}"
    subprocess.run(["/bin/true", mine], check=True)  # a child of the "agent" (this process)
    subprocess.run(["/bin/sh", "-c", f"/bin/true {other}; exit 0"], check=True)  # a grandchild: recorded
    assert run.recorder.wait_for(lambda r: other in r["ProcessCommandLine"] and r["FileName"] == "true",
                                 "DeviceProcessEvents")
    assert not [r for r in run.recorder.rows("DeviceProcessEvents") if mine in r["ProcessCommandLine"]]


def test_exclusions_from_the_server_apply_at_once(start_sensor) -> None:
    run = start_sensor()
    marker = f"excluded-{os.getpid()}"
    run.manager.apply_server_settings([{"column": "ProcessCommandLine", "op": "contains", "value": marker}])
    subprocess.run(["/bin/sh", "-c", f"/bin/true {marker}; /bin/true kept-{marker[9:]}"], check=True)
    assert run.recorder.wait_for(lambda r: r["ProcessCommandLine"] == f"/bin/true kept-{marker[9:]}",
                                 "DeviceProcessEvents")
    assert not [r for r in run.recorder.rows("DeviceProcessEvents") if r["ProcessCommandLine"].endswith(marker)]
    assert run.manager.sink.excluded >= 1


def test_rules_are_removed_when_the_sensor_stops(start_sensor) -> None:
    from garrison.agent.sensors.audit_netlink import AuditSocket, rule_key

    run = start_sensor()
    ctl = AuditSocket()
    try:
        mine = f"/{os.getpid()}"
        assert any(rule_key(r).endswith(mine) for r in ctl.list_rules())
        run.manager.stop()
        assert not any(rule_key(r).endswith(mine) for r in ctl.list_rules())
        assert ctl.status().pid != os.getpid()
    finally:
        ctl.close()


def _rows_to_str(rows: list[Row]) -> str:
    return "\n".join(r["ProcessCommandLine"] for r in rows)


def test_a_process_in_a_container_cgroup_carries_the_container_id(start_sensor, tmp_path: Path) -> None:
    """A container's first process is started by its runtime (here a shell named runc, as runc does)
    inside the container's cgroup (a real cgroup, in the pids hierarchy, named like Docker's)."""
    import shutil

    cid = hashlib.sha256(str(tmp_path).encode()).hexdigest()
    cgroup = Path(f"/sys/fs/cgroup/pids/docker-{cid}.scope")
    cgroup.mkdir()
    runtime = tmp_path / "runc"
    shutil.copy("/bin/sh", runtime)
    run = start_sensor()
    try:
        script = f"echo $$ > {cgroup}/cgroup.procs; /bin/true in-container-{cid[:8]}; sleep 1"
        subprocess.run([str(runtime), "-c", script], check=True)
        rows = run.recorder.wait_for(lambda r: r["ProcessCommandLine"] == f"/bin/true in-container-{cid[:8]}",
                                     "DeviceProcessEvents")
    finally:
        cgroup.rmdir()
    assert len(rows) == 1 and rows[0]["AdditionalFields"]["ContainerId"] == cid
    assert rows[0]["InitiatingProcessFileName"] == "runc"
    # and a process outside any container has none
    subprocess.run(["/bin/true", f"outside-{cid[:8]}"], check=True)
    subprocess.run(["/bin/sh", "-c", f"/bin/true outside-{cid[:8]}; exit 0"], check=True)
    out = run.recorder.wait_for(lambda r: r["ProcessCommandLine"] == f"/bin/true outside-{cid[:8]}",
                                "DeviceProcessEvents")
    assert out and all("ContainerId" not in r["AdditionalFields"] for r in out)
