"""Wire model of the ``assessment`` upload: results of the configuration checks on one device.

The agent sends a ``full`` set first (and whenever the server asks for a resync), then
``delta`` reports holding only the results that changed since ``base_generation``.
Like every upload it is untrusted input: every string and list is bounded and unknown
fields are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from garrison.protocol.bounds import Id, UtcDateTime
from garrison.protocol.limits import CHECKS_VERSION_LEN, OS_FAMILY_LEN
from garrison.protocol.models import LongStr, Wire

KIND = "assessment"
MAX_CHECKS = 5_000
EVIDENCE_VALUE_MAX = 1024

CheckId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,95}$")]
CheckStatus = Literal["pass", "fail", "not_applicable", "error"]
STATUSES: tuple[str, ...] = ("pass", "fail", "not_applicable", "error")


class Evidence(Wire):
    """What the probe saw: the value, where (file and 1-based line) and a sentence for people."""

    value: Annotated[str, StringConstraints(max_length=EVIDENCE_VALUE_MAX)] | None = None
    file: LongStr | None = None
    line: Annotated[int, Field(ge=1)] | None = None
    message: Annotated[str, StringConstraints(max_length=EVIDENCE_VALUE_MAX)] = ""


class CheckResult(Wire):
    check_id: CheckId
    status: CheckStatus
    evidence: Evidence = Field(default_factory=Evidence)


class AssessmentReport(Wire):
    """Payload of kind ``assessment``."""

    mode: Literal["full", "delta"]
    generation: Id
    base_generation: Id | None = None  # delta: the generation it applies to
    assessed_at: UtcDateTime
    checks_version: Annotated[str, StringConstraints(max_length=CHECKS_VERSION_LEN)] = ""  # digest of the checks
    os_family: Annotated[str, StringConstraints(max_length=OS_FAMILY_LEN)] = ""
    results: list[CheckResult] = Field(default_factory=list, max_length=MAX_CHECKS)
    removed: list[CheckId] = Field(default_factory=list, max_length=MAX_CHECKS)  # delta: checks gone
    duration_ms: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> AssessmentReport:
        if self.mode == "delta" and self.base_generation is None:
            raise ValueError("a delta needs base_generation")
        if self.mode == "full" and self.removed:
            raise ValueError("a full report cannot remove checks")
        ids = [r.check_id for r in self.results]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate check_id in results")
        return self
