"""LoopSensor: the thread plumbing of a sensor that is one loop in a thread of its own.

A subclass prepares in :meth:`LoopSensor.open` (raise when it cannot run: nothing is started), runs its
loop in :meth:`LoopSensor.run` (return when :attr:`stopping`; :meth:`wait` sleeps until the next round or
the stop), and releases what ``open`` took in :meth:`LoopSensor.close`, after the thread has ended.
"""

from __future__ import annotations

import datetime as dt
import threading
from abc import abstractmethod
from typing import ClassVar

from garrison.agent.sensors.base import Sensor, SensorContext


class LoopSensor(Sensor):
    join_timeout: ClassVar[float] = 10.0  # seconds stop() waits for the loop to notice

    def __init__(self) -> None:
        super().__init__()
        self.ctx: SensorContext | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ctx: SensorContext) -> None:
        self.ctx = ctx
        self.open(ctx)
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"garrison-{self.name}", daemon=True)
        self._thread.start()
        self.running = True
        self.started_at = dt.datetime.now(dt.UTC)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
            self._thread = None
        self.close()
        self.running = False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the sensor is stopping."""
        return self._stop.wait(seconds)

    def open(self, ctx: SensorContext) -> None:
        """Prepare before the thread starts (sockets, first state); raise when the sensor cannot run."""

    def close(self) -> None:
        """Release what :meth:`open` took; the thread has ended."""

    @abstractmethod
    def run(self) -> None:
        """The thread's loop: return when :attr:`stopping`."""
