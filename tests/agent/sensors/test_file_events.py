"""DeviceFileEvents from audit directory watches: created, modified, renamed, deleted, with content hashes."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def test_file_changes_under_a_watched_path_are_recorded_with_hash_and_process(start_sensor, tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    (watched / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    cron = watched / "cron"
    cron.mkdir()
    run = start_sensor({"file_paths": [str(watched)], "persistence_paths": {f"{cron}/": "CronJobWritten"}})
    script = f"""
        cd {watched}
        printf 'first content\\n' > new.txt
        printf 'more\\n' >> sub/../existing.txt
        mv new.txt renamed.txt
        rm existing.txt
        echo '* * * * * root /tmp/x' > {cron}/job
        echo ignored > {outside}/not-watched.txt
    """
    (watched / "existing.txt").write_text("before\n")
    subprocess.run(["/bin/sh", "-c", script], check=True)
    rows = run.recorder.wait_for(lambda r: r["FolderPath"].startswith(str(watched)), "DeviceFileEvents", count=5)
    got = {(r["ActionType"], r["FileName"]) for r in rows}
    assert ("FileCreated", "new.txt") in got
    assert ("FileModified", "existing.txt") in got
    assert ("FileRenamed", "renamed.txt") in got
    assert ("FileDeleted", "existing.txt") in got
    assert ("FileCreated", "job") in got
    assert not run.recorder.rows("DeviceFileEvents") or all(
        "not-watched" not in r["FileName"] for r in run.recorder.rows("DeviceFileEvents"))

    created = next(r for r in rows if r["ActionType"] == "FileCreated" and r["FileName"] == "new.txt")
    assert created["FolderPath"] == str(watched)
    assert created["InitiatingProcessFileName"] in ("sh", "dash", "bash")
    assert created["InitiatingProcessAccountName"] == "root"
    renamed = next(r for r in rows if r["ActionType"] == "FileRenamed")
    assert renamed["PreviousFileName"] == "new.txt" and renamed["PreviousFolderPath"] == str(watched)
    assert renamed["InitiatingProcessFileName"] == "mv"
    # The hash is of the content once written (the event settles before it is hashed).
    assert renamed["SHA256"] == hashlib.sha256(b"first content\n").hexdigest()
    job = next(r for r in rows if r["FileName"] == "job")
    assert job["SHA256"] == hashlib.sha256((cron / "job").read_bytes()).hexdigest()
    assert job["FileSize"] == (cron / "job").stat().st_size
    deleted = next(r for r in rows if r["ActionType"] == "FileDeleted")
    assert deleted["InitiatingProcessFileName"] == "rm" and "SHA256" not in deleted

    persistence = run.recorder.wait_for(lambda r: r["ActionType"] == "CronJobWritten", "DeviceEvents")
    assert len(persistence) == 1 and persistence[0]["FileName"] == "job"
    assert persistence[0]["SHA256"] == job["SHA256"]


def test_writes_to_the_agent_state_are_reported_as_tampering(start_sensor, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    run = start_sensor(state_dir=str(state))
    subprocess.run(["/bin/sh", "-c", f"echo evil > {state}/identity.json"], check=True)
    rows = run.recorder.wait_for(lambda r: r["ActionType"] == "TamperingAttempt"
                                 and r.get("FileName") == "identity.json", "DeviceEvents")
    assert rows and rows[0]["AdditionalFields"]["Operation"] == "AgentStateWritten"
    assert rows[0]["InitiatingProcessFileName"] in ("sh", "dash", "bash")
    # The agent's own writes there are not (this process stands for the agent: the kernel rule skips it).
    (state / "spool.db").write_bytes(b"x")
    subprocess.run(["/bin/sh", "-c", f"echo later > {state}/later"], check=True)
    assert run.recorder.wait_for(lambda r: r.get("FileName") == "later", "DeviceEvents")
    assert not [r for r in run.recorder.rows("DeviceEvents") if r.get("FileName") == "spool.db"]
