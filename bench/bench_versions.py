"""Benchmark and cross-check the version schemes against the test vectors and candidate libraries.

    python bench/bench_versions.py            # markdown table on stdout
    python bench/bench_versions.py --repeat 5

For every vector file group it reports, for garrison's scheme and for each installed library that
could replace it: agreement with the vectors (both directions of every line; an exception counts as
a disagreement), the cost of building one key (cache cold), and the cost of one comparison. For
garrison it also reports the time to sort all distinct versions of the group with warm keys.
Reads tests/data/versions/, so it needs nothing outside the repository.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from garrison.tvm.versions import get_scheme

DATA = ROOT / "tests" / "data" / "versions"
EXPECTED = {"<": -1, "=": 0, ">": 1}
GROUPS = [  # (vector file prefix, garrison scheme)
    ("alpine", "apk"),
    ("debian", "dpkg"),
    ("redhat", "rpm"),
    ("pypi", "pep440"),
    ("semver", "semver"),
    ("semver", "go"),
    ("maven", "maven"),
    ("nuget", "nuget"),
    ("rubygems", "rubygems"),
    ("packagist", "packagist"),
    ("cran", "cran"),
    ("hackage", "hackage"),
    ("pub", "pub"),
]


def load(prefix: str) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(DATA.glob(f"{prefix}-versions*.txt")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", "//")):
                a, op, b = line.split(" ")
                out.append((a, EXPECTED[op], b))
    return out


def candidates(scheme: str) -> dict[str, Callable[[str], object]]:
    """Library constructors that produce comparable objects, keyed by display name."""
    found: dict[str, Callable[[str], object]] = {}
    try:
        from univers import versions as uv

        by_scheme = {
            "apk": uv.AlpineLinuxVersion,
            "dpkg": uv.DebianVersion,
            "rpm": uv.RpmVersion,
            "pep440": uv.PypiVersion,
            "semver": uv.SemverVersion,
            "go": uv.GolangVersion,
            "maven": uv.MavenVersion,
            "nuget": uv.NugetVersion,
            "rubygems": uv.RubygemsVersion,
            "packagist": uv.ComposerVersion,
        }
        if scheme in by_scheme:
            found[f"univers {by_scheme[scheme].__name__}"] = by_scheme[scheme]
    except ImportError:
        pass
    if scheme == "pep440":
        from packaging.version import Version

        found["packaging Version (no legacy)"] = Version
    if scheme in ("semver", "go"):
        try:
            import semver

            found["semver Version.parse"] = lambda v: semver.Version.parse(v.removeprefix("v"))
        except ImportError:
            pass
        try:
            import semantic_version  # type: ignore[import-untyped]

            found["semantic_version coerce"] = lambda v: semantic_version.Version.coerce(v.removeprefix("v"))
        except ImportError:
            pass
    return found


Vectors = list[tuple[str, int, str]]


def measure_library(
    make: Callable[[str], object], vectors: Vectors, versions: list[str]
) -> tuple[int, float, float]:
    objs: dict[str, object] = {}
    t0 = time.perf_counter()
    for v in versions:
        try:
            objs[v] = make(v)
        except Exception:  # noqa: BLE001, S110 - any failure to parse is a disagreement
            pass
    key_us = (time.perf_counter() - t0) / len(versions) * 1e6
    ok = 0
    t0 = time.perf_counter()
    for a, want, b in vectors:
        if a not in objs or b not in objs:
            continue
        try:
            x, y = objs[a], objs[b]
            got = -1 if x < y else (1 if y < x else 0)  # type: ignore[operator]
            back = -1 if y < x else (1 if x < y else 0)  # type: ignore[operator]
        except Exception:  # noqa: BLE001, S112 - a comparison that raises is a disagreement
            continue
        ok += got == want and back == -want
    cmp_us = (time.perf_counter() - t0) / len(vectors) / 2 * 1e6
    return ok, key_us, cmp_us


def measure_ours(
    scheme_name: str, vectors: Vectors, versions: list[str], repeat: int
) -> tuple[int, float, float, float]:
    s = get_scheme(scheme_name)
    ok = sum(s.compare(a, b) == want and s.compare(b, a) == -want for a, want, b in vectors)
    build = s._checked_key  # the uncached key function
    best_key = best_cmp = best_sort = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for v in versions:
            build(v)
        best_key = min(best_key, (time.perf_counter() - t0) / len(versions) * 1e6)
        keys = {v: s.key(v) for v in versions}
        t0 = time.perf_counter()
        for a, _, b in vectors:
            ka, kb = keys[a], keys[b]
            _ = ka < kb
            _ = kb < ka
        best_cmp = min(best_cmp, (time.perf_counter() - t0) / len(vectors) / 2 * 1e6)
        t0 = time.perf_counter()
        sorted(versions, key=s.key)
        best_sort = min(best_sort, (time.perf_counter() - t0) * 1e3)
    return ok, best_key, best_cmp, best_sort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N timing runs (garrison)")
    args = parser.parse_args()

    print("| vectors | scheme | implementation | agreement | key build µs | compare µs | sort all (warm) |")
    print("|---|---|---|---|---|---|---|")
    for prefix, scheme in GROUPS:
        vectors = load(prefix)
        versions = list(dict.fromkeys(v for a, _, b in vectors for v in (a, b)))
        n = len(vectors)
        ok, key_us, cmp_us, sort_ms = measure_ours(scheme, vectors, versions, args.repeat)
        print(
            f"| {prefix} ({n}) | {scheme} | **garrison** | {ok / n:.2%} | {key_us:.1f} | {cmp_us:.2f} | "
            f"{sort_ms:.1f} ms / {len(versions)} |"
        )
        for name, make in candidates(scheme).items():
            ok, key_us, cmp_us = measure_library(make, vectors, versions)
            print(f"| | | {name} | {ok / n:.2%} | {key_us:.1f} | {cmp_us:.2f} | |")


if __name__ == "__main__":
    main()
