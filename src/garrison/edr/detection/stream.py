"""Detection at ingest: the event store calls :meth:`DetectionService.on_write` with every write's stored rows
(``EventStore.listeners``), in the writer's own pass; the matches go to a sink (the alerts store).

The ruleset is compiled once, on first use (the whole SigmaHQ ruleset takes a few seconds), under a lock:
a write that arrives while it loads waits for it rather than going unevaluated.
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


class DetectionService:
    def __init__(self, load: Callable[[], RuleSet], sink: Sink | None = None) -> None:
        self._load = load
        self._detector: Detector | None = None
        self._lock = threading.Lock()
        self.sinks: list[Sink] = [sink] if sink else []
        self.events = 0
        self.matches = 0
        self.seconds = 0.0

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    started = time.monotonic()
                    self._detector = Detector(self._load())
                    status = self._detector.ruleset.status()
                    log.info("detection: %d rules compiled, %d not runnable, in %.1f s", status["compiled"],
                             status["notRunnable"], time.monotonic() - started)
        return self._detector

    @property
    def ruleset(self) -> RuleSet:
        return self.detector.ruleset

    def on_write(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        detector = self.detector
        started = time.perf_counter()
        found = detector.evaluate_tables(rows)
        self.seconds += time.perf_counter() - started
        self.events += sum(len(r) for r in rows.values())
        self.matches += len(found)
        if found:
            for sink in self.sinks:
                sink(found)
