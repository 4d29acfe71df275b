"""Wire contract of behaviour telemetry (``POST /agent/v1/events``), shaped like Defender's hunting tables.

The tables, their columns and their types are those of the advanced-hunting schema
(``SCHEMA``, from the MDE docs via pySigma's generated table list); the event store creates exactly
these columns plus ``TenantId``. The agent fills the columns it knows; the server owns the identity
columns (``DeviceId``, ``DeviceName``, ``ReportId``, ``TenantId``): an agent cannot send them.

Everything an agent sends is untrusted: every string and list is bounded, unknown columns are refused.
See /work/notes/events-contract.md (and docs/architecture.md, "Behaviour telemetry") for the exchange.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, NotRequired, Required, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
    field_validator,
)
from typing_extensions import TypedDict

# Table -> "Column:type …" in the schema's order. MDE types: string, long, int, bool/boolean, datetime.
SCHEMA: dict[str, str] = {
    "DeviceProcessEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string FileName:string "
        "FolderPath:string SHA1:string SHA256:string MD5:string FileSize:long "
        "ProcessVersionInfoCompanyName:string ProcessVersionInfoProductName:string "
        "ProcessVersionInfoProductVersion:string ProcessVersionInfoInternalFileName:string "
        "ProcessVersionInfoOriginalFileName:string ProcessVersionInfoFileDescription:string "
        "ProcessId:long ProcessCommandLine:string ProcessIntegrityLevel:string "
        "ProcessTokenElevation:string ProcessCreationTime:datetime AccountDomain:string "
        "AccountName:string AccountSid:string AccountUpn:string AccountObjectId:string LogonId:long "
        "InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string "
        "InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string "
        "InitiatingProcessAccountObjectId:string InitiatingProcessLogonId:long "
        "InitiatingProcessIntegrityLevel:string InitiatingProcessTokenElevation:string "
        "InitiatingProcessSHA1:string InitiatingProcessSHA256:string InitiatingProcessMD5:string "
        "InitiatingProcessFileName:string InitiatingProcessFileSize:long "
        "InitiatingProcessVersionInfoCompanyName:string InitiatingProcessVersionInfoProductName:string "
        "InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessFolderPath:string InitiatingProcessParentId:long "
        "InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime "
        "InitiatingProcessSignerType:string InitiatingProcessSignatureStatus:string ReportId:long "
        "AppGuardContainerId:string AdditionalFields:string InitiatingProcessSessionId:long "
        "IsInitiatingProcessRemoteSession:bool InitiatingProcessRemoteSessionDeviceName:string "
        "InitiatingProcessRemoteSessionIP:string CreatedProcessSessionId:long IsProcessRemoteSession:bool "
        "ProcessRemoteSessionDeviceName:string ProcessRemoteSessionIP:string "
    ),
    "DeviceNetworkEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string RemoteIP:string "
        "RemotePort:int RemoteUrl:string LocalIP:string LocalPort:int Protocol:string LocalIPType:string "
        "RemoteIPType:string InitiatingProcessSHA1:string InitiatingProcessSHA256:string "
        "InitiatingProcessMD5:string InitiatingProcessFileName:string InitiatingProcessFileSize:long "
        "InitiatingProcessVersionInfoCompanyName:string InitiatingProcessVersionInfoProductName:string "
        "InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessFolderPath:string InitiatingProcessParentFileName:string "
        "InitiatingProcessParentId:long InitiatingProcessParentCreationTime:datetime "
        "InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string "
        "InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string "
        "InitiatingProcessAccountObjectId:string InitiatingProcessIntegrityLevel:string "
        "InitiatingProcessTokenElevation:string ReportId:long AppGuardContainerId:string "
        "AdditionalFields:string InitiatingProcessSessionId:long IsInitiatingProcessRemoteSession:bool "
        "InitiatingProcessRemoteSessionDeviceName:string InitiatingProcessRemoteSessionIP:string "
    ),
    "DeviceFileEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string FileName:string "
        "FolderPath:string SHA1:string SHA256:string MD5:string FileOriginUrl:string "
        "FileOriginReferrerUrl:string FileOriginIP:string PreviousFolderPath:string "
        "PreviousFileName:string FileSize:long InitiatingProcessAccountDomain:string "
        "InitiatingProcessAccountName:string InitiatingProcessAccountSid:string "
        "InitiatingProcessAccountUpn:string InitiatingProcessAccountObjectId:string "
        "InitiatingProcessMD5:string InitiatingProcessSHA1:string InitiatingProcessSHA256:string "
        "InitiatingProcessFolderPath:string InitiatingProcessFileName:string "
        "InitiatingProcessFileSize:long InitiatingProcessVersionInfoCompanyName:string "
        "InitiatingProcessVersionInfoProductName:string InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessIntegrityLevel:string InitiatingProcessTokenElevation:string "
        "InitiatingProcessParentId:long InitiatingProcessParentFileName:string "
        "InitiatingProcessParentCreationTime:datetime RequestProtocol:string RequestSourceIP:string "
        "RequestSourcePort:int RequestAccountName:string RequestAccountDomain:string "
        "RequestAccountSid:string ShareName:string SensitivityLabel:string SensitivitySubLabel:string "
        "IsAzureInfoProtectionApplied:boolean ReportId:long AppGuardContainerId:string "
        "AdditionalFields:string InitiatingProcessSessionId:long IsInitiatingProcessRemoteSession:bool "
        "InitiatingProcessRemoteSessionDeviceName:string InitiatingProcessRemoteSessionIP:string "
    ),
    "DeviceLogonEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string LogonType:string "
        "AccountDomain:string AccountName:string AccountSid:string Protocol:string FailureReason:string "
        "IsLocalAdmin:boolean LogonId:long RemoteDeviceName:string RemoteIP:string RemoteIPType:string "
        "RemotePort:int InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string "
        "InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string "
        "InitiatingProcessAccountObjectId:string InitiatingProcessIntegrityLevel:string "
        "InitiatingProcessTokenElevation:string InitiatingProcessSHA1:string "
        "InitiatingProcessSHA256:string InitiatingProcessMD5:string InitiatingProcessFileName:string "
        "InitiatingProcessFileSize:long InitiatingProcessVersionInfoCompanyName:string "
        "InitiatingProcessVersionInfoProductName:string InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessFolderPath:string InitiatingProcessParentId:long "
        "InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime "
        "ReportId:long AppGuardContainerId:string AdditionalFields:string InitiatingProcessSessionId:long "
        "IsInitiatingProcessRemoteSession:bool InitiatingProcessRemoteSessionDeviceName:string "
        "InitiatingProcessRemoteSessionIP:string "
    ),
    "DeviceRegistryEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string RegistryKey:string "
        "RegistryValueType:string RegistryValueName:string RegistryValueData:string "
        "PreviousRegistryKey:string PreviousRegistryValueName:string PreviousRegistryValueData:string "
        "InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string "
        "InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string "
        "InitiatingProcessAccountObjectId:string InitiatingProcessSHA1:string "
        "InitiatingProcessSHA256:string InitiatingProcessMD5:string InitiatingProcessFileName:string "
        "InitiatingProcessFileSize:long InitiatingProcessVersionInfoCompanyName:string "
        "InitiatingProcessVersionInfoProductName:string InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessFolderPath:string InitiatingProcessParentId:long "
        "InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime "
        "InitiatingProcessIntegrityLevel:string InitiatingProcessTokenElevation:string ReportId:long "
        "AppGuardContainerId:string InitiatingProcessSessionId:long IsInitiatingProcessRemoteSession:bool "
        "InitiatingProcessRemoteSessionDeviceName:string InitiatingProcessRemoteSessionIP:string "
    ),
    "DeviceImageLoadEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string FileName:string "
        "FolderPath:string SHA1:string SHA256:string MD5:string FileSize:long "
        "InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string "
        "InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string "
        "InitiatingProcessAccountObjectId:string InitiatingProcessIntegrityLevel:string "
        "InitiatingProcessTokenElevation:string InitiatingProcessSHA1:string "
        "InitiatingProcessSHA256:string InitiatingProcessMD5:string InitiatingProcessFileName:string "
        "InitiatingProcessFileSize:long InitiatingProcessVersionInfoCompanyName:string "
        "InitiatingProcessVersionInfoProductName:string InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long "
        "InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime "
        "InitiatingProcessFolderPath:string InitiatingProcessParentId:long "
        "InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime "
        "ReportId:long AppGuardContainerId:string InitiatingProcessSessionId:long "
        "IsInitiatingProcessRemoteSession:bool InitiatingProcessRemoteSessionDeviceName:string "
        "InitiatingProcessRemoteSessionIP:string "
    ),
    "DeviceEvents": (
        "Timestamp:datetime DeviceId:string DeviceName:string ActionType:string FileName:string "
        "FolderPath:string SHA1:string SHA256:string MD5:string FileSize:long AccountDomain:string "
        "AccountName:string AccountSid:string RemoteUrl:string RemoteDeviceName:string ProcessId:long "
        "ProcessCommandLine:string ProcessCreationTime:datetime ProcessTokenElevation:string LogonId:long "
        "RegistryKey:string RegistryValueName:string RegistryValueData:string RemoteIP:string "
        "RemotePort:int LocalIP:string LocalPort:int FileOriginUrl:string FileOriginIP:string "
        "InitiatingProcessSHA1:string InitiatingProcessSHA256:string InitiatingProcessMD5:string "
        "InitiatingProcessFileName:string InitiatingProcessFileSize:long "
        "InitiatingProcessFolderPath:string InitiatingProcessId:long InitiatingProcessCommandLine:string "
        "InitiatingProcessCreationTime:datetime InitiatingProcessAccountDomain:string "
        "InitiatingProcessAccountName:string InitiatingProcessAccountSid:string "
        "InitiatingProcessAccountUpn:string InitiatingProcessAccountObjectId:string "
        "InitiatingProcessVersionInfoCompanyName:string InitiatingProcessVersionInfoProductName:string "
        "InitiatingProcessVersionInfoProductVersion:string "
        "InitiatingProcessVersionInfoInternalFileName:string "
        "InitiatingProcessVersionInfoOriginalFileName:string "
        "InitiatingProcessVersionInfoFileDescription:string InitiatingProcessParentId:long "
        "InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime "
        "InitiatingProcessLogonId:long ReportId:long AppGuardContainerId:string AdditionalFields:string "
        "InitiatingProcessSessionId:long IsInitiatingProcessRemoteSession:bool "
        "InitiatingProcessRemoteSessionDeviceName:string InitiatingProcessRemoteSessionIP:string "
        "CreatedProcessSessionId:long IsProcessRemoteSession:bool ProcessRemoteSessionDeviceName:string "
        "ProcessRemoteSessionIP:string "
    ),
    "DeviceInfo": (
        "Timestamp:datetime DeviceId:string DeviceName:string ClientVersion:string PublicIP:string "
        "OSArchitecture:string OSPlatform:string OSBuild:long IsAzureADJoined:boolean JoinType:string "
        "AadDeviceId:string LoggedOnUsers:string RegistryDeviceTag:string OSVersion:string "
        "MachineGroup:string ReportId:long OnboardingStatus:string AdditionalFields:string "
        "DeviceCategory:string DeviceType:string DeviceSubtype:string Model:string Vendor:string "
        "OSDistribution:string OSVersionInfo:string MergedDeviceIds:string MergedToDeviceId:string "
        "IsInternetFacing:boolean SensorHealthState:string IsExcluded:bool ExclusionReason:string "
        "ExposureLevel:string AssetValue:string DeviceManualTags:string DeviceDynamicTags:string "
        "ConnectivityType:string HostDeviceId:string AzureResourceId:string AwsResourceName:string "
        "GcpFullResourceName:string "
    ),
    "DeviceNetworkInfo": (
        "Timestamp:datetime DeviceId:string DeviceName:string NetworkAdapterName:string MacAddress:string "
        "NetworkAdapterType:string NetworkAdapterStatus:string TunnelType:string ConnectedNetworks:string "
        "DnsAddresses:string IPv4Dhcp:string IPv6Dhcp:string DefaultGateways:string IPAddresses:string "
        "ReportId:long NetworkAdapterVendor:string "
    ),
}

# Garrison extension: Defender's registry and image-load tables have no AdditionalFields column, but an
# imported Windows event keeps every original field there (the hunting schema gains one trailing column).
_EXTENSIONS = {"DeviceRegistryEvents": "AdditionalFields:string", "DeviceImageLoadEvents": "AdditionalFields:string"}

# Filled by the server, never by an agent.
SERVER_COLUMNS = frozenset({"DeviceId", "DeviceName", "ReportId"})
# The hunting tables (retention: 30 days by default) and the snapshot tables.
EVENT_TABLES = ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents", "DeviceLogonEvents",
                "DeviceRegistryEvents", "DeviceImageLoadEvents", "DeviceEvents")
SNAPSHOT_TABLES = ("DeviceInfo", "DeviceNetworkInfo")

MAX_EVENTS_PER_BATCH = 10_000
MAX_STRING = 4096  # most columns
MAX_LONG_STRING = 32_768  # command lines, AdditionalFields, registry data, LoggedOnUsers
_LONG_COLUMNS = frozenset({"ProcessCommandLine", "InitiatingProcessCommandLine", "AdditionalFields",
                           "RegistryValueData", "PreviousRegistryValueData", "LoggedOnUsers", "IPAddresses",
                           "ConnectedNetworks"})
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)


def columns(table: str) -> list[tuple[str, str]]:
    """``[(column, mde_type)]`` of one table, in the schema's order (types normalised: bool, not boolean)."""
    spec = SCHEMA[table] + (" " + _EXTENSIONS[table] if table in _EXTENSIONS else "")
    out = []
    for item in spec.split():
        name, _, typ = item.partition(":")
        out.append((name, "bool" if typ == "boolean" else typ))
    return out


