"""Real-time protection overhead (fanotify): create-and-execute N new files, and execute one verified
binary M times, with protection off and on (block mode), in a tmp directory marked for the test.

    .venv/bin/python bench/bench_realtime.py [--files 1000] [--repeat 1000] [--rules DIR] [--json]

Each new file is a copy of /usr/bin/true (so every file is a new inode: scanned once, after its write,
and the execution is then a cache hit). ``--rules`` loads a rule directory (signature-base by default)
into the engine, as the agent would; ``--rules ''`` runs with EICAR and hashes only. Needs root.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from garrison.agent.protection.engine import Engine
from garrison.agent.protection.realtime import RealTimeProtection
from garrison.agent.protection.rulepack import load_pack

RULES = "/work/shared/data/edr/signature-base/yara"


def spawn_wait(path: str) -> None:
    # Not os.posix_spawn: it keeps the GIL while the vfork child execs, so the watcher thread of this
    # same process could never answer the child's permission event (a deadlock, found by this bench).
    subprocess.run([path], check=True)


def create_and_run(d: Path, n: int, tag: str) -> float:
    true = Path("/usr/bin/true").read_bytes()
    t = time.perf_counter()
    for i in range(n):
        p = d / f"{tag}{i}"
        p.write_bytes(true)
        p.chmod(0o755)
        spawn_wait(str(p))
    return time.perf_counter() - t


def run_again(path: Path, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        spawn_wait(str(path))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1000)
    ap.add_argument("--rules", default=RULES)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cache = Path(tempfile.mkdtemp())
    engine = Engine(load_pack(Path(args.rules), cache) if args.rules else None)
    out: dict[str, Any] = {"files": args.files, "repeat": args.repeat, "rules": engine.version["rules"]}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        d = Path(tmp)
        verified = d / "verified"
        shutil.copy("/usr/bin/true", verified)
        out["create_exec_off_s"] = round(create_and_run(d, args.files, "off"), 2)
        out["repeat_off_s"] = round(run_again(verified, args.repeat), 2)
        with RealTimeProtection(engine, [str(d)]) as rtp:
            out["create_exec_on_s"] = round(create_and_run(d, args.files, "on"), 2)
            run_again(verified, 1)  # the first execution is scanned
            out["repeat_on_s"] = round(run_again(verified, args.repeat), 2)
            out["stats"] = {k: v for k, v in vars(rtp.stats).items() if k != "detections"}
    shutil.rmtree(cache)
    out["create_exec_overhead_pct"] = round(100 * (out["create_exec_on_s"] / out["create_exec_off_s"] - 1), 1)
    out["repeat_overhead_pct"] = round(100 * (out["repeat_on_s"] / out["repeat_off_s"] - 1), 1)
    print(json.dumps(out, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
