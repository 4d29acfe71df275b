"""The agent's main loop: enroll, collect into the spool, check in, run actions, drain the spool.

One thread does everything, in this order each cycle: run the collectors that are due
→ check in when due (heartbeat, health, drop counters, spool size) → run the actions the
check-in brought → post their results → send what the spool holds (oldest first, each
batch deleted only on its ack). The behaviour sensors (garrison.agent.sensors) run in
threads of their own beside this loop (``run_forever`` only) and spool their events
themselves; each check-in carries their health and drop counters. Failed calls back off (exponential, full jitter) per
kind — check-ins and uploads — and the collectors keep collecting meanwhile. A signal
sets ``stop``; the request in flight finishes, then the spool is closed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from garrison import __version__
from garrison.agent import actions as action_registry
from garrison.agent.collectors import base as collector_base
from garrison.agent.collectors.base import AgentContext, Collector
from garrison.agent.collectors.device import hostname_and_fqdn, machine_key
from garrison.agent.protection.background import collect_finished
from garrison.agent.protection.status import protection_health
from garrison.agent.sensors.manager import SensorManager
from garrison.agent.spool import Spool, SpoolError, enrollment_floor
from garrison.agent.transport import (
    Backoff,
    EnrollError,
    Identity,
    Rejected,
    Transport,
    TransportError,
    Unauthorized,
    enroll,
    ensure_state_dir,
    forget_identity,
    load_identity,
    load_pinned_pem,
    save_identity,
    write_private,
)
from garrison.config import AgentConfig
from garrison.protocol import (
    ActionOut,
    ActionResult,
    CheckinRequest,
    CheckinResponse,
    CollectorHealth,
    EnrollRequest,
)
from garrison.protocol.limits import HOSTNAME_LEN
from garrison.registry import Registry

log = logging.getLogger("garrison.agent")

SPOOL_FILE = "spool.db"
STATUS_FILE = "status.json"
OFFBOARDED_FILE = "offboarded"
DEFAULT_CHECKIN = 60
EXIT_OK, EXIT_FAILED, EXIT_REVOKED = 0, 1, 3  # 3: systemd must not restart (RestartPreventExitStatus)

T = TypeVar("T")


class AgentStopped(Exception):
    """The agent must stop for good: credential rejected, or device offboarded."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class CollectorState:
    name: str
    instance: Collector | None
    interval: int
    enabled: bool
    reason: str = ""  # why it is disabled, or why it could not be loaded
    kinds: set[str] = field(default_factory=set)  # upload kinds it produces
    next_due: float = 0.0  # monotonic; 0 = now
    last_run: dt.datetime | None = None
    ok: bool = True
    error: str | None = None
    runs: int = 0

    def health(self) -> CollectorHealth:
        if self.instance is None:
            return CollectorHealth(ok=False, error=self.reason[:4096], last_run=None)
        if not self.enabled:
            return CollectorHealth(ok=True, disabled=True, error=self.reason[:4096] or None)
        # A collector may keep finer health of its own (e.g. "rpm not available", "running
        # unprivileged: 97 processes not visible"); it counts when the run itself did not fail.
        own = getattr(self.instance, "health", None)
        if self.ok and isinstance(own, CollectorHealth):
            return CollectorHealth(ok=own.ok, error=(own.error or "")[:4096] or None, last_run=self.last_run)
        return CollectorHealth(ok=self.ok, error=(self.error or "")[:4096] or None, last_run=self.last_run)


@dataclass
class Gate:
    """When calls of one kind may be made again after a failure."""

    backoff: Backoff
    retry_at: float = 0.0  # monotonic; 0 = now


@dataclass
class RunReport:
    """What ``agent run --once`` did; printed with --json."""

    ok: bool = False
    device_id: str = ""
    server: str = ""
    enrolled_now: bool = False
    collected: dict[str, int] = field(default_factory=dict)  # kind → batches spooled
    sent: int = 0  # batches acknowledged by the server
    rejected: int = 0
    pending: int = 0  # batches still in the spool
    drops: dict[str, int] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    offboarded: bool = False
    error: str = ""
    exit_code: int = EXIT_OK


