"""Detection at ingest: the event store calls :meth:`DetectionService.on_write` with every write's stored rows
(``EventStore.listeners``), in the writer's own pass; the matches go to a sink (the alerts store).

The ruleset is compiled once, on first use (the whole SigmaHQ ruleset takes a few seconds of CPU). In a
server (``background=True``) it compiles in a thread of its own: writes that arrive meanwhile are kept
(up to :data:`MAX_BACKLOG_EVENTS`) and evaluated as soon as it is ready, so ingest neither stalls nor goes
unevaluated; past the bound the events are counted in ``unevaluated`` and logged. Otherwise (tests, the
CLI) the first write waits for the compile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from garrison.edr.detection.engine import Detector, Match
from garrison.edr.detection.rules import RuleSet

log = logging.getLogger("garrison.detection")
Sink = Callable[[list[Match]], None]
Rows = Mapping[str, Sequence[Mapping[str, Any]]]
MAX_BACKLOG_EVENTS = 500_000


_DETECTORS: dict[int, tuple[RuleSet, Detector]] = {}
_DETECTORS_LOCK = threading.Lock()


def detector_for(ruleset: RuleSet) -> Detector:
    """One index per ruleset in a process (building the RE2 sets of the whole ruleset takes seconds; every app
    of a test process, or of a server, shares the ruleset of its setting: ``rules.configured``)."""
    with _DETECTORS_LOCK:
        hit = _DETECTORS.get(id(ruleset))
        if hit is not None and hit[0] is ruleset:
            return hit[1]
        detector = Detector(ruleset)
        if len(_DETECTORS) >= 8:
            _DETECTORS.pop(next(iter(_DETECTORS)))
        _DETECTORS[id(ruleset)] = (ruleset, detector)
        return detector


class DetectionService:
    def __init__(self, load: Callable[[], RuleSet], sink: Sink | None = None, background: bool = False) -> None:
        self._load = load
        self._detector: Detector | None = None
        self._lock = threading.Lock()
        self.background = background
        self._backlog: list[Rows] = []
        self._backlog_events = 0
        self._backlog_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self.sinks: list[Sink] = [sink] if sink else []
        self.events = 0
        self.matches = 0
        self.unevaluated = 0
        self.seconds = 0.0

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    started = time.monotonic()
                    self._detector = detector_for(self._load())
                    status = self._detector.ruleset.status()
                    log.info("detection: %d rules compiled, %d not runnable, in %.1f s", status["compiled"],
                             status["notRunnable"], time.monotonic() - started)
        return self._detector

    @property
    def ruleset(self) -> RuleSet:
        return self.detector.ruleset

    def on_write(self, rows: Rows) -> None:
        if self._detector is None and self.background:
            with self._backlog_lock:
                if self._detector is None:
                    n = sum(len(r) for r in rows.values())
                    if self._backlog_events + n > MAX_BACKLOG_EVENTS:
                        self.unevaluated += n
                        log.error("detection: %d events not evaluated (the ruleset is still compiling)", n)
                    else:
                        self._backlog.append(rows)
                        self._backlog_events += n
                    if self._loader is None:
                        self._loader = threading.Thread(target=self._load_then_drain, name="garrison-detection",
                                                        daemon=True)
                        self._loader.start()
                    return
        self._evaluate(self.detector, rows)

    def _load_then_drain(self) -> None:
        detector = self.detector
        with self._backlog_lock:
            backlog, self._backlog, self._backlog_events = self._backlog, [], 0
        for rows in backlog:
            try:
                self._evaluate(detector, rows)
            except Exception:
                log.exception("detection: evaluating a stored write failed")

    def _evaluate(self, detector: Detector, rows: Rows) -> None:
        started = time.perf_counter()
        found = detector.evaluate_tables(rows)
        self.seconds += time.perf_counter() - started
        self.events += sum(len(r) for r in rows.values())
        self.matches += len(found)
        if found:
            for sink in self.sinks:
                sink(found)
