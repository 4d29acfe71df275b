"""Schema of a configuration check.

A check is data: metadata for people (title, rationale, remediation, references) and a
logic tree whose leaves call one of the agent's fixed, safe probes with parameters. There is
no field that can carry a command or code, so whoever supplies checks cannot run anything
on a device through them. Probe parameters are checked against the probe's own model when
the agent compiles the check (see ``garrison.agent.assessment``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from garrison.protocol.assessment import CheckId

# Defender's API enum; "SecurityControls" is shown as "Security controls".
Category = Literal["Application", "OS", "Network", "Accounts", "SecurityControls"]
CATEGORIES: tuple[str, ...] = ("Application", "OS", "Network", "Accounts", "SecurityControls")
CATEGORY_LABELS = {
    "Application": "Application",
    "OS": "Operating system",
    "Network": "Network",
    "Accounts": "Accounts",
    "SecurityControls": "Security controls",
}
OsFamily = Literal["linux", "debian", "rhel"]

MAX_LOGIC_DEPTH = 6
MAX_LOGIC_CHILDREN = 32

Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ProbeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
Technique = Annotated[str, StringConstraints(pattern=r"^T\d{4}(\.\d{3})?$")]
# How Lynis judges the same control (see garrison.checks.lynis): "TEST-ID" or "TEST-ID:text",
# "report:key=value", "log:TEST-ID:text" (pass if logged) or "logfail:TEST-ID:text" (fail if logged).
LynisRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^([A-Z]{2,5}-\d{4}(:.{1,120})?|report:[a-z0-9_]{1,64}=.{0,64}|(log|logfail):[A-Z]{2,5}-\d{4}:.{1,120})$"
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeCall(_Model):
    """A leaf: ``{probe: sysctl, key: kernel.randomize_va_space, op: eq, value: 2}``."""

    probe: ProbeName
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        # YAML writes the parameters next to ``probe``; keep them apart in the model.
        if isinstance(data, dict) and "params" not in data:
            data = dict(data)
            probe = data.pop("probe", None)
            return {"probe": probe, "params": data}
        return data


class AllOf(_Model):
    all: list[Logic] = Field(min_length=1, max_length=MAX_LOGIC_CHILDREN)


class AnyOf(_Model):
    any: list[Logic] = Field(min_length=1, max_length=MAX_LOGIC_CHILDREN)


class NoneOf(_Model):
    none: list[Logic] = Field(min_length=1, max_length=MAX_LOGIC_CHILDREN)


def _logic_kind(v: Any) -> str | None:
    if isinstance(v, BaseModel):
        return {AllOf: "all", AnyOf: "any", NoneOf: "none", ProbeCall: "probe"}.get(type(v))
    if isinstance(v, dict):
        kinds = [k for k in ("all", "any", "none", "probe") if k in v]
        return kinds[0] if len(kinds) == 1 else None
    return None


Logic = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NoneOf, Tag("none")]
    | Annotated[ProbeCall, Tag("probe")],
    Discriminator(_logic_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NoneOf.model_rebuild()


def logic_children(node: Logic) -> list[Logic]:
    if isinstance(node, AllOf):
        return node.all
    if isinstance(node, AnyOf):
        return node.any
    if isinstance(node, NoneOf):
        return node.none
    return []


def iter_probe_calls(node: Logic) -> list[ProbeCall]:
    if isinstance(node, ProbeCall):
        return [node]
    out: list[ProbeCall] = []
    for child in logic_children(node):
        out.extend(iter_probe_calls(child))
    return out


def logic_depth(node: Logic) -> int:
    children = logic_children(node)
    return 1 + max((logic_depth(c) for c in children), default=0)


class Platform(_Model):
    """Where a check applies: an OS family, optionally one distribution and a version range."""

    family: OsFamily = "linux"
    distro: Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,32}$")] | None = None
    min_version: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")] | None = None
    max_version: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")] | None = None


class CheckDef(_Model):
    id: CheckId
    title: Short
    description: Text
    rationale: Text
    remediation: Text
    category: Category
    subcategory: Short
    impact: Annotated[int, Field(ge=1, le=10)]
    benchmarks: list[Short] = Field(default_factory=list, max_length=32)
    mitre_techniques: list[Technique] = Field(default_factory=list, max_length=32)
    mitre_tactics: list[Short] = Field(default_factory=list, max_length=16)
    lynis: list[LynisRef] = Field(default_factory=list, max_length=16)  # for the Lynis comparison
    applies_to: list[Platform] = Field(default_factory=lambda: [Platform()], min_length=1, max_length=16)
    when: Logic | None = None  # precondition: the check is not applicable unless this passes
    test: Logic

    @field_validator("when", "test")
    @classmethod
    def _bounded(cls, v: Logic | None) -> Logic | None:
        if v is not None and logic_depth(v) > MAX_LOGIC_DEPTH:
            raise ValueError(f"logic nested deeper than {MAX_LOGIC_DEPTH}")
        return v

    @property
    def category_label(self) -> str:
        return CATEGORY_LABELS[self.category]

    def probe_calls(self) -> list[ProbeCall]:
        calls = iter_probe_calls(self.test)
        if self.when is not None:
            calls = iter_probe_calls(self.when) + calls
        return calls
