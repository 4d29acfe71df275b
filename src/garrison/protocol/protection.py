"""Wire shapes of protection (issue 17): the ``RunAntiVirusScan`` parameters and the DeviceEvents
ActionTypes the agent's scanner reports (Defender's names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from garrison.protocol.models import Wire

RUN_ANTIVIRUS_SCAN = "RunAntiVirusScan"
# DeviceEvents ActionTypes (Defender's): one per detection, one when a scan ends.
ANTIVIRUS_DETECTION = "AntivirusDetection"
SCAN_ENDED = {"Completed": "AntivirusScanCompleted", "Cancelled": "AntivirusScanCancelled",
              "Failed": "AntivirusScanFailed"}
MAX_SCAN_PATHS = 64

ScanPath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ScanParams(Wire):
    """``RunAntiVirusScan`` parameters: Defender's ``ScanType`` (Quick, Full) plus Garrison's Custom with
    ``Paths``; ``Quarantine`` moves what the scan detects into the device's quarantine."""

    ScanType: Literal["Quick", "Full", "Custom"] = "Quick"
    Paths: list[ScanPath] = Field(default_factory=list, max_length=MAX_SCAN_PATHS)
    Quarantine: bool = False

    @field_validator("Paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for p in paths:
            if not p.startswith("/") or "\0" in p:
                raise ValueError(f"scan paths must be absolute: {p[:80]!r}")
        return paths

    @model_validator(mode="after")
    def _paths_for_custom(self) -> ScanParams:
        if self.ScanType == "Custom" and not self.Paths:
            raise ValueError("a Custom scan needs Paths")
        if self.ScanType != "Custom" and self.Paths:
            raise ValueError("Paths are for a Custom scan only")
        return self
