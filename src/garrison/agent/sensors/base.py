"""Sensors: threads that turn kernel activity into MDE-shaped event rows.

A sensor is a class registered by name (like the collectors); it runs its own thread(s) and
hands rows (``{"Timestamp": …, "ActionType": …}`` with the MDE column names) to the
:class:`EventSink` with the table name. The sink is the one place that protects the agent:

* a per-device rate cap (token bucket: ``rate`` events/s, bursts up to ``burst``); what
  exceeds it is dropped and counted (``events.rate_cap``);
* a bounded in-memory queue in front of the spool (``events.queue_full`` when it overflows:
  the spool writer is behind);
* exclusions (from the configuration and from the server): rows matching one are not sent;
* a writer thread that spools the rows in batches (kind ``events``), at most every
  ``flush_interval`` seconds or every ``batch_events`` rows, so the spool sees few, large writes.

Drop counters are cumulative and reported at each check-in with the spool's.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from garrison.agent.sensors.procinfo import HashCache, ProcessTable, UserNames
from garrison.agent.spool import EVENTS_KIND
from garrison.protocol import CollectorHealth
from garrison.registry import Registry

log = logging.getLogger("garrison.agent.sensors")

Row = dict[str, Any]
SpoolPut = Callable[[str, dict[str, Any]], "int | None"]


@dataclass(frozen=True)
class Exclusion:
    """Rows whose ``column`` matches are not recorded (``table`` empty: every table)."""

    column: str
    value: str
    op: str = "equals"  # equals | startswith | contains
    table: str = ""

    def matches(self, table: str, row: Row) -> bool:
        if self.table and self.table != table:
            return False
        got = row.get(self.column)
        if got is None:
            return False
        text = str(got)
        if self.op == "startswith":
            return text.startswith(self.value)
        if self.op == "contains":
            return self.value in text
        return text == self.value

    @classmethod
    def parse(cls, raw: Any) -> Exclusion:
        if not isinstance(raw, dict):
            raise ValueError("an exclusion is a table with column and value")  # noqa: TRY004 - one error type
        column, value = raw.get("column"), raw.get("value")
        op, table = raw.get("op", "equals"), raw.get("table", "")
        if not isinstance(column, str) or not column or not isinstance(value, str):
            raise ValueError("an exclusion needs a column and a value (strings)")
        if op not in ("equals", "startswith", "contains") or not isinstance(table, str):
            raise ValueError(f"exclusion op must be equals, startswith or contains, not {op!r}")
        return cls(column[:128], value[:4096], op, table[:64])


def to_payload(rows: list[tuple[str, Row]]) -> dict[str, Any]:
    """One spooled upload of kind ``events``: the rows as ``garrison.protocol.events`` wants them
    (``{"Table": …, column: value}``, unknown values left out rather than sent as null)."""
    return {"events": [{"Table": table, **{k: v for k, v in row.items() if v is not None and v != ""}}
                       for table, row in rows]}


class EventSink:
    def __init__(self, put: SpoolPut, *, rate: float = 2000.0, burst: int = 20000, max_queue: int = 50000,
                 batch_events: int = 2000, flush_interval: float = 1.0,
                 exclusions: Iterable[Exclusion] = ()) -> None:
        self.put = put
        self.rate, self.burst = float(rate), float(burst)
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._queue: queue.Queue[tuple[str, Row]] = queue.Queue(maxsize=max_queue)
        self.batch_events = batch_events
        self.flush_interval = flush_interval
        self.exclusions: tuple[Exclusion, ...] = tuple(exclusions)
        self.drops: dict[str, int] = {}
        self.emitted: dict[str, int] = {}  # table → rows accepted
        self.excluded = 0
        self.last_event: float = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.spool_errors = 0

    # --- from the sensor threads ------------------------------------------------------

    def emit(self, table: str, row: Row) -> bool:
        for ex in self.exclusions:
            if ex.matches(table, row):
                self.excluded += 1
                return False
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens < 1.0:
                self._count("events.rate_cap")
                return False
            self._tokens -= 1.0
        try:
            self._queue.put_nowait((table, row))
        except queue.Full:
            with self._lock:
                self._count("events.queue_full")
            return False
        with self._lock:
            self.emitted[table] = self.emitted.get(table, 0) + 1
            self.last_event = time.time()
        return True

    def count_drop(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._count(name, n)

    def _count(self, name: str, n: int = 1) -> None:
        self.drops[name] = self.drops.get(name, 0) + n

    # --- the writer thread ------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="garrison-sensor-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()  # whatever is left, in this thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self.flush(wait=self.flush_interval)

    def flush(self, wait: float = 0.0) -> int:
        """Spool what the queue holds (after up to ``wait`` s for the first row); returns rows spooled."""
        rows: list[tuple[str, Row]] = []
        deadline = time.monotonic() + wait
        while len(rows) < self.batch_events:
            remaining = deadline - time.monotonic()
            try:
                rows.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        if rows:
            try:
                self.put(EVENTS_KIND, to_payload(rows))
            except Exception as exc:  # noqa: BLE001 - the spool is gone (shutdown) or broken: count, go on
                self.spool_errors += 1
                self.count_drop("events.spool_error", len(rows))
                log.warning("cannot spool %d events: %s", len(rows), exc)
        return len(rows)

    def pending(self) -> int:
        return self._queue.qsize()

    def snapshot_drops(self) -> dict[str, int]:
        with self._lock:
            return dict(self.drops)


@dataclass
class SensorContext:
    sink: EventSink
    self_pids: frozenset[int]  # the agent's own processes: their activity is not recorded
    settings: dict[str, Any] = field(default_factory=dict)
    processes: ProcessTable = field(default_factory=ProcessTable)
    hashes: HashCache = field(default_factory=HashCache)
    users: UserNames = field(default_factory=UserNames)
    state_dir: str = ""
    names: OrderedDict[str, str] = field(default_factory=OrderedDict)  # IP → name from DNS answers (dns sensor)

    def is_self(self, pid: int, ppid: int = 0) -> bool:
        return pid in self.self_pids or ppid in self.self_pids


class Sensor(ABC):
    name: ClassVar[str]
    needs_root: ClassVar[bool] = True
    tables: ClassVar[tuple[str, ...]] = ()
    fallback_for: ClassVar[str] = ""  # started only when that sensor cannot run (e.g. not root)

    def __init__(self) -> None:
        self.error: str | None = None  # what it cannot do (reported in health; the sensor may still run)
        self.running = False
        self.started_at: dt.datetime | None = None

    @abstractmethod
    def start(self, ctx: SensorContext) -> None:
        """Start the sensor's thread(s); raise when it cannot run at all."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and join the threads; undo what was changed in the kernel."""

    def health(self) -> CollectorHealth:
        return CollectorHealth(ok=self.running and not self.error, error=(self.error or None),
                               last_run=self.started_at)


SENSORS: Registry[type[Sensor]] = Registry("sensor", package="garrison.agent.sensors", name_of=lambda cls: cls.name)
"""Every module of ``garrison.agent.sensors`` is discovered (adding a sensor is adding one file)."""


def register_sensor(cls: type[Sensor]) -> type[Sensor]:
    return SENSORS.register(cls)
