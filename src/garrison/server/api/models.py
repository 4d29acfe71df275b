"""Response models of ``/api``: what ``/api/openapi.json`` documents for a scripting user.

Field names are Python's, their JSON names Defender's camelCase (``alias_generator``); a name that
is not the camel case of the Python one says so with ``alias``. Every route names its model with
``responses=returns(Model)`` (``garrison.server.api.common.returns``): the model documents the answer,
and the handler still sends its own JSON — the large pages pre-serialised in one call
(``json_response``, the recommendation fragments) — instead of a second validation pass over
thousands of rows. ``tests/server/test_api_schemas.py`` keeps the two honest: every ``/api`` route has
a model in the document, and real answers of every list and get route validate against theirs,
with no field the model does not declare (``extra="forbid"``) unless the model says its rows are
open (``Open``: rows whose columns are data, like Defender's assessment exports and the timeline).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Open(BaseModel):
    """A row whose keys are data (Defender's PascalCase export columns, event columns): documented
    as an object with any properties."""
    model_config = ConfigDict(extra="allow")


class ODataList(ApiModel, Generic[T]):
    """An OData collection: ``value`` holds the page; ``@odata.count`` with ``$count=true``. With
    ``$select``, each entity carries only the chosen properties."""
    odata_context: str = Field(alias="@odata.context")
    odata_count: int | None = Field(default=None, alias="@odata.count")
    value: list[T]


# --- administration ------------------------------------------------------------------------

class Me(ApiModel):
    actor: str
    actor_type: str
    role: str
    tenant: str | None
    device_group_ids: list[int] | None


class User(ApiModel):
    id: int
    username: str
    email: str | None
    role: str
    device_group_ids: list[int] | None
    created_at: dt.datetime
    disabled: bool
    locked_until: dt.datetime | None


class Permission(ApiModel):
    """A row of the permission table (``garrison.core.permissions``)."""

    id: str
    label: str
    description: str
    area: str
    built_in_roles: list[str]


class Role(ApiModel):
    """A built-in role (``isBuiltIn``, no id) or one of the tenant's custom roles."""

    id: int | None
    name: str
    description: str
    permissions: list[str]
    is_built_in: bool
    created_by: str | None
    created_at: dt.datetime | None


class ApiKey(ApiModel):
    id: int
    name: str
    prefix: str
    role: str
    device_group_ids: list[int] | None
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


class NewApiKey(ApiKey):
    key: str = Field(description="the key, shown once")


class EnrollmentSecret(ApiModel):
    id: int
    prefix: str
    expires_at: dt.datetime | None
    max_uses: int | None
    uses: int
    created_at: dt.datetime
    revoked: bool


class NewEnrollmentSecret(EnrollmentSecret):
    secret: str = Field(description="the secret, shown once")
    install_command: str


class DeviceGroup(ApiModel):
    id: int
    name: str
    rank: int
    rules: dict[str, Any]
    description: str
    is_default: bool


class AuditEntry(ApiModel):
    id: int
    timestamp: dt.datetime
    actor: str
    actor_type: str
    action: str
    target: str
    method: str
    path: str
    status_code: int
    source_ip: str
    details: dict[str, Any] | None


# --- machines and machine actions ----------------------------------------------------------

class Machine(ApiModel):
    id: str
    computer_dns_name: str
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    os_platform: str
    os_version: str | None
    os_processor: str | None
    version: str | None
    os_build: int | str | None
    os_architecture: str | None
    os_distribution: str | None
    kernel_version: str | None
    last_ip_address: str | None
    last_external_ip_address: str | None
    ip_addresses: list[Any] | None
    health_status: str
    onboarding_status: str | None
    rbac_group_id: int | None
    rbac_group_name: str | None
    risk_score: str | None
    exposure_level: str | None
    exposure_score: float | None
    device_value: str
    machine_tags: list[str] | None
    agent_version: str | None
    is_agentless: bool


class LogonUser(ApiModel):
    id: str | None
    account_name: str | None
    logon_types: str
    terminal: str | None
    remote_host: str | None
    first_seen: str | dt.datetime | None


class MachineAction(ApiModel):
    id: str
    type: str
    status: str
    machine_id: str
    computer_dns_name: str
    requestor: str
    requestor_comment: str
    creation_date_time_utc: dt.datetime = Field(alias="creationDateTimeUtc")
    last_update_date_time_utc: dt.datetime = Field(alias="lastUpdateDateTimeUtc")
    params: dict[str, Any] | None
    result: dict[str, Any] | None


class MachineReference(ApiModel):
    """A device as a sub-resource lists it (Defender's machine references)."""
    id: str
    computer_dns_name: str
    os_platform: str
    os_version: str | None
    rbac_group_id: int | None
    rbac_group_name: str | None
    exposure_level: str | None
    exposure_score: float | None
    device_value: str


class InstalledSoftware(ApiModel):
    """Where a software version was found on a device, and whether it runs."""
    software_id: str
    product_name: str
    product_version: str
    evidence_path: str | None
    first_seen: dt.datetime | None
    last_used: dt.datetime | None
    in_use: bool


class MachineWithSoftware(MachineReference):
    """A device exposed to a vulnerability or having a software: the versions found on it."""
    software: list[InstalledSoftware] = Field(default_factory=list)
    in_use: bool = False
    last_used: dt.datetime | None = None


class RemediationTarget(MachineReference):
    status: str = Field(description="Exposed or Fixed")
    added_on: dt.datetime | None
    fixed_on: dt.datetime | None


# --- vulnerabilities and software ----------------------------------------------------------

class Vulnerability(ApiModel):
    """Defender's Vulnerability, with EPSS, CISA KEV, CWE and the sources of the record. ``threatScore``,
    ``threatReason`` and ``fixAvailable`` only in a recommendation's vulnerabilities (and a timeline
    event's), which are ranked by them."""
    id: str
    name: str
    description: str | None
    severity: str | None
    severity_source: str | None
    cvss_v3: float | None = Field(alias="cvssV3")
    cvss_vector: str | None
    cvss_v4: float | None = Field(alias="cvssV4")
    cvss_v4_vector: str | None = Field(alias="cvssV4Vector")
    cwes: list[str]
    exposed_machines: int
    published_on: dt.datetime | None
    updated_on: dt.datetime | None
    public_exploit: bool | None
    exploit_verified: bool | None
    exploit_in_kit: bool | None
    exploit_types: list[str]
    exploit_uris: list[str]
    epss: float | None
    epss_percentile: float | None
    kev: bool | None
    kev_date_added: dt.datetime | dt.date | None
    kev_due_date: dt.datetime | dt.date | None
    kev_ransomware: str | None
    references: list[Any]
    sources: list[Any]
    threat_score: float | None = None
    threat_reason: str | None = None
    fix_available: bool | None = None


class FindingSoftware(ApiModel):
    software_id: str
    product_name: str
    product_version: str
    fixed_version: str | None
    advisory_ids: list[str]
    status: str | None
    first_seen: dt.datetime | None
    last_used: dt.datetime | None
    in_use: bool


class MachineVulnerability(Vulnerability):
    """A vulnerability of one machine: the software versions on it that carry it."""
    software: list[FindingSoftware] = Field(default_factory=list)
    in_use: bool = False
    first_seen: dt.datetime | None = None


class MachineSoftwareVulnerability(ApiModel):
    """Defender's "vulnerabilities by machine and software": one row per machine, CVE and version."""
    id: str
    cve_id: str
    machine_id: str
    fixing_kb_id: str | None = Field(alias="fixingKbId", description="the fixed version")
    product_name: str
    product_vendor: str
    product_version: str
    severity: str | None
    first_seen: dt.datetime | None
    advisory_ids: list[str]
    status: str | None
    in_use: bool
    last_used: dt.datetime | None


class Software(ApiModel):
    id: str
    name: str
    vendor: str
    weaknesses: int
    public_exploit: bool
    active_alert: bool
    exposed_machines: int
    impact_score: float
    installed_machines: int
    in_use_machines: int
    in_use: bool


class Evidence(ApiModel):
    """Where and how a software version was found on a device."""
    path: str | None
    package_manager: str | None
    package_name: str | None
    source_package: str | None
    source_version: str | None
    architecture: str | None
    ecosystem: str | None
    purl: str | None


class MachineSoftware(ApiModel):
    """One installed version on a machine, with its weaknesses there and its evidence."""
    id: str
    name: str
    vendor: str
    version: str
    weaknesses: int
    public_exploit: bool
    active_alert: bool
    evidence: Evidence
    first_seen: dt.datetime | None
    last_used: dt.datetime | None
    in_use: bool


class VersionDistribution(ApiModel):
    version: str
    installations: int
    vulnerabilities: int
    in_use_machines: int


class FeedStatus(Open):
    """One knowledge-base feed: name, last success, error, records held…"""


class ImportResult(Open):
    """What an import stored (device, counts, skipped records)."""


# --- exposure and configuration ----------------------------------------------------------------

class ExposureScore(ApiModel):
    odata_context: str | None = Field(default=None, alias="@odata.context")
    time: dt.datetime | None
    score: float
    rbac_group_name: str | None
    rbac_group_id: int | None
    devices: int
    exposure_levels: dict[str, Any]


class ExposureScorePoint(ApiModel):
    date: dt.date
    score: float
    devices: int
    rbac_group_id: int | None
    configuration_score: float | None


class ConfigurationScore(Open):
    """Secure Score for Devices: score, per-category points."""


class RefreshStats(Open):
    """What a recompute did (devices, recommendations, seconds…)."""


class DeviceExposure(Open):
    """A device's exposure score and the vulnerabilities and misconfigurations behind it."""


class VulnerabilityAlert(ApiModel):
    id: int
    machine_id: str
    vulnerability_id: str
    alert_id: str | None
    title: str
    active: bool
    created_on: dt.datetime
    resolved_on: dt.datetime | None


class AssessmentRow(Open):
    """Defender's export-assessment columns (DeviceId, ConfigurationId, IsCompliant…)."""


class ExportPage(ODataList[AssessmentRow]):
    """One page of an export assessment; ``@odata.nextLink`` names the next page."""
    odata_next_link: str | None = Field(default=None, alias="@odata.nextLink")


# --- recommendations, exceptions, remediation ------------------------------------------------

class Recommendation(ApiModel):
    id: str
    product_name: str | None
    recommendation_name: str
    weaknesses: int
    vendor: str | None
    recommended_version: str | None
    recommended_versions: dict[str, Any] | list[Any] | None
    recommended_program: str | None
    recommended_vendor: str | None
    recommendation_category: str
    sub_category: str | None
    severity_score: float
    public_exploit: bool
    exploit_verified: bool
    exploit_in_kit: bool
    known_exploited: bool
    active_alert: bool
    associated_threats: list[Any]
    remediation_type: str
    config_score_impact: float
    non_productivity_impacted_assets: int
    exposed_machines_trend: str | None
    related_component: str | None
    tags: list[str]
    zero_day: bool
    end_of_support: Any
    priority_explanation: str | None
    first_seen: dt.datetime | None
    last_updated: dt.datetime | None
    status: str
    exposure_impact: float
    exposure_impact_after_exceptions: float
    total_machine_count: int
    exposed_machines_count: int
    exposed_machines_after_exceptions: int
    in_use_machines_count: int
    priority_score: float


class ExposedMachinesPoint(ApiModel):
    date: dt.date
    exposed_machines: int


class ExceptionGroup(ApiModel):
    rbac_group_id: int
    rbac_group_name: str
    status: str
    cancelled_by: str | None
    cancelled_on: dt.datetime | None


class RecommendationException(ApiModel):
    id: int
    recommendation_id: str
    recommendation_name: str | None
    justification: str
    risk_reduced: bool
    justification_context: str
    scope: str
    status: str
    created_by: str
    created_on: dt.datetime
    expires_on: dt.datetime
    status_last_modified_on: dt.datetime | None
    status_last_modified_by: str | None
    device_groups: list[ExceptionGroup]


class RemediationTaskRef(ApiModel):
    id: str
    status: str
    priority: str
    due_on: dt.datetime | None


class RecommendationDetail(Recommendation):
    explanation: dict[str, Any] | list[Any] | str | None
    software_ids: list[str]
    remediation: dict[str, Any] | str | None
    exposed_machines_history: list[ExposedMachinesPoint]
    exceptions: list[RecommendationException]
    remediation_tasks: list[RemediationTaskRef]


class RecommendationSoftware(Open):
    """A software product of a recommendation's remediation unit (Software fields plus the unit's)."""


class Ticket(ApiModel):
    id: int
    activity_id: str
    connector: str
    connection_id: int | None
    external_id: str | None
    url: str | None
    state: str
    closed: bool
    created_on: dt.datetime
    last_checked_on: dt.datetime | None
    last_error: str | None
    attempts: int


class RemediationTask(ApiModel):
    """Defender's remediation activity (``/remediationTasks``)."""
    id: str
    title: str
    description: str
    category: str
    type: str
    recommendation_id: str
    name_id: str
    product_id: str | None
    vendor_id: str | None
    scid: str | None
    related_component: str | None
    recommended_version: str | None
    recommended_program: str | None
    recommended_vendor: str | None
    priority: str
    due_on: dt.datetime | None
    overdue: bool
    requester_notes: str
    requester_id: str
    requester_email: str | None
    rbac_group_ids: list[int] | None
    rbac_group_names: list[str]
    created_on: dt.datetime
    status: str
    status_last_modified_on: dt.datetime | None
    completion_method: str | None
    completed_by: str | None
    completer_id: str | None
    completer_email: str | None
    completed_on: dt.datetime | None
    target_devices: int | None
    fixed_devices: int | None
    target_devices_count: int
    fixed_devices_count: int
    productivity_impact_remediation_type: str | None
    tickets: list[Ticket]


# --- event timeline (vulnerability management) --------------------------------------------------

class TimelineEvent(ApiModel):
    id: int
    date: dt.datetime
    event_type: str
    title: str
    related_component: str | None
    vulnerability_id: str | None
    software_id: str | None
    product_id: str | None
    scid: str | None
    recommendation_id: str | None
    severity: str | None
    originally_impacted_devices: int
    originally_impacted_percentage: float | None
    currently_impacted_devices: int | None
    types: list[str]
    score_impact: float | None
    score_trend: str | None
    details: dict[str, Any] | None


class TimelineEventDetail(TimelineEvent):
    devices: list[MachineReference]
    vulnerability: Vulnerability | None = None


class TimelineSummary(ApiModel):
    new_vulnerabilities_last30_days: int = Field(alias="newVulnerabilitiesLast30Days")
    exploitable_vulnerabilities_last30_days: int = Field(alias="exploitableVulnerabilitiesLast30Days")


class TimelineEventList(ODataList[TimelineEvent]):
    summary: TimelineSummary


# --- notifications and integrations -------------------------------------------------------------

class NotificationRule(ApiModel):
    id: int
    name: str
    description: str
    enabled: bool
    events: list[str]
    minimum_severity: str
    rbac_group_ids: list[int] | None
    rbac_group_names: list[str] | None
    email_recipients: list[str]
    webhook_connection_ids: list[int]
    include_organization_name: bool
    created_by: str
    created_on: dt.datetime


class NotificationDelivery(ApiModel):
    id: int
    rule_id: int | None
    event_id: int | None
    channel: str
    target: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    created_on: dt.datetime
    sent_on: dt.datetime | None


class IntegrationConnection(ApiModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secrets_set: list[str]
    enabled: bool
    ticketing: bool
    notifications: bool
    created_by: str
    created_on: dt.datetime


class ConnectionCheck(Open):
    """The outcome of a test delivery or ticket through a connection."""


# --- detection and hunting ----------------------------------------------------------------------

class Alert(ApiModel):
    """Defender's Alert; ``evidence`` with ``$expand=evidence`` (and on one alert)."""
    id: str
    incident_id: int | None
    title: str
    description: str
    severity: str
    status: str
    classification: str | None
    determination: str | None
    category: str
    detection_source: str
    detector_id: str
    mitre_techniques: list[str]
    assigned_to: str | None
    alert_creation_time: dt.datetime
    first_event_time: dt.datetime
    last_event_time: dt.datetime
    last_update_time: dt.datetime
    resolved_time: dt.datetime | None
    machine_id: str
    computer_dns_name: str | None
    rbac_group_name: str | None
    event_count: int
    comments: list[Any]
    detection_rule: dict[str, Any]
    detector_author: str | None
    evidence: list[Any] | None = None


class IncidentAlert(Alert):
    """An alert of an incident, and why it was linked to it."""
    link_reason: str


class Incident(ApiModel):
    """Defender's Incident: alerts correlated on one device; ``alerts`` on one incident."""
    incident_id: int
    incident_name: str
    status: str
    severity: str
    assigned_to: str | None
    classification: str | None
    determination: str | None
    tags: list[str]
    comments: list[Any]
    created_time: dt.datetime
    last_update_time: dt.datetime
    first_activity: dt.datetime
    last_activity: dt.datetime
    machine_id: str | None
    computer_dns_name: str | None
    alerts: list[IncidentAlert] | None = None


class Indicator(ApiModel):
    """Defender's Indicator (TiIndicator)."""
    id: str
    indicator_value: str
    indicator_type: str
    action: str
    title: str
    description: str
    severity: str
    recommended_actions: str
    expiration_time: dt.datetime | None
    generate_alert: bool
    rbac_group_ids: list[int]
    created_by: str
    creation_time_date_time_utc: dt.datetime = Field(alias="creationTimeDateTimeUtc")
    last_update_time: dt.datetime
    source_type: str


class HuntingResult(BaseModel):
    """Defender's advanced-hunting answer: the columns, the rows, whether the row cap cut them."""
    model_config = ConfigDict(extra="forbid")
    Schema: list[dict[str, Any]]
    Results: list[dict[str, Any]]
    Truncated: bool
    Stats: dict[str, Any]


# --- settings and behaviour telemetry -------------------------------------------------------------

class SensorExclusions(Open):
    """The tenant's or a device group's sensor exclusions."""


class TimelineRow(Open):
    """One behaviour event: ``Table`` and Defender's advanced-hunting columns of that table."""


class SensorHealth(Open):
    """Sensor state, events/s and drops over 5 minutes, last event time, healthStatus."""


class EventDetail(Open):
    """One event whole (``Table`` and its columns) and ``processTree``."""