TABLES = tuple(SCHEMA)


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableEvent(Wire):
    """Base of the per-table event models: ``Table`` names the table, the rest are its MDE columns."""

    Table: str


def _field_type(column: str, typ: str) -> Any:
    if typ == "string":
        if column == "AdditionalFields":
            return (dict[Annotated[str, StringConstraints(max_length=256)], Any] |
                    Annotated[str, StringConstraints(max_length=MAX_LONG_STRING)] | None)
        limit = MAX_LONG_STRING if column in _LONG_COLUMNS else MAX_STRING
        return Annotated[str, StringConstraints(max_length=limit)] | None
    if typ == "long":
        return Annotated[int, Field(ge=INT64[0], le=INT64[1])] | None
    if typ == "int":
        return Annotated[int, Field(ge=INT32[0], le=INT32[1])] | None
    if typ == "bool":
        return bool | None
    if typ == "datetime":
        return dt.datetime | None
    raise ValueError(f"unknown MDE type {typ}")


def _model(table: str) -> type[TableEvent]:
    fields: dict[str, Any] = {"Table": (Literal[table], ...)}
    for column, typ in columns(table):
        if column in SERVER_COLUMNS:
            continue
        required = column == "Timestamp" or (column == "ActionType" and table in EVENT_TABLES)
        ftype = _field_type(column, typ)
        fields[column] = (ftype, ...) if required else (ftype, None)
    if "ActionType" in fields:
        fields["ActionType"] = (Annotated[str, StringConstraints(min_length=1, max_length=128)], ...)
    fields["Timestamp"] = (dt.datetime, ...)
    return create_model(table, __base__=TableEvent, **fields)


