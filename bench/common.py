"""What the fleet benchmarks share: the fleet's command-line options, percentiles and the printed table.

The fleet builder itself is in bench_matching.py (``Fleet``, ``lang_pool_from``, ``generate_kb``,
``load_fleet``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_PYPA = Path("/work/shared/data/vuln/osv/pypa/vulns")


def add_fleet_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that shape the fleet (read by bench_matching.Fleet), the backend and the output."""
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=600)
    ap.add_argument("--advisories", type=int, default=200_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pypa", type=Path, default=DEFAULT_PYPA if DEFAULT_PYPA.is_dir() else None)
    ap.add_argument("--lang-pool", type=int, default=1500, help="distinct PyPI names to draw from")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(title: str, results: dict[str, Any], rows: list[tuple[str, str]], as_json: bool) -> None:
    """Print the results as JSON (the table included), or the table under a title line."""
    results["table"] = rows
    if as_json:
        print(json.dumps(results, indent=2, default=str))
        return
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}, {dt.date.today()}, {os.cpu_count()} CPUs")
    print("-" * (width + 60))
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
