"""What the /api response models cost: large pages through the real app, and the serialisation paths.

    python bench/bench_api_responses.py                      # this checkout
    python bench/bench_api_responses.py --root /path/to/old  # another checkout's src (before/after)

Part 1 (real app, SQLite in a temporary directory): the real Ubuntu 20.04 knowledge base of the tests
(tests/data/tvm/ubuntu-focal, KEV, EPSS) and the Ubuntu 20.04 GA host imported agentless ``--hosts`` times;
each large list is called ``--repeat`` times after a warm-up: median and p95 latency, body size.

Part 2 (``--page`` vulnerabilities in the API's shape, built by the API's own function): serialised
by ``pydantic_core.to_json`` — the routes' fast path, kept — against what ``response_model=`` would add
if a handler returned the dict (FastAPI validates it with the model and dumps it by alias).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ap = argparse.ArgumentParser()
ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
ap.add_argument("--hosts", type=int, default=20)
ap.add_argument("--repeat", type=int, default=20)
ap.add_argument("--page", type=int, default=4000)
args = ap.parse_args()
HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(args.root / "src"), str(HERE)]

from fastapi.testclient import TestClient

from garrison.core import access
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.tvm import service as tvm_service

DATA = HERE / "tests" / "data"
FEEDS = [DATA / "tvm" / "ubuntu-focal", DATA / "kb" / "kev" / "known_exploited_vulnerabilities.json",
         DATA / "kb" / "epss" / "epss_scores.csv.gz"]
STATUS = DATA / "tvm" / "inventories" / "ubuntu-20.04-ga.dpkg-status"
OS_RELEASE = DATA / "tvm" / "inventories" / "ubuntu-20.04-ga.os-release"


def timed(call: Any, repeat: int) -> tuple[float, float, int]:
    call()
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = call()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], size


def real_app(tmp: Path) -> None:
    store = Store(f"sqlite:///{tmp / 'garrison.db'}")
    metadata.create_all(store.engine)
    with store.system() as s:
        tenant = access.create_tenant(s, "bench")
        _row, key = access.create_api_key(s, tenant.id, "admin", "bench", "bench")
    tvm_service.import_feeds(store, [str(p) for p in FEEDS])
    load_services()
    app = create_app(ServerSettings(data_dir=tmp, rate_limit_per_minute=10**6, run_jobs=False,
                                    heartbeat_interval=0), store)
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(app, base_url="https://testserver") as client:
        ids = []
        for i in range(args.hosts):
            r = client.post("/api/machines/import", headers=h, data={"deviceName": f"focal-{i:03d}"},
                            files={"file": ("status", STATUS.read_bytes()), "osRelease": ("os", OS_RELEASE.read_bytes())})
            assert r.status_code == 200, r.text
            ids.append(r.json()["machineId"])
        assert client.post("/api/exposureScore/recompute", headers=h).status_code == 200
        paths = ["/api/vulnerabilities?scope=all", f"/api/machines/{ids[0]}/vulnerabilities",
                 "/api/machines?$top=1000", "/api/recommendations", f"/api/machines/{ids[0]}/software",
                 "/api/vulnerabilities/machinesVulnerabilities?$top=10000"]
        print(f"| route ({args.hosts} hosts) | median ms | p95 ms | body |\n|---|---|---|---|")
        for path in paths:
            def call(path: str = path) -> int:
                r = client.get(path, headers=h)
                assert r.status_code == 200, r.text
                return len(r.content)
            med, p95, size = timed(call, args.repeat)
            print(f"| `GET {path}` | {med:.1f} | {p95:.1f} | {size / 1e6:.2f} MB |")


def serialisation() -> None:
    import pydantic_core
    from pydantic import TypeAdapter

    from garrison.server.api import models
    from garrison.tvm.queries import vulnerabilities

    now = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    rows = [(f"CVE-2024-{i:05d}", "A heap overflow in the parser. " * 4, "High", 7.8,
             "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", None, None, '["CWE-787"]', now, now, True, False, False,
             "[]", "[]", 0.0123, 0.45, i % 7 == 0, None, None, None, '["https://example.org/a"]', '["NVD"]', "{}", 3)
            for i in range(args.page)]
    body = {"@odata.context": "https://testserver/api/$metadata#Vulnerabilities",
            "value": [vulnerabilities.to_api(r) for r in rows]}
    adapter = TypeAdapter(models.ODataList[models.Vulnerability])
    fast = timed(lambda: len(pydantic_core.to_json(body)), args.repeat)
    slow = timed(lambda: len(adapter.dump_json(adapter.validate_python(body), by_alias=True)), args.repeat)
    print(f"\n| {args.page:,} vulnerabilities | median ms | p95 ms | body |\n|---|---|---|---|")
    print(f"| `pydantic_core.to_json` (the routes' path, kept) | {fast[0]:.1f} | {fast[1]:.1f} | {fast[2] / 1e6:.2f} MB |")
    print(f"| validate with the model + dump by alias (`response_model=`) | {slow[0]:.1f} | {slow[1]:.1f} | "
          f"{slow[2] / 1e6:.2f} MB |")


if __name__ == "__main__":
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        real_app(Path(tmp))
    if (args.root / "src" / "garrison" / "server" / "api" / "models.py").exists():
        serialisation()
