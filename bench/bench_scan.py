"""Scan throughput and rule-pack cost: yara-python (the agent's engine) vs yara-x, side by side.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # yara-x, for the comparison only
    .venv/bin/python bench/bench_scan.py [--rules DIR] [--tree /usr/bin] [--max-files 400] [--stride N] [--json]
    (apt-get install yara for the command-line tool's row)

Each engine runs in its own process (so memory is its own): compile the whole rule directory (one
namespace per file), serialise and load the compiled rules again (the agent's cache), then scan the
same files — the first ``--max-files`` regular files of ``--tree`` plus a small corpus of test files
(EICAR, archives) — reading each file and matching it. The Garrison row is the agent's real path
(``garrison.agent.protection.engine.Engine.scan_file``: hashing, hash list, YARA, archives).
``--per-file`` also compiles every rule file alone with each engine (how many compile), which is slow.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

RULES = Path("/work/shared/data/edr/signature-base/yara")
EXTERNALS: dict[str, Any] = {"filename": "", "filepath": "", "extension": "", "filetype": "", "owner": ""}
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def corpus(dir_: Path) -> list[Path]:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "eicar.com").write_bytes(EICAR)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(20):
            z.writestr(f"doc{i}.txt", os.urandom(2048).hex())
        z.writestr("eicar.com", EICAR)
    (dir_ / "bundle.zip").write_bytes(buf.getvalue())
    (dir_ / "log.gz").write_bytes(gzip.compress(b"GET /index.html 200\n" * 50_000))
    return sorted(dir_.iterdir())


def files_of(tree: Path, limit: int, stride: int = 1) -> list[Path]:
    """Regular files under ``tree`` (recursively, sorted), every ``stride``-th one, at most ``limit``."""
    out: list[Path] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not p.is_file() or p.is_symlink() or p.stat().st_size > 64 << 20:
                continue
            seen += 1
            if seen % stride == 0:
                out.append(p)
                if len(out) >= limit:
                    return out
    return out


def rule_files(rules: Path) -> list[Path]:
    return sorted(p for p in rules.iterdir() if p.suffix in (".yar", ".yara"))


def run_cli(rules: Path, paths: list[Path]) -> dict[str, Any]:
    """The ``yara`` command-line tool (Debian's package) on the same files: yarac, then one thread."""
    files = rule_files(rules)
    out: dict[str, Any] = {"engine": "yara-cli " + subprocess.run(["yara", "--version"], capture_output=True,
                                                                  text=True, check=True).stdout.strip()}
    tmp = Path(tempfile.mkdtemp())
    defines = [a for k in EXTERNALS for a in ("-d", f"{k}=")]
    t = time.perf_counter()
    subprocess.run(["yarac", *defines, *map(str, files), str(tmp / "rules.yarc")], check=True, capture_output=True)
    out["compile_s"] = round(time.perf_counter() - t, 2)
    out["compiled_bytes"] = (tmp / "rules.yarc").stat().st_size
    (tmp / "list").write_text("\n".join(map(str, paths)) + "\n")
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "yara", "-C", "-p", "1", *defines, "--scan-list",
                           str(tmp / "rules.yarc"), str(tmp / "list")], capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    size = sum(p.stat().st_size for p in paths)
    hit_files = {line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " " in line}
    out.update(files=len(paths), mb=round(size / 1e6, 1), scan_s=round(dt, 2), files_per_s=round(len(paths) / dt, 1),
               mb_per_s=round(size / 1e6 / dt, 2), files_with_hits=len(hit_files),
               peak_rss_mb=round(int(proc.stderr.strip().splitlines()[-1]) / 1024, 1))
    return out