# One model per table: EVENT_MODELS["DeviceProcessEvents"](Table="DeviceProcessEvents", Timestamp=…, …).
EVENT_MODELS: dict[str, type[TableEvent]] = {t: _model(t) for t in TABLES}
_EVENT_UNION: Any = Union[tuple(EVENT_MODELS.values())]  # noqa: UP007 (a union built at run time)
_ANY_EVENT: TypeAdapter[list[TableEvent]] = TypeAdapter(list[Annotated[_EVENT_UNION, Field(discriminator="Table")]])


class EventBatch(Wire):
    """``POST /agent/v1/events``: one spooled telemetry batch. Idempotent on (device, seq)."""

    seq: Annotated[int, Field(ge=1, le=INT64[1])]
    # Optional echo of the sending device; when present it must be the authenticated one.
    device_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    sent_at: dt.datetime | None = None
    events: list[TableEvent] = Field(max_length=MAX_EVENTS_PER_BATCH)
    # What the sensor dropped before this batch (rate cap, full queue), by reason; for device health.
    drops: dict[Annotated[str, StringConstraints(max_length=64)], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=32)

    @field_validator("events", mode="before")
    @classmethod
    def _typed(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) <= MAX_EVENTS_PER_BATCH:
            return _ANY_EVENT.validate_python(value)
        return value


