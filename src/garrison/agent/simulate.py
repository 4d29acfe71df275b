"""Load simulator: many agents in one process (asyncio + one pooled ``httpx.AsyncClient``).

Like Fleet's osquery-perf: each simulated agent enrolls with a distinct machine key,
sends one realistic device report and one inventory snapshot, then checks in every
``interval`` seconds (±10% jitter) until ``duration`` ends. Starts are spread over
``ramp`` seconds so the server sees a fleet, not a thundering herd. The result gives
counts, errors and latency percentiles per call.

What keeps 5,000 agents cheap on two cores: one TLS context and one connection pool
shared by all agents (``concurrency`` connections, kept alive), payloads built from a
few prepared variants, and one timer per agent instead of a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import json
import os
import random
import ssl
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from garrison import __version__
from garrison.agent.transport import GZIP_ABOVE, pinned_context
from garrison.inventory import parse_inventory, parse_os_release
from garrison.protocol import DeviceReport, InventoryReport, OsIdentity, SoftwarePackage

API = "/agent/v1"
VARIANTS = 16  # distinct inventories in a simulated fleet
UPLOAD_ATTEMPTS = 3
SHARD_CONNECTIONS = 16  # connections per pool; more pools rather than bigger ones


@dataclass
class SimConfig:
    server: str
    secret: str
    agents: int
    interval: float = 10.0
    duration: float = 60.0
    ramp: float | None = None  # seconds over which agents start; default: one interval
    concurrency: int = 128  # requests in flight at once = connections in the shared pool
    timeout: float = 60.0
    seed: int | None = None  # same seed → same machine keys (the agents re-enroll as the same devices)
    inventory: Path | None = None  # dpkg status (or any inventory format) to build packages from
    forwarded_for: bool = False  # distinct X-Forwarded-For per agent (server must trust us as a proxy)
    # Credentials of enrolled agents, kept between runs: a run that finds them skips enrollment
    # and the first uploads, so that check-in capacity can be measured on its own.
    state: Path | None = None
    progress: TextIO | None = None


@dataclass
class Stats:
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # "queue": time a request waited for a free connection slot in this process.
    latency: dict[str, list[float]] = field(
        default_factory=lambda: {"enroll": [], "batch": [], "checkin": [], "result": [], "queue": []})

    checkins_at: list[float] = field(default_factory=list)  # monotonic time of each successful check-in

    def timed(self, call: str, seconds: float) -> None:
        self.latency[call].append(seconds)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    data = sorted(values)

    def pick(q: float) -> float:
        return round(data[min(len(data) - 1, int(q * len(data)))] * 1000, 1)

    return {"count": len(data), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(data[-1] * 1000, 1)}


# --- realistic payloads -----------------------------------------------------------------

def _generated_packages(n: int = 300) -> tuple[list[SoftwarePackage], OsIdentity]:
    """A Debian-like package list when no real package database is at hand."""
    rng = random.Random(7)
    stems = ["lib", "python3-", "perl-", "gir1.2-", "fonts-", ""]
    words = ["ssl", "curl", "xml2", "z", "bz2", "lzma", "pcre", "ffi", "gnutls", "systemd", "udev", "dbus",
             "glib", "krb5", "ldap", "sasl", "sqlite", "expat", "yaml", "json", "acl", "attr", "cap", "pam"]
    os_id = OsIdentity(id="debian", version_id="12", codename="bookworm", name="Debian GNU/Linux")
    out: list[SoftwarePackage] = []
    for i in range(n):
        name = f"{rng.choice(stems)}{rng.choice(words)}{i}"
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}"
        out.append(SoftwarePackage(manager="dpkg", name=name, version=version, ecosystem="Debian:12",
                                   arch="amd64", source_name=name, source_version=version))
    return out, os_id


def load_packages(path: Path | None) -> tuple[list[SoftwarePackage], OsIdentity]:
    """Packages of a real package database (this machine's dpkg status by default)."""
    candidates = [path] if path else [Path("/var/lib/dpkg/status")]
    for candidate in candidates:
        try:
            data = candidate.read_bytes()
        except OSError:
            if path:
                raise
            continue
        os_text = ""
        for release in ("/etc/os-release", "/usr/lib/os-release"):
            try:
                os_text = Path(release).read_text()
                break
            except OSError:
                continue
        os_id = parse_os_release(os_text) if os_text else None
        packages, found_os = parse_inventory(data, os=os_id, path=str(candidate))
        if packages:
            return packages, found_os or os_id or OsIdentity()
    return _generated_packages()


def inventory_variants(packages: list[SoftwarePackage], os_id: OsIdentity, rng: random.Random) -> list[bytes]:
    """JSON of a few fleet variants: each drops ~10% of packages and bumps some versions."""
    variants: list[bytes] = []
    for _ in range(VARIANTS):
        chosen = [p for p in packages if rng.random() > 0.1]
        for i, p in enumerate(chosen):
            if rng.random() < 0.05:  # an older or newer build of the same package
                chosen[i] = p.model_copy(update={"version": p.version + f"+sim{rng.randint(1, 3)}"})
        report = InventoryReport(mode="snapshot", generation=1, os=os_id, packages=chosen)
        variants.append(report.model_dump_json(exclude_defaults=True).encode())
    return variants


def device_payload(i: int, key: str, rng: random.Random, os_id: OsIdentity) -> dict[str, Any]:
    host = f"sim-{i:05d}"
    report = DeviceReport(
        hostname=host, fqdn=f"{host}.sim.garrison.test", machine_key=key, os_platform="Linux",
        os_version=os_id.version_id, os_build=os_id.pretty_name, os_id=os_id.id, os_version_id=os_id.version_id,
        os_codename=os_id.codename, kernel=rng.choice(["6.1.0-18-amd64", "6.1.0-21-amd64", "5.10.0-28-amd64"]),
        architecture="x86_64", processor="Simulated CPU",
        ip_addresses=[f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"],
        mac_addresses=["02:00:" + ":".join(f"{(i >> s) & 255:02x}" for s in (24, 16, 8, 0))],
        boot_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=rng.randint(1, 2000)),
        agent_version=__version__, running_as_root=True,
    )
    return report.model_dump(mode="json")


# --- one simulated agent ----------------------------------------------------------------

class SimAgent:
    def __init__(self, sim: Simulation, i: int) -> None:
        self.sim = sim
        self.i = i
        self.rng = random.Random((sim.seed << 20) + i)
        self.machine_key = hashlib.sha256(f"garrison-sim:{sim.seed}:{i}".encode()).hexdigest()
        self.headers: dict[str, str] = {}
        if sim.cfg.forwarded_for:
            self.headers["X-Forwarded-For"] = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        self.seq = 0

    async def life(self, start_at: float, end_at: float) -> None:
        await self.sim.sleep_until(start_at)
        known = self.sim.known.get(str(self.i))
        uploads: asyncio.Task[None] | None = None
        if known:
            self.headers["Authorization"], self.seq = known["authorization"], int(known["seq"])
        else:
            if not await self.enroll(end_at):
                return
            # Like the agent, uploads and check-ins go their own ways: retries of one do not delay the other.
            uploads = asyncio.create_task(self.first_uploads(end_at))
        next_at = time.monotonic() + self.rng.uniform(0, self.sim.cfg.interval)  # spread the first check-ins
        while next_at < end_at:
            await self.sim.sleep_until(next_at)
            await self.checkin()
            # Like the agent: the next check-in is an interval after this one ended, so a slow
            # server sees the fleet slow down instead of an ever-growing queue.
            next_at = time.monotonic() + self.sim.cfg.interval * self.rng.uniform(0.9, 1.1)
        if uploads is not None:
            await uploads

    async def first_uploads(self, end_at: float) -> None:
        device = json.dumps(device_payload(self.i, self.machine_key, self.rng, self.sim.os_id)).encode()
        await self.upload("device", device, end_at)
        await self.upload("inventory", self.sim.variants[self.i % len(self.sim.variants)], end_at)

    async def call(self, name: str, path: str, body: bytes, *, gzipped: bool = False) -> httpx.Response | None:
        stats = self.sim.stats
        headers = {"Content-Type": "application/json", **self.headers}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        queued = time.perf_counter()
        # At most `concurrency` requests reach httpx at once, spread over small pools: httpx's
        # pool does work per waiting request × connection on every change, a semaphore does not.
        # Latency is timed from the moment a request has its connection slot, so it measures
        # the server, not this queue.
        client, slots = self.sim.shards[self.i % len(self.sim.shards)]
        async with slots:
            if time.monotonic() >= self.sim.end_at:
                stats.counts["not sent: run over"] += 1  # queued here past the end of the run
                return None
            started = time.perf_counter()
            stats.timed("queue", started - queued)
            try:
                for attempt in range(3):
                    try:
                        resp = await client.post(path, content=body, headers=headers)
                        break
                    except httpx.RemoteProtocolError:
                        # A kept-alive connection the server had just closed (it closes one after
                        # each 500, too): every call here is safe to repeat on a fresh one.
                        if attempt == 2:
                            raise
                        started = time.perf_counter()
            except httpx.TimeoutException:
                stats.errors[f"{name}: timeout"] += 1
                return None
            except httpx.TransportError as exc:
                stats.errors[f"{name}: {type(exc).__name__}"] += 1
                return None
            stats.timed(name, time.perf_counter() - started)
        if resp.status_code >= 300:
            stats.errors[f"{name}: HTTP {resp.status_code}"] += 1
            return resp
        stats.counts[name] += 1
        return resp

    async def enroll(self, end_at: float) -> bool:
        host = f"sim-{self.i:05d}.sim.garrison.test"
        body = json.dumps({"secret": self.sim.cfg.secret, "machine_key": self.machine_key, "hostname": host,
                           "agent_version": __version__}).encode()
        while time.monotonic() < end_at:
            resp = await self.call("enroll", API + "/enroll", body)
            if resp is not None and resp.status_code == 200:
                answer = resp.json()
                self.headers["Authorization"] = f"Device {answer['device_id']}:{answer['credential']}"
                return True
            if resp is not None and resp.status_code not in (429, 502, 503, 504):
                return False  # a bad secret does not get better by trying again
            await asyncio.sleep(self._retry_delay(resp))
        return False

    async def upload(self, kind: str, payload_json: bytes, end_at: float) -> None:
        self.seq += 1
        created = dt.datetime.now(dt.UTC).isoformat()
        doc = b'{"seq":%d,"kind":"%s","created_at":"%s","payload":' % (self.seq, kind.encode(), created.encode())
        body = doc + payload_json + b"}"
        gzipped = len(body) > GZIP_ABOVE
        if gzipped:
            body = gzip.compress(body, compresslevel=1, mtime=0)
        # A real agent keeps a batch until it is acknowledged; a simulated one tries a few
        # times and then goes on checking in, so that one failing kind does not stall the run.
        for _attempt in range(UPLOAD_ATTEMPTS):
            resp = await self.call("batch", API + "/batches", body, gzipped=gzipped)
            if resp is not None and resp.status_code < 300:
                self.sim.stats.counts[f"batch:{kind}"] += 1
                return
            if resp is not None and resp.status_code not in (429, 500, 502, 503, 504):
                break
            if time.monotonic() >= end_at:
                break
            await asyncio.sleep(self._retry_delay(resp))
        self.sim.stats.counts[f"lost:{kind}"] += 1

    async def checkin(self) -> None:
        body = json.dumps({
            "agent_version": __version__,
            "health": {"device": {"ok": True, "last_run": dt.datetime.now(dt.UTC).isoformat()},
                       "inventory": {"ok": True}},
            "drops": {}, "spool_pending": 0, "transport_errors": 0,
        }).encode()
        resp = await self.call("checkin", API + "/checkin", body)
        if resp is not None and resp.status_code == 200:
            self.sim.stats.checkins_at.append(time.monotonic())
            for action in resp.json().get("actions", []):
                result = {"id": action["id"], "status": "Failed",
                          "result": {"error": "simulated agent: actions are not run"}}
                action_id = urllib.parse.quote(action["id"], safe="")
                await self.call("result", f"{API}/actions/{action_id}/result", json.dumps(result).encode())

    def _retry_delay(self, resp: httpx.Response | None) -> float:
        if resp is not None:
            try:
                return float(resp.headers.get("Retry-After", "")) * self.rng.uniform(1.0, 1.5)
            except ValueError:
                pass
        return self.rng.uniform(0.5, 3.0)


class Simulation:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.seed = cfg.seed if cfg.seed is not None else uuid.uuid4().int & 0xFFFFFFFF
        self.known: dict[str, dict[str, Any]] = {}  # agent number → credentials, from cfg.state
        if cfg.state and cfg.state.exists():
            saved = json.loads(cfg.state.read_text())
            if saved.get("server") == cfg.server and (cfg.seed is None or saved.get("seed") == cfg.seed):
                self.seed = int(saved["seed"])  # continue the saved fleet
                self.known = dict(saved["agents"])
        self.stats = Stats()
        rng = random.Random(self.seed)
        packages, self.os_id = load_packages(cfg.inventory)
        self.package_count = len(packages)
        self.variants = inventory_variants(packages, self.os_id, rng)
        self.shards: list[tuple[httpx.AsyncClient, asyncio.Semaphore]] = []  # set in run()
        self.agents: list[SimAgent] = []
        self.end_at = float("inf")

    def save_state(self) -> None:
        if self.cfg.state is None:
            return
        agents = dict(self.known)
        for a in self.agents:
            if "Authorization" in a.headers:
                agents[str(a.i)] = {"authorization": a.headers["Authorization"], "seq": a.seq}
        data = json.dumps({"server": self.cfg.server, "seed": self.seed, "agents": agents})
        fd = os.open(self.cfg.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # device credentials
        with os.fdopen(fd, "w") as fh:
            fh.write(data)

    @staticmethod
    async def sleep_until(at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _tls(self) -> ssl.SSLContext | bool:
        url = urllib.parse.urlsplit(self.cfg.server)
        if url.scheme != "https":
            return False
        # Trust on first use, once for the whole fleet: then pin it like a real agent does.
        pem = ssl.get_server_certificate((url.hostname or "localhost", url.port or 443), timeout=self.cfg.timeout)
        return pinned_context(pem)

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        ramp = cfg.interval if cfg.ramp is None else cfg.ramp
        started = time.monotonic()
        end_at = self.end_at = started + ramp + cfg.duration
        verify = self._tls()
        n_shards = -(-cfg.concurrency // SHARD_CONNECTIONS)
        sizes = [len(range(k, cfg.concurrency, n_shards)) for k in range(n_shards)]  # an even split
        clients = [httpx.AsyncClient(
            base_url=cfg.server.rstrip("/"), verify=verify, trust_env=False,
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            timeout=httpx.Timeout(cfg.timeout, pool=cfg.timeout * 4),
            headers={"User-Agent": f"garrison-simulate/{__version__}"},
        ) for n in sizes]
        self.shards = [(client, asyncio.Semaphore(n)) for client, n in zip(clients, sizes, strict=True)]
        try:
            rng = random.Random(self.seed)
            self.agents = agents = [SimAgent(self, i) for i in range(cfg.agents)]
            tasks = [asyncio.create_task(a.life(started + rng.uniform(0, ramp), end_at)) for a in agents]
            reporter = asyncio.create_task(self._progress(started)) if cfg.progress else None
            await asyncio.gather(*tasks)
            if reporter:
                reporter.cancel()
        finally:
            for client in clients:
                await client.aclose()
            self.save_state()
        elapsed = time.monotonic() - started
        c = self.stats.counts
        return {
            "agents": cfg.agents,
            "seed": self.seed,
            "interval": cfg.interval,
            "ramp": ramp,
            "duration": round(elapsed, 1),
            "packages_per_inventory": self.package_count,
            "enrolled": c["enroll"],
            "reused": sum(1 for a in self.agents if str(a.i) in self.known),
            "batches": {"device": c["batch:device"], "inventory": c["batch:inventory"]},
            "batches_not_accepted": {"device": c["lost:device"], "inventory": c["lost:inventory"]},
            "checkins": c["checkin"],
            # Throughput once every agent has started: successful check-ins per second after the ramp.
            "checkins_per_second": round(sum(1 for t in self.stats.checkins_at if t >= started + ramp)
                                         / cfg.duration, 1) if cfg.duration else 0.0,
            "action_results": c["result"],
            "not_sent_run_over": c["not sent: run over"],
            "errors": dict(self.stats.errors.most_common()),
            "error_count": sum(self.stats.errors.values()),
            "latency_ms": {name: percentiles(v) for name, v in self.stats.latency.items()},
        }

    async def _progress(self, started: float) -> None:
        out = self.cfg.progress
        assert out is not None
        while True:
            await asyncio.sleep(5)
            c = self.stats.counts
            lat = percentiles(self.stats.latency["checkin"][-2000:])
            print(f"[{time.monotonic() - started:6.0f}s] enrolled {c['enroll']}/{self.cfg.agents}  "
                  f"check-ins {c['checkin']}  errors {sum(self.stats.errors.values())}  "
                  f"check-in p95 {lat['p95']} ms", file=out, flush=True)


def simulate(cfg: SimConfig) -> dict[str, Any]:
    if cfg.agents < 1:
        raise ValueError("agents must be at least 1")
    return asyncio.run(Simulation(cfg).run())


if __name__ == "__main__":  # pragma: no cover - convenience for profiling
    print(json.dumps(simulate(SimConfig(server=sys.argv[1], secret=sys.argv[2], agents=int(sys.argv[3]))), indent=2))