def run_engine(engine: str, rules: Path, paths: list[Path], per_file: bool) -> dict[str, Any]:
    files = rule_files(rules)
    out: dict[str, Any] = {"engine": engine, "rule_files": len(files), "rss_start_mb": round(rss_mb(), 1)}
    tmp = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    if engine == "yara-x":
        import yara_x
        if per_file:
            ok = 0
            for f in files:
                c = yara_x.Compiler()
                for k, v in EXTERNALS.items():
                    c.define_global(k, v)
                try:
                    c.add_source(f.read_text(errors="replace"), origin=f.name)
                    c.build()
                    ok += 1
                except Exception as exc:  # noqa: BLE001 - a file that does not compile is only counted
                    out.setdefault("per_file_errors", []).append(f"{f.name}: {exc}"[:200])
            out["per_file_compiled"], out["per_file_s"] = ok, round(time.perf_counter() - t, 2)
            t = time.perf_counter()
        c = yara_x.Compiler()
        for k, v in EXTERNALS.items():
            c.define_global(k, v)
        for f in files:
            c.new_namespace(f.stem)
            c.add_source(f.read_text(errors="replace"), origin=f.name)
        rules_x = c.build()
        out["compile_s"] = round(time.perf_counter() - t, 2)
        out["rss_after_compile_mb"] = round(rss_mb(), 1)
        with open(tmp / "x.bin", "wb") as fh:
            rules_x.serialize_into(fh)
        out["compiled_bytes"] = (tmp / "x.bin").stat().st_size
        t = time.perf_counter()
        with open(tmp / "x.bin", "rb") as fh:
            rules_x = yara_x.Rules.deserialize_from(fh)
        scanner = yara_x.Scanner(rules_x)
        out["load_compiled_s"] = round(time.perf_counter() - t, 2)

        def scan(p: Path) -> int:
            return len(scanner.scan(p.read_bytes()).matching_rules)
    else:
        import yara
        if per_file:
            ok = 0
            for f in files:
                try:
                    yara.compile(filepath=str(f), externals=EXTERNALS, includes=False)
                    ok += 1
                except yara.Error as exc:
                    out.setdefault("per_file_errors", []).append(f"{f.name}: {exc}"[:200])
            out["per_file_compiled"], out["per_file_s"] = ok, round(time.perf_counter() - t, 2)
            t = time.perf_counter()
        rules_p = yara.compile(filepaths={f.stem: str(f) for f in files}, externals=EXTERNALS, includes=False)
        out["compile_s"] = round(time.perf_counter() - t, 2)
        out["rss_after_compile_mb"] = round(rss_mb(), 1)
        rules_p.save(str(tmp / "p.bin"))
        out["compiled_bytes"] = (tmp / "p.bin").stat().st_size
        t = time.perf_counter()
        rules_p = yara.load(str(tmp / "p.bin"))
        out["load_compiled_s"] = round(time.perf_counter() - t, 2)
        if engine == "garrison":
            from garrison.agent.protection.engine import Engine
            from garrison.agent.protection.rulepack import RulePack
            eng = Engine(RulePack("bench", "0", "", rules_p, len(files), 0))

            def scan(p: Path) -> int:
                return len(eng.scan_file(str(p)).detections)
        else:
            def scan(p: Path) -> int:
                return len(rules_p.match(data=p.read_bytes(), externals=EXTERNALS, timeout=60))
    out["rss_loaded_mb"] = round(rss_mb(), 1)
    n = size = hits = 0
    t = time.perf_counter()
    for p in paths:
        try:
            hits += bool(scan(p))
        except OSError:
            continue
        n += 1
        size += p.stat().st_size
    dt = time.perf_counter() - t
    out.update(files=n, mb=round(size / 1e6, 1), scan_s=round(dt, 2), files_per_s=round(n / dt, 1),
               mb_per_s=round(size / 1e6 / dt, 2), files_with_hits=hits,
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=Path, default=RULES)
    ap.add_argument("--tree", type=Path, default=Path("/usr/bin"))
    ap.add_argument("--max-files", type=int, default=400)
    ap.add_argument("--stride", type=int, default=1, help="take every n-th file of the tree (a sample of /usr)")
    ap.add_argument("--engines", default="yara-python,garrison,yara-x,yara-cli")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        paths = [Path(p) for p in Path(args.paths).read_text().splitlines()]
        print(json.dumps(run_engine(args.child, args.rules, paths, args.per_file)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = files_of(args.tree, args.max_files, args.stride) + corpus(Path(tmp) / "corpus")
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(map(str, paths)))
        results = []
        for engine in args.engines.split(","):
            if engine == "yara-cli":
                results.append(run_cli(args.rules, paths))
                continue
            cmd = [sys.executable, __file__, "--child", engine, "--paths", str(listing), "--rules", str(args.rules)]
            if args.per_file:
                cmd.append("--per-file")
            results.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    keys = ["engine", "per_file_compiled", "compile_s", "load_compiled_s", "compiled_bytes", "rss_loaded_mb",
            "peak_rss_mb", "files", "mb", "files_per_s", "mb_per_s", "files_with_hits"]
    print(" | ".join(keys))
    for r in results:
        print(" | ".join(str(r.get(k, "")) for k in keys))


if __name__ == "__main__":
    main()