# --- the server's fast path: the same contract validated into plain dicts ------------------------
# (pydantic-core builds the rows without model instances: 2–3× cheaper per event than EventBatch)

def _row_type(table: str) -> Any:
    fields: dict[str, Any] = {"Table": Required[Literal[table]]}
    for name, info in EVENT_MODELS[table].model_fields.items():
        if name == "Table":
            continue
        ann = info.annotation if not info.metadata else Annotated[(info.annotation, *info.metadata)]
        fields[name] = Required[ann] if info.is_required() else ann
    row = TypedDict(table + "Row", fields, total=False)  # type: ignore[misc]
    row.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return row


class _BatchRows(TypedDict):
    seq: Annotated[int, Field(ge=1, le=INT64[1])]
    device_id: NotRequired[Annotated[str, StringConstraints(max_length=64)] | None]
    sent_at: NotRequired[dt.datetime | None]
    events: Annotated[list[Annotated[Union[tuple(_row_type(t) for t in TABLES)],  # type: ignore[valid-type]  # noqa: UP007
                                     Field(discriminator="Table")]], Field(max_length=MAX_EVENTS_PER_BATCH)]
    drops: NotRequired[Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Annotated[int, Field(ge=0)]],
                                 Field(max_length=32)]]


_BatchRows.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
BATCH_ROWS: TypeAdapter[Any] = TypeAdapter(_BatchRows)


def parse_batch_rows(raw: bytes) -> dict[str, Any]:
    """An EventBatch body validated exactly as :class:`EventBatch` does, as dicts: ``{"seq", "events": [row…]}``
    with each row ``{"Table": …, column: value}`` holding only the columns sent. Raises ValidationError."""
    return dict(BATCH_ROWS.validate_json(raw))


class EventAck(Wire):
    seq: int
    # accepted: durable in the event store; duplicate: this (device, seq) was stored before;
    # discarded: the device is offboarded.
    status: Literal["accepted", "duplicate", "discarded"]
    stored: int = 0  # events stored by this request (0 for a duplicate)
