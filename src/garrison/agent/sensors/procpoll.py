"""The unprivileged fallback for process events: /proc sampled every second.

Without root the audit interface is closed, so an agent running as a normal user still sees
processes that live at least one sampling interval (what it can), and its health says what it
misses (what it cannot): processes shorter than that, their exact creation order, and every
network, file, logon and device event.
"""

from __future__ import annotations

import os
import time

from garrison.agent.sensors.base import SensorContext, register_sensor
from garrison.agent.sensors.loop import LoopSensor
from garrison.agent.sensors.procinfo import account_sid, image_columns, initiating_columns, iso, read_proc


@register_sensor
class ProcPollSensor(LoopSensor):
    name = "procpoll"
    needs_root = False
    fallback_for = "audit"  # started only when that sensor cannot run
    tables = ("DeviceProcessEvents",)
    interval = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.known: set[int] = set()

    def open(self, ctx: SensorContext) -> None:
        self.known = set(self._pids())  # what runs already is not "created" now
        self.error = (f"running as uid {os.geteuid()} without audit: processes are sampled from /proc every "
                      f"{self.interval:g} s (shorter-lived ones are missed); network, file, logon and device "
                      "events are not collected")

    @staticmethod
    def _pids() -> list[int]:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]

    def run(self) -> None:
        while not self.wait(self.interval):
            self.poll()

    def poll(self) -> int:
        ctx = self.ctx
        assert ctx is not None
        current = set(self._pids())
        new = sorted(current - self.known)
        self.known = current
        n = 0
        for pid in new:
            info = read_proc(pid)
            if info is None or ctx.is_self(info.pid, info.ppid) or not info.path:
                continue
            ctx.processes.put(info)
            parent = ctx.processes.get(info.ppid)
            ctx.sink.emit("DeviceProcessEvents", {
                "Timestamp": iso(info.start or time.time()), "ActionType": "ProcessCreated",
                **image_columns("", info.path, ctx.hashes), "ProcessId": pid, "ProcessCommandLine": info.cmdline,
                "ProcessCreationTime": iso(info.start), "AccountName": ctx.users.name(info.uid),
                "AccountSid": account_sid(info.uid),
                **initiating_columns(parent, ctx.processes, ctx.hashes, ctx.users),
                "AdditionalFields": {"Source": "procfs-poll"},
            })
            n += 1
        return n
