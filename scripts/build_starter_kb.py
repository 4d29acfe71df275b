#!/usr/bin/env python3
"""Rebuild the starter knowledge base (src/garrison/tvm/kb/starter/data/) from the shared data set.

    python scripts/build_starter_kb.py [--shared ../shared/data]

Contents (see the PROVENANCE.md it writes): the Ubuntu focal USNs, the Alpine secdb files, the
Debian tracker JSON sample and DSA/DLA lists, the PyPA advisories, three Red Hat errata and two NVD
records (from tests/data/tvm), the KEV catalog, and the EPSS rows
of every CVE those records name. Records are copied as given; YAML records are stored as JSON arrays
(same content, faster to load) and everything is gzip-compressed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "garrison" / "tvm" / "kb" / "starter" / "data"
CVE = re.compile(rb"CVE-\d{4}-\d{4,7}")


PROVENANCE = """# Starter knowledge base: provenance

Real public records, shipped so that a fresh Garrison (and `garrison demo`) shows real findings
offline. Built by `scripts/build_starter_kb.py` from the project's shared data set (`shared/data`,
described in its `DATA.md`); rerun it to rebuild these files byte for byte. Every file is
gzip-compressed; `load_starter()` imports them with the normal importers (format detected from
content).

| file | source (shared/data/…) | origin | licence |
|---|---|---|---|
| `osv-ubuntu-focal.json.gz` | `vuln/osv/ubuntu-focal/USN-*.json` ({usns} USNs, a JSON array of the records as published) | canonical/ubuntu-security-notices `osv/usn/` | CC BY-SA 4.0 (Canonical): attribution kept here, share-alike applies to this file |
| `osv-pypa.json.gz` | `vuln/osv/pypa/vulns/*/PYSEC-*.yaml` ({pypa} advisories; YAML parsed with a safe loader and stored as one JSON array: same records, faster to load) | pypa/advisory-database @ 3ccb612573e2 (2024-10-10) | CC-BY-4.0 (Python Packaging Authority) |
| `alpine-secdb-v3.N-{{main,community}}.yaml.gz` | `vuln/alpine-secdb/v3.3…v3.11/*.yaml`, unchanged | alpinelinux/alpine-secdb @ 06f6e960194f (2020-06-08) | Alpine's published secfixes (no licence file in the repo) |
| `debian-tracker.json.gz` | `vuln/debian-tracker/json-samples/debian.json`, unchanged | anchore/vunnel test fixture of the tracker's `/tracker/data/json` | Debian security tracker data (public); fixture repo Apache-2.0 |
| `debian-dsa-list.gz`, `debian-dla-list.gz` | `vuln/debian-tracker/{{DSA,DLA}}/list`, unchanged | Debian security tracker `data/DSA/list`, `data/DLA/list` @ 32127b7f220c (2023-04-02) | Debian security tracker data (public) |
| `osv-redhat.json.gz` | not in shared/: `tests/data/tvm/redhat/RHSA-*.json` of this repository (3 Red Hat errata written in the layout of Red Hat's OSV feed, facts transcribed from the errata; see tests/data/tvm/PROVENANCE.md) | access.redhat.com/errata | Red Hat security data, CC BY 4.0 |
| `nvd-cves.json.gz` | not in shared/: `tests/data/tvm/nvd/CVE-*.json` (2 NVD CVE API 2.0 records) and `tests/data/tvm/nvd-severity/nvd-severity.json` ({nvd_severity} records: NVD's Primary CVSS v3.1 metric and CWE ids of each CVE the demo fleet is exposed to that no bundled feed rates) of this repository, trimmed as tests/data/tvm/PROVENANCE.md says, wrapped in the API's response envelope | fkie-cad/nvd-json-data-feeds | NVD: US Government public domain |
| `kev.json.gz` | `vuln/kev/known_exploited_vulnerabilities.json`, unchanged (catalog 2025.08.25) | cisagov/kev-data @ eacf03ec6637 | CC0 1.0 |
| `epss.csv.gz` | `vuln/epss/epss_scores.csv.gz`: the {epss} rows of the {cves} CVEs the files above name | FIRST EPSS via EMBA-support-repos/EPSS-data, score date 2026-08-16 | EPSS © FIRST.org, free to use under FIRST's EPSS terms |

The snapshot dates differ (KEV 2025-08-25, EPSS 2026-08-16, PyPA 2024-10-10): the starter KB is a
demo and test set, not a current feed; `garrison` feed sync replaces it with current data.

## Files

| file | bytes |
|---|---|
{files}
"""


def _gz(name: str, data: bytes) -> int:
    path = OUT / name
    # mtime=0: the same input gives byte-identical output.
    with open(path, "wb") as raw, gzip.GzipFile(filename=name[:-3], mode="wb", fileobj=raw, mtime=0,
                                                 compresslevel=9) as fh:
        fh.write(data)
    return path.stat().st_size


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    args = ap.parse_args()
    vuln = Path(args.shared) / "vuln"
    if not vuln.is_dir():
        print(f"error: {vuln} not found", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.gz"):
        old.unlink()
    named: set[bytes] = set()
    sizes: dict[str, int] = {}

    usns = [json.loads(p.read_bytes()) for p in sorted((vuln / "osv" / "ubuntu-focal").glob("USN-*.json"))]
    data = _json(usns)
    named |= set(CVE.findall(data))
    sizes["osv-ubuntu-focal.json.gz"] = _gz("osv-ubuntu-focal.json.gz", data)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    pypa = [yaml.load(p.read_text(encoding="utf-8"), Loader=loader)
            for p in sorted((vuln / "osv" / "pypa" / "vulns").glob("*/PYSEC-*.yaml"))]
    data = json.dumps(pypa, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    named |= set(CVE.findall(data))
    sizes["osv-pypa.json.gz"] = _gz("osv-pypa.json.gz", data)

    for path in sorted((vuln / "alpine-secdb").glob("v3.*/*.yaml")):
        data = path.read_bytes()
        named |= set(CVE.findall(data))
        name = f"alpine-secdb-{path.parent.name}-{path.stem}.yaml.gz"
        sizes[name] = _gz(name, data)

    tracker = vuln / "debian-tracker"
    for src, name in ((tracker / "json-samples" / "debian.json", "debian-tracker.json.gz"),
                      (tracker / "DSA" / "list", "debian-dsa-list.gz"),
                      (tracker / "DLA" / "list", "debian-dla-list.gz")):
        data = src.read_bytes()
        named |= set(CVE.findall(data))
        sizes[name] = _gz(name, data)

    # Records the shared data set lacks, kept with their provenance in tests/data/tvm/PROVENANCE.md:
    # Red Hat errata in the OSV layout and NVD records with CPE configurations.
    own = ROOT / "tests" / "data" / "tvm"
    for folder, name in ((own / "redhat", "osv-redhat.json.gz"), (own / "nvd", "nvd-cves.json.gz")):
        records = [json.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
        if folder.name == "nvd":
            # NVD's CVSS for every CVE the demo fleet is exposed to that no other bundled feed rates.
            for extra in sorted((own / "nvd-severity").glob("*.json")):
                records += [v["cve"] for v in json.loads(extra.read_bytes())["vulnerabilities"]]
            records = {"resultsPerPage": len(records), "startIndex": 0, "totalResults": len(records),
                       "format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": r} for r in records]}
        data = _json(records)
        named |= set(CVE.findall(data))
        sizes[name] = _gz(name, data)

    data = (vuln / "kev" / "known_exploited_vulnerabilities.json").read_bytes()
    named |= set(CVE.findall(data))
    sizes["kev.json.gz"] = _gz("kev.json.gz", data)

    rows = []
    with gzip.open(vuln / "epss" / "epss_scores.csv.gz", "rb") as fh:
        header = fh.readline()
        for line in fh:
            if line.split(b",", 1)[0] in named:
                rows.append(line)
    sizes["epss.csv.gz"] = _gz("epss.csv.gz", header + b"".join(rows))

    (OUT / "PROVENANCE.md").write_text(PROVENANCE.format(
        usns=len(usns), pypa=len(pypa), epss=len(rows), cves=len(named),
        nvd_severity=sum(len(json.loads(p.read_bytes())["vulnerabilities"]) for p in (ROOT / "tests" / "data" / "tvm" / "nvd-severity").glob("*.json")),
        files="\n".join(f"| `{n}` | {sz:,} |" for n, sz in sorted(sizes.items())),
    ), encoding="utf-8")
    total = sum(sizes.values())
    for name, size in sorted(sizes.items()):
        print(f"{size:>9}  {name}")
    print(f"{total:>9}  total; {len(usns)} USNs, {len(pypa)} PYSEC, {len(rows)} EPSS rows of {len(named)} CVEs named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
