"""Wire models of the agent protocol (``/agent/v1/…``).

Everything an agent sends is untrusted: these models bound every string and list,
forbid unknown fields and never deserialise into code. The agent and the server
both import this module; nothing else is shared between them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from garrison.protocol.bounds import Id, UtcDateTime
from garrison.protocol.limits import AGENT_VERSION_LEN, HOSTNAME_LEN, MACHINE_KEY_LEN, OS_FIELD_LEN

PROTOCOL_VERSION = 1

Name = Annotated[str, StringConstraints(max_length=256)]
ShortStr = Annotated[str, StringConstraints(max_length=128)]
LongStr = Annotated[str, StringConstraints(max_length=4096)]
Secret = Annotated[str, StringConstraints(min_length=8, max_length=256)]
# Values stored in sized columns: their lengths come from garrison.protocol.limits.
HostName = Annotated[str, StringConstraints(max_length=HOSTNAME_LEN)]
AgentVersion = Annotated[str, StringConstraints(max_length=AGENT_VERSION_LEN)]
OsField = Annotated[str, StringConstraints(max_length=OS_FIELD_LEN)]

MAX_PACKAGES = 200_000
MAX_BATCH_BYTES = 32 * 1024 * 1024


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)


# --- enrollment -------------------------------------------------------------------------

class EnrollRequest(Wire):
    secret: Secret
    machine_key: Annotated[str, StringConstraints(min_length=8, max_length=MACHINE_KEY_LEN)]
    hostname: HostName
    agent_version: AgentVersion


class EnrollResponse(Wire):
    device_id: str
    credential: str
    tenant: str
    server_fingerprint: str | None = None  # SHA-256 of the server certificate (DER), hex
    server_certificate: str | None = None  # PEM; the agent pins it as its only trust anchor
    config_version: int = 0
    checkin_interval: int = 60


# --- check-in ---------------------------------------------------------------------------

class CollectorHealth(Wire):
    ok: bool
    error: LongStr | None = None
    last_run: UtcDateTime | None = None
    disabled: bool = False  # e.g. needs root and the agent runs unprivileged
    message: LongStr | None = None  # what it runs, shown on the device page (e.g. the protection rule packs)


class CheckinRequest(Wire):
    agent_version: AgentVersion
    health: dict[ShortStr, CollectorHealth] = Field(default_factory=dict, max_length=256)
    drops: dict[ShortStr, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=256)
    spool_pending: Annotated[int, Field(ge=0)] = 0
    transport_errors: Annotated[int, Field(ge=0)] = 0  # failed sends since the last check-in
    # The configuration version the agent applied last (0: none yet); the answer carries the
    # configuration (sensor exclusions) only when the server's is another.
    config_version: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class ActionOut(Wire):
    id: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class SensorExclusion(Wire):
    """Event rows the agent's sensors must not record (column op value, in one table or all)."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    value: LongStr
    op: Literal["equals", "startswith", "contains"] = "equals"
    table: Annotated[str, StringConstraints(max_length=64)] = ""


class CheckinResponse(Wire):
    actions: list[ActionOut] = Field(default_factory=list)
    # None: keep what the agent has; a list (maybe empty) replaces the server's exclusions.
    sensor_exclusions: list[SensorExclusion] | None = Field(default=None, max_length=1000)
    config_version: int = 0
    checkin_interval: int = 60
    resync: list[str] = Field(default_factory=list)  # upload kinds the server wants in full again
    offboard: bool = False


ActionStatus = Literal["InProgress", "Succeeded", "Failed", "TimeOut", "Cancelled"]


class ActionResult(Wire):
    id: Annotated[str, StringConstraints(max_length=64)]
    status: ActionStatus
    result: dict[ShortStr, Any] = Field(default_factory=dict, max_length=64)


# --- uploads ----------------------------------------------------------------------------

class Batch(Wire):
    """One spooled upload. The server is idempotent on (device, seq)."""

    seq: Id  # the agent_batches column is an Integer
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    created_at: UtcDateTime
    payload: dict[str, Any]


class BatchAck(Wire):
    seq: int
    # discarded: the device was offboarded; its reports are dropped (the agent learns at its next check-in)
    status: Literal["accepted", "duplicate", "discarded"]


class LoggedOnUser(Wire):
    user: ShortStr
    terminal: ShortStr = ""
    host: Name = ""
    since: UtcDateTime | None = None


class DeviceReport(Wire):
    """Payload of kind ``device``: what the device collector sees."""

    hostname: HostName
    fqdn: HostName = ""
    machine_key: Annotated[str, StringConstraints(max_length=MACHINE_KEY_LEN)] = ""
    os_platform: OsField = ""
    os_version: OsField = ""
    os_build: OsField = ""
    os_id: OsField = ""
    os_version_id: OsField = ""
    os_codename: OsField = ""
    kernel: OsField = ""
    architecture: OsField = ""
    processor: OsField = ""
    ip_addresses: list[ShortStr] = Field(default_factory=list, max_length=512)
    mac_addresses: list[ShortStr] = Field(default_factory=list, max_length=512)
    boot_time: UtcDateTime | None = None
    logged_on_users: list[LoggedOnUser] = Field(default_factory=list, max_length=1024)
    agent_version: AgentVersion = ""
    running_as_root: bool = False


class OsIdentity(Wire):
    """os-release facts; they decide which distro release's advisories apply."""

    id: ShortStr = ""  # debian, ubuntu, alpine, rhel, rocky, almalinux, …
    version_id: ShortStr = ""
    codename: ShortStr = ""
    name: Name = ""
    pretty_name: Name = ""
    id_like: ShortStr = ""


class SoftwarePackage(Wire):
    manager: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]  # dpkg, rpm, apk, python, npm, kernel
    name: Name
    version: Name
    ecosystem: ShortStr = ""  # OSV ecosystem, e.g. "Debian:12", "Ubuntu:20.04:LTS", "PyPI"
    arch: ShortStr = ""
    source_name: Name = ""  # dpkg source package / apk origin / rpm source rpm name
    source_version: Name = ""
    epoch: ShortStr = ""
    vendor: Name = ""
    purl: LongStr = ""
    path: LongStr = ""  # evidence: where it was found
    # CPE name (2.3 or 2.2 URI) as an SBOM states it; used only for software no distro or package
    # database tracks (see garrison.tvm.software).
    cpe: Annotated[str, StringConstraints(max_length=512, pattern=r"^(cpe:.*)?$")] = ""


class InventoryReport(Wire):
    """Payload of kind ``inventory``: a full snapshot, or a delta against ``base_generation``."""

    mode: Literal["snapshot", "delta"]
    generation: Id
    base_generation: int | None = None
    os: OsIdentity = Field(default_factory=OsIdentity)
    packages: list[SoftwarePackage] = Field(default_factory=list, max_length=MAX_PACKAGES)  # snapshot
    added: list[SoftwarePackage] = Field(default_factory=list, max_length=MAX_PACKAGES)  # delta
    removed: list[SoftwarePackage] = Field(default_factory=list, max_length=MAX_PACKAGES)  # delta


class PackageUse(Wire):
    manager: ShortStr
    name: Name
    last_seen: UtcDateTime


class RuntimeReport(Wire):
    """Payload of kind ``runtime``: which packages had running executables or mapped libraries."""

    packages: list[PackageUse] = Field(default_factory=list, max_length=MAX_PACKAGES)