def load_collectors() -> tuple[Registry[type[Collector]], dict[str, str]]:
    """Every collector, and the modules that failed to import (one broken module does not take the
    others down: the registry's discovery isolates failures)."""
    collectors = collector_base.load_all()
    for name, why in collectors.failures.items():
        log.error("collector module %s: %s", name, why)
    return collectors, dict(collectors.failures)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        root: Path = Path("/"),
        explicit_enroll: bool = False,
        rng: random.Random | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.ctx = AgentContext(state_dir=config.state_dir, agent_version=__version__, root=root)
        self.explicit_enroll = explicit_enroll  # a person asked to enroll (overrides an offboarding)
        self.stop_event = stop_event or threading.Event()
        self.rng = rng or random.Random()
        self.checkin_gate = Gate(Backoff(config.backoff_base, config.backoff_cap, self.rng))
        self.upload_gate = Gate(Backoff(config.backoff_base, config.backoff_cap, self.rng))
        self.next_checkin = 0.0  # monotonic; 0 = now
        self.transport_errors = 0  # failed calls since the last successful check-in
        self.last_error = ""
        self.checkin_interval = config.checkin_interval or DEFAULT_CHECKIN
        self.identity: Identity | None = None
        self.transport: Transport | None = None
        self.spool: Spool | None = None
        self.collectors: dict[str, CollectorState] = {}
        self.sensors: SensorManager | None = None
        # The server's configuration as last received: its version (sent back at each check-in, so the
        # server answers with the configuration only when it changed) and the sensor exclusions in it.
        self.config_version = 0
        self.server_exclusions: list[dict[str, Any]] = []
        self._offboard = False
        self._stop_requested = False
        self.report = RunReport()

    # --- ActionHost ---------------------------------------------------------------------

    def request_resync(self, kind: str) -> list[str]:
        self.ctx.memory[f"resync_{kind}"] = True
        names = [st.name for st in self.collectors.values()
                 if st.enabled and st.instance is not None and (kind in st.kinds or st.name == kind)]
        for name in names:
            self.collectors[name].next_due = 0.0
        return names

    def request_stop(self, *, offboard: bool) -> None:
        self._offboard = self._offboard or offboard
        self._stop_requested = True

    def stop(self) -> None:
        """Ask the loop to end (signal handlers call this)."""
        self.stop_event.set()

    # --- setup --------------------------------------------------------------------------

    def open(self) -> None:
        """Open the state: spool, collectors, identity (enrolling when there is none)."""
        ensure_state_dir(self.state_dir)
        self.spool = Spool(self.state_dir / SPOOL_FILE, self.config.spool_max_bytes)
        self.setup_collectors()
        identity = load_identity(self.state_dir)
        if identity is None:
            identity = self._enroll()
            self.report.enrolled_now = True
        elif self.config.server and self.config.server != identity.server:
            log.warning("server URL changed from %s to %s; keeping the pinned certificate",
                        identity.server, self.config.server)
            identity.server = self.config.server
        self.identity = identity
        pem = load_pinned_pem(self.state_dir) if identity.server.startswith("https://") else None
        self.transport = Transport(identity, pem, timeout=self.config.request_timeout)
        self.report.device_id, self.report.server = identity.device_id, identity.server
        try:
            saved = json.loads((self.state_dir / STATUS_FILE).read_text())
            if not self.config.checkin_interval and int(saved.get("checkin_interval", 0)) > 0:
                self.checkin_interval = int(saved["checkin_interval"])
        except (OSError, ValueError, TypeError):
            pass

    def start_sensors(self) -> None:
        """Start the behaviour sensors (their own threads); what cannot run says so in health."""
        if self.spool is None or not self.config.sensors_enabled or self.sensors is not None:
            return
        self.sensors = SensorManager(self.spool.put, settings=self.config.sensors, state_dir=str(self.state_dir))
        self.sensors.apply_server_settings(self.server_exclusions)
        self.sensors.start()

    def close(self) -> None:
        if self.sensors is not None:
            self.sensors.stop()  # before the spool closes: the last events are spooled
            self.sensors = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _enroll(self) -> Identity:
        cfg = self.config
        if (self.state_dir / OFFBOARDED_FILE).exists() and not self.explicit_enroll:
            raise EnrollError("this device was offboarded; enroll it again explicitly with --enroll SECRET")
        if not cfg.server or not cfg.enroll_secret:
            raise EnrollError("not enrolled yet: give the server URL (--server) and an enrollment secret (--enroll)")
        host, fqdn = hostname_and_fqdn(self.ctx)
        request = EnrollRequest(secret=cfg.enroll_secret, machine_key=machine_key(self.ctx),
                                hostname=(fqdn or host or "localhost")[:HOSTNAME_LEN], agent_version=__version__)
        identity, pem = enroll(cfg.server, request, fingerprint=cfg.fingerprint, timeout=cfg.request_timeout)
        save_identity(self.state_dir, identity, pem)
        assert self.spool is not None
        self.spool.raise_seq_floor(enrollment_floor())  # see garrison.agent.spool: re-installed agents
        (self.state_dir / OFFBOARDED_FILE).unlink(missing_ok=True)
        log.info("enrolled as device %s with %s (tenant %s)", identity.device_id, identity.server, identity.tenant)
        return identity

    def setup_collectors(self) -> None:
        """Load and configure every collector (``open`` does it; tests and tools may on their own)."""
        classes, failed = load_collectors()
        for name, cls in sorted(classes.items()):
            enabled, reason = True, ""
            if not self.config.collector_enabled(name):
                enabled, reason = False, "disabled in the configuration"
            elif cls.needs_root and not self.ctx.is_root:
                enabled, reason = False, f"needs root; the agent runs as uid {os.geteuid()}"
            try:
                instance: Collector | None = cls()
            except Exception as exc:  # noqa: BLE001 - reported in its health instead
                instance, reason = None, f"cannot start: {type(exc).__name__}: {exc}"
            interval = self.config.collector_intervals.get(name, cls.interval)
            kinds = set(cls.kinds)
            self.collectors[name] = CollectorState(name, instance, interval, enabled, reason, kinds)
        for name, reason in failed.items():
            if name not in self.collectors:
                self.collectors[name] = CollectorState(name, None, 0, False, reason)

    # --- the parts of a cycle -----------------------------------------------------------

    def run_collector(self, st: CollectorState) -> None:
        assert self.spool is not None and st.instance is not None
        started = time.monotonic()
        try:
            uploads = st.instance.collect(self.ctx)
            for kind, payload in uploads:
                seq = self.spool.put(kind, payload)
                st.kinds.add(kind)
                if seq is not None:
                    self.report.collected[kind] = self.report.collected.get(kind, 0) + 1
            st.ok, st.error = True, None
        except Exception as exc:  # a collector's failure is reported in its health, never fatal
            st.ok, st.error = False, f"{type(exc).__name__}: {exc}"
            log.warning("collector %s failed: %s", st.name, st.error, exc_info=log.isEnabledFor(logging.DEBUG))
        st.runs += 1
        st.last_run = dt.datetime.now(dt.UTC)
        st.next_due = time.monotonic() + st.interval
        log.debug("collector %s ran in %.2fs", st.name, time.monotonic() - started)

    def run_due_collectors(self, *, all_enabled: bool = False) -> None:
        now = time.monotonic()
        # The sensor-health configuration checks read the agent's own state from here.
        self.ctx.memory["collector_health"] = {n: st.health().model_dump(mode="json")
                                               for n, st in self.collectors.items()}
        if self.spool is not None:
            self.ctx.memory["drops"] = self.spool.drops()
        for st in self.collectors.values():
            if self.stop_event.is_set():
                return
            if st.enabled and st.instance is not None and (all_enabled or st.next_due <= now):
                self.run_collector(st)

    def flush(self) -> None:
        """Send spooled batches oldest first until the spool is empty; raises on a failed call."""
        assert self.spool is not None and self.transport is not None
        while not self.stop_event.is_set():
            chunk = self.spool.pending(limit=50)
            if not chunk:
                return
            for batch in chunk:
                if self.stop_event.is_set():
                    return
                try:
                    self.transport.send_batch(batch)
                except Rejected as exc:
                    log.error("batch %d (%s) dropped: %s", batch.seq, batch.kind, exc)
                    self.spool.reject(batch.seq)
                    self.report.rejected += 1
                    continue
                self.spool.ack(batch.seq)
                self.report.sent += 1

    def checkin(self) -> CheckinResponse:
        assert self.spool is not None and self.transport is not None
        health = {name: st.health() for name, st in self.collectors.items()}
        drops = self.spool.drops()
        if self.sensors is not None:
            health.update(self.sensors.health())
            drops.update(self.sensors.drops())
        health.update(protection_health(self.state_dir))  # the rule pack versions (garrison.agent.protection)
        request = CheckinRequest(
            agent_version=__version__,
            health=health,
            drops=drops,
            spool_pending=self.spool.pending_count(),
            transport_errors=self.transport_errors,
            config_version=self.config_version,
        )
        response = self.transport.checkin(request)
        self.transport_errors = 0
        if not self.config.checkin_interval and response.checkin_interval > 0:
            self.checkin_interval = response.checkin_interval
        for kind in response.resync:
            self.request_resync(kind)
        if response.sensor_exclusions is not None:  # the configuration changed (or was never received)
            self.server_exclusions = [e.model_dump() for e in response.sensor_exclusions]
            if self.sensors is not None:
                self.sensors.apply_server_settings(self.server_exclusions)
        self.config_version = response.config_version
        if response.offboard:
            self.request_stop(offboard=True)
        self._write_status(ok=True)
        return response

    def run_actions(self, actions: list[ActionOut]) -> None:
        assert self.spool is not None
        for action in actions:
            if self.spool.has_result(action.id):  # delivered again: run once, post again
                continue
            log.info("running action %s (%s)", action.id, action.type)
            result = action_registry.run_action(action, self)
            self.spool.add_result(action.id, result.model_dump(mode="json"))
            self.report.actions.append({"id": action.id, "type": action.type, "status": result.status})

    def post_results(self) -> None:
        assert self.spool is not None and self.transport is not None
        for body in self.spool.unposted_results():
            result = ActionResult.model_validate(body)
            try:
                self.transport.post_result(result)
            except Rejected as exc:
                log.error("result of action %s dropped: %s", result.id, exc)
            self.spool.mark_posted(result.id)

    def offboard(self) -> None:
        """Forget the credential and everything pending; remember that this was deliberate."""
        log.warning("device offboarded by the server: removing the device credential")
        if self.spool is not None:
            self.spool.clear()
        forget_identity(self.state_dir)
        write_private(self.state_dir / OFFBOARDED_FILE, dt.datetime.now(dt.UTC).isoformat() + "\n")
        self.report.offboarded = True

    # --- network calls, each kind behind its own backoff ----------------------------------
    # Check-ins and uploads back off separately, so that a batch the server keeps failing on
    # (a 500 on one kind) does not silence the heartbeat, and a successful check-in reopens
    # the upload gate at once: the server is back, the spool must not wait out its backoff.

    def _call(self, gate: Gate, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except Unauthorized as exc:
            raise AgentStopped(f"{exc}; the device must be enrolled again", EXIT_REVOKED) from None
        except TransportError as exc:
            self.transport_errors += 1
            self.last_error = str(exc)
            delay = gate.backoff.next_delay(exc.retry_after)
            if gate is self.checkin_gate:
                delay = min(delay, self.checkin_interval)  # never later than a regular check-in
            gate.retry_at = time.monotonic() + delay
            log.warning("%s (retrying in %.1fs)", exc, delay)
            self._write_status(ok=False)
            raise
        gate.backoff.reset()
        gate.retry_at = 0.0
        return result

    def _write_status(self, *, ok: bool) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        path = self.state_dir / STATUS_FILE
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            status = {}
        if ok:
            status.update(last_checkin=now, last_error="", checkin_interval=self.checkin_interval)
        else:
            status.update(last_error=self.last_error, last_error_at=now)
        status["pid"] = os.getpid()
        try:
            write_private(path, json.dumps(status, indent=2) + "\n")
        except OSError as exc:
            log.debug("cannot write %s: %s", path, exc)

    # --- the two ways to run ------------------------------------------------------------

    def run_once(self, attempts: int = 3) -> RunReport:
        """Collect everything once, check in, run pending actions, send the spool, post results."""
        report = self.report
        errors: list[str] = []
        try:
            self.open()
            assert self.spool is not None
            self.run_due_collectors(all_enabled=True)
            reachable = True
            try:
                response = self._once(self.checkin_gate, self.checkin, attempts)
                self.run_actions(response.actions)
                self.run_due_collectors()  # what a resync (server or action) made due again
            except TransportError as exc:
                errors.append(str(exc))
                reachable = exc.status is not None  # it answered, with an error: uploads may still work
            if reachable:  # results first: one batch the server fails on must not hold them back
                for step in self._upload_steps():
                    try:
                        self._once(self.upload_gate, step, attempts)
                    except TransportError as exc:
                        errors.append(str(exc))
            if self._offboard:
                self.offboard()
            report.ok = not errors
            report.error = errors[0] if errors else ""
            report.exit_code = EXIT_FAILED if errors else EXIT_OK
        except AgentStopped as exc:
            report.error, report.exit_code = str(exc), exc.code
        except EnrollError as exc:
            report.error, report.exit_code = str(exc), EXIT_FAILED
        except (SpoolError, OSError) as exc:
            report.error, report.exit_code = f"cannot use the agent state in {self.state_dir}: {exc}", EXIT_FAILED
        finally:
            if self.spool is not None:
                report.pending = self.spool.pending_count()
                report.drops = self.spool.drops()
                if report.pending and report.ok:
                    report.ok, report.error = False, f"{report.pending} batches are still waiting in the spool"
                    report.exit_code = EXIT_FAILED
            report.health = {n: st.health().model_dump(mode="json") for n, st in self.collectors.items()}
            self.close()
        return report

    def _once(self, gate: Gate, fn: Callable[[], T], attempts: int) -> T:
        for attempt in range(attempts):
            try:
                return self._call(gate, fn)
            except TransportError:
                if attempt == attempts - 1:
                    raise
                if self.stop_event.wait(max(0.0, gate.retry_at - time.monotonic())):
                    raise
        raise AssertionError("unreachable")

    def run_forever(self) -> int:
        """Run until :meth:`stop`; returns the process exit code."""
        while True:
            try:
                self.open()
                break
            except (SpoolError, OSError) as exc:
                self.close()
                log.error("cannot open the agent state in %s: %s", self.state_dir, exc)
                return EXIT_FAILED
            except EnrollError as exc:
                self.close()
                if not exc.retryable:
                    log.error("%s", exc)
                    return EXIT_FAILED
                delay = self.checkin_gate.backoff.next_delay()
                log.warning("%s (retrying in %.1fs)", exc, delay)
                if self.stop_event.wait(delay):
                    return EXIT_OK
        self.checkin_gate.backoff.reset()
        self.start_sensors()
        log.info("agent %s running as device %s (server %s, check-in every %ss)",
                 __version__, self.report.device_id, self.report.server, self.checkin_interval)
        code = EXIT_OK
        try:
            while not self.stop_event.is_set():
                self._cycle()
                if self._stop_requested:
                    if self._offboard:
                        try:
                            self._call(self.upload_gate, self.post_results)  # tell the server first
                        except TransportError:
                            pass
                        self.offboard()
                    break
                self.stop_event.wait(self._sleep_for())
        except AgentStopped as exc:
            log.error("%s", exc)
            code = exc.code
        finally:
            self.close()
            log.info("agent stopped")
        return code

    def _cycle(self) -> None:
        """One turn of the loop: collect what is due, check in when due, send what waits."""
        assert self.spool is not None
        self.run_due_collectors()
        now = time.monotonic()
        if now >= self.next_checkin and not self.stop_event.is_set():
            try:
                response = self._call(self.checkin_gate, self.checkin)
                self.next_checkin = time.monotonic() + self._jittered(self.checkin_interval)
                self.upload_gate.retry_at = 0.0
                self.run_actions(response.actions)
            except TransportError:
                self.next_checkin = self.checkin_gate.retry_at
        # Results first: one batch the server fails on must not hold them back.
        for step in self._upload_steps():
            if time.monotonic() < self.upload_gate.retry_at or self.stop_event.is_set():
                break
            try:
                self._call(self.upload_gate, step)
            except TransportError:
                pass  # the spool keeps it; the gate says when to try again

    def _upload_steps(self) -> list[Callable[[], None]]:
        """What there is to send, results first. (A call with nothing to send would reset the backoff.)"""
        assert self.spool is not None
        collect_finished(self.state_dir, self.spool)  # background scans that ended: their final results
        steps: list[Callable[[], None]] = []
        if self.spool.unposted_results():
            steps.append(self.post_results)
        if self.spool.pending_count():
            steps.append(self.flush)
        return steps

    def _jittered(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.9, 1.1)  # ±10%: agents started together spread out

    def _sleep_for(self) -> float:
        now = time.monotonic()
        wakeups = [st.next_due for st in self.collectors.values() if st.enabled and st.instance is not None]
        wakeups.append(self.next_checkin)
        if self.spool is not None and (self.spool.pending_count() or self.spool.unposted_results()):
            wakeups.append(self.upload_gate.retry_at)
        return max(0.05, min(wakeups) - now)

def run_in_thread(
    *,
    server: str,
    enroll_secret: str,
    state_dir: Path,
    stop: threading.Event,
    fingerprint: str | None = None,
    checkin_interval: int | None = None,
    **settings: Any,
) -> int:
    """Run an agent in the calling thread until ``stop`` is set (``garrison demo`` embeds one)."""
    cfg = AgentConfig(server=server, enroll_secret=enroll_secret, state_dir=Path(state_dir),
                      fingerprint=fingerprint, checkin_interval=checkin_interval, **settings).validate()
    return Agent(cfg, explicit_enroll=True, stop_event=stop).run_forever()


def status(state_dir: Path) -> dict[str, Any]:
    """What ``agent status`` shows; reads the state without changing it."""
    identity: Identity | None
    error = ""
    try:
        identity = load_identity(state_dir)
    except EnrollError as exc:
        identity, error = None, str(exc)
    out: dict[str, Any] = {
        "enrolled": identity is not None,
        "state_dir": str(state_dir),
        "device_id": identity.device_id if identity else None,
        "server": identity.server if identity else None,
        "tenant": identity.tenant if identity else None,
        "fingerprint": identity.fingerprint if identity else None,
        "offboarded": (state_dir / OFFBOARDED_FILE).exists(),
        "spool_pending": 0,
        "spool_bytes": 0,
        "pending_kinds": {},
        "drops": {},
        "last_seq": 0,
    }
    if error:
        out["error"] = error
    if (state_dir / SPOOL_FILE).exists():
        spool = Spool(state_dir / SPOOL_FILE)
        try:
            out.update(spool_pending=spool.pending_count(), spool_bytes=spool.pending_bytes(),
                       pending_kinds=spool.pending_kinds(), drops=spool.drops(), last_seq=spool.last_seq(),
                       unposted_results=len(spool.unposted_results()))
        finally:
            spool.close()
    try:
        out["last"] = json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        out["last"] = {}
    return out


def report_dict(report: RunReport) -> dict[str, Any]:
    return asdict(report)
