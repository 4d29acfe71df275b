"""Alerts: what a rule match becomes (Defender's Alert entity), stored in the state store.

:class:`AlertSink` is the detection service's sink: matches of one write are grouped by tenant and
written in one transaction per tenant. A repeat of the same rule on the same device and entity (the
process image and command line, the file, the registry key, the remote address…) within
:data:`DEDUPE_WINDOW` of the alert's last event, while the alert is not resolved, updates that alert
(``eventCount``, ``lastEventTime``, up to :data:`MAX_EVIDENCE` evidence entities) instead of creating
another — an alert storm of one noisy rule stays one alert.

The rule's author (Detection Rule License 1.1: shown wherever a rule's match is shown) and title,
references and path ride in every alert (``detectionRule``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.core.errors import Invalid
from garrison.edr.detection.engine import Match
from garrison.store.base import new_hex_id, utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.detection import Alert, Incident

log = logging.getLogger("garrison.detection")
DEDUPE_WINDOW = dt.timedelta(hours=24)
INCIDENT_WINDOW = dt.timedelta(hours=24)  # Defender's "proximate time" correlation: the same device
INCIDENT_STATUSES = ("Active", "Resolved")
LINK_REASON = "Proximate time: same device"
MAX_EVIDENCE = 20
DETECTION_SOURCE = "CustomDetection"  # Defender's source for rule-based detections (here: Sigma rules)

SEVERITY = {"informational": "Informational", "low": "Low", "medium": "Medium", "high": "High", "critical": "High"}
SEVERITIES = ("UnSpecified", "Informational", "Low", "Medium", "High")
STATUSES = ("New", "InProgress", "Resolved")
CLASSIFICATIONS = ("TruePositive", "InformationalExpectedActivity", "FalsePositive")
DETERMINATIONS = {  # Defender's determinations by classification (None: not classified yet)
    "TruePositive": ("MultiStagedAttack", "MaliciousUserActivity", "CompromisedAccount", "Malware", "Phishing",
                     "UnwantedSoftware", "Other"),
    "InformationalExpectedActivity": ("SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity", "Other"),
    "FalsePositive": ("NotMalicious", "NotEnoughDataToValidate", "Other"),
}
# ATT&CK tactic tag -> Defender alert category (the first tactic tag of the rule wins)
CATEGORIES = {
    "initial-access": "InitialAccess", "execution": "Execution", "persistence": "Persistence",
    "privilege-escalation": "PrivilegeEscalation", "defense-evasion": "DefenseEvasion",
    "credential-access": "CredentialAccess", "discovery": "Discovery", "lateral-movement": "LateralMovement",
    "collection": "Collection", "command-and-control": "CommandAndControl", "exfiltration": "Exfiltration",
    "impact": "SuspiciousActivity",
}
DEFAULT_CATEGORY = "SuspiciousActivity"


def category(tactics: Sequence[str]) -> str:
    for t in tactics:
        found = CATEGORIES.get(t.replace("_", "-"))
        if found:
            return found
    return DEFAULT_CATEGORY


# --- evidence ------------------------------------------------------------------------------------

def _process(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    p = prefix
    return {"entityType": "Process", "fileName": row.get(f"{p}FileName"), "filePath": row.get(f"{p}FolderPath"),
            "processId": row.get(f"{p}ProcessId") if p else row.get("ProcessId"),
            "processCommandLine": row.get(f"{p}CommandLine") if p else row.get("ProcessCommandLine"),
            "sha1": row.get(f"{p}SHA1"), "sha256": row.get(f"{p}SHA256"),
            "accountName": row.get(f"{p}AccountName"), "domainName": row.get(f"{p}AccountDomain")}


def evidence(table: str, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Defender's evidence entities of one matched event (empty values left out)."""
    initiating = _process(row, "InitiatingProcess")
    initiating["processId"] = row.get("InitiatingProcessId")
    initiating["processCommandLine"] = row.get("InitiatingProcessCommandLine")
    out: list[dict[str, Any]] = []
    if table == "DeviceProcessEvents":
        proc = _process(row)
        proc.update(parentProcessId=row.get("InitiatingProcessId"),
                    parentProcessFileName=row.get("InitiatingProcessFileName"),
                    parentProcessFilePath=row.get("InitiatingProcessFolderPath"),
                    processCreationTime=row.get("ProcessCreationTime"))
        out.append(proc)
        if row.get("AccountName"):
            out.append({"entityType": "User", "accountName": row.get("AccountName"),
                        "domainName": row.get("AccountDomain"), "userSid": row.get("AccountSid")})
    elif table in ("DeviceFileEvents", "DeviceImageLoadEvents"):
        out += [{"entityType": "File", "fileName": row.get("FileName"), "filePath": row.get("FolderPath"),
                 "sha1": row.get("SHA1"), "sha256": row.get("SHA256")}, initiating]
    elif table == "DeviceRegistryEvents":
        key = row.get("RegistryKey") or ""
        out += [{"entityType": "Registry", "registryKey": key, "registryHive": key.split("\\", 1)[0] or None,
                 "registryValueName": row.get("RegistryValueName"), "registryValue": row.get("RegistryValueData"),
                 "registryValueType": row.get("RegistryValueType")}, initiating]
    elif table in ("DeviceNetworkEvents", "DeviceLogonEvents"):
        if row.get("RemoteIP"):
            out.append({"entityType": "Ip", "ipAddress": row.get("RemoteIP"), "port": row.get("RemotePort")})
        if row.get("RemoteUrl"):
            out.append({"entityType": "Url", "url": row.get("RemoteUrl")})
        if table == "DeviceLogonEvents" and row.get("AccountName"):
            out.append({"entityType": "User", "accountName": row.get("AccountName"),
                        "domainName": row.get("AccountDomain"), "userSid": row.get("AccountSid")})
        out.append(initiating)
    else:  # DeviceEvents: the target (a file, pipe, process or DNS name) and the initiating process
        if row.get("RemoteUrl"):
            out.append({"entityType": "Url", "url": row.get("RemoteUrl")})
        if row.get("FileName") or row.get("FolderPath"):
            out.append({"entityType": "File", "fileName": row.get("FileName"), "filePath": row.get("FolderPath")})
        out.append(initiating)
    stamp = {"evidenceCreationTime": row.get("Timestamp"), "detectionStatus": "Detected"}
    return [{k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in {**stamp, **e}.items()
             if v not in (None, "")} for e in out]


_ENTITY_COLUMNS = ("FolderPath", "ProcessCommandLine", "RegistryKey", "RegistryValueName", "RemoteIP", "RemoteUrl",
                   "FileName", "AccountName", "InitiatingProcessFolderPath")


def dedupe_key(match: Match) -> str:
    row = match.row
    parts = [match.rule.id, str(row.get("DeviceId")), match.table,
             *(str(row.get(c) or "").lower() for c in _ENTITY_COLUMNS)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _aware(t: Any) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        return utcnow()
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class AlertSink:
    """Writes the matches of one event-store write as alerts (one transaction per tenant)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.created = 0
        self.updated = 0

    def __call__(self, matches: Sequence[Match]) -> None:
        by_tenant: dict[int, list[Match]] = defaultdict(list)
        for m in matches:
            by_tenant[int(m.row["TenantId"])].append(m)
        for tenant_id, found in by_tenant.items():
            try:
                with self.store.tenant(tenant_id) as s:
                    self._write(s, found)
            except Exception:  # never lose the other tenants' alerts; the events themselves are stored
                log.exception("writing %d alerts of tenant %s failed", len(found), tenant_id)

    def _write(self, s: Session, matches: Sequence[Match]) -> None:
        devices = set(s.scalars(select(Device.id).where(Device.id.in_({str(m.row["DeviceId"]) for m in matches}))))
        pending: dict[str, Alert] = {}
        for m in matches:
            device_id = str(m.row["DeviceId"])
            if device_id not in devices:  # deleted since its events were sent
                continue
            key = dedupe_key(m)
            when = _aware(m.row.get("Timestamp"))
            alert = pending.get(key) or s.scalar(
                select(Alert).where(Alert.dedupe_key == key, Alert.status != "Resolved",
                                    Alert.last_event_time >= when - DEDUPE_WINDOW)
                .order_by(Alert.last_event_time.desc()).limit(1))
            if alert is None:
                alert = _new_alert(m, device_id, key, when)
                s.add(alert)
                correlate(s, alert)
                self.created += 1
            else:
                alert.event_count += 1
                alert.first_event_time = min(_aware(alert.first_event_time), when)
                alert.last_event_time = max(_aware(alert.last_event_time), when)
                alert.last_update_time = utcnow()
                if len(alert.evidence) < MAX_EVIDENCE:
                    alert.evidence = [*alert.evidence, *evidence(m.table, m.row)][:MAX_EVIDENCE]
                self.updated += 1
            pending[key] = alert


SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


def correlate(s: Session, alert: Alert) -> Incident:
    """Put a new alert into the active incident of its device within :data:`INCIDENT_WINDOW`, or a new one."""
    when = _aware(alert.last_event_time)
    incident = s.scalar(select(Incident).where(Incident.device_id == alert.device_id, Incident.status == "Active",
                                               Incident.last_activity >= when - INCIDENT_WINDOW)
                        .order_by(Incident.last_activity.desc()).limit(1))
    if incident is None:
        incident = Incident(name=f"{alert.title} on one endpoint"[:256], device_id=alert.device_id,
                            severity=alert.severity, first_activity=when, last_activity=when)
        s.add(incident)
        s.flush()
    else:
        categories = set(s.scalars(select(Alert.category).where(Alert.incident_id == incident.id))) | {alert.category}
        if len(categories) > 1:
            incident.name = f"Multi-stage incident involving {' & '.join(sorted(categories)[:3])} on one endpoint"[:256]
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
            incident.severity = alert.severity
        incident.first_activity = min(_aware(incident.first_activity), when)
        incident.last_activity = max(_aware(incident.last_activity), when)
        incident.last_update_time = utcnow()
    alert.incident_id = incident.id
    return incident


def _new_alert(m: Match, device_id: str, key: str, when: dt.datetime) -> Alert:
    rule = m.rule
    now = utcnow()
    return Alert(
        id="da" + new_hex_id(19), device_id=device_id, title=rule.title[:256], description=rule.description,
        severity=SEVERITY.get(rule.level, "Medium"), status="New", category=category(rule.tactics),
        detection_source=m.source, detector_id=rule.id[:64], mitre_techniques=rule.techniques,
        rule={"id": rule.id, "title": rule.title, "author": rule.author, "level": rule.level, "status": rule.status,
              "references": list(rule.references), "falsePositives": list(rule.falsepositives),
              "path": rule.path, **({"source": "SigmaHQ", "license": "DRL-1.1"} if rule.path else {})},
        evidence=evidence(m.table, m.row), dedupe_key=key, event_count=1, first_event_time=when,
        last_event_time=when, alert_creation_time=now, last_update_time=now,
        comments=[])


# --- reads and updates (API and console) ---------------------------------------------------------

def to_api(alert: Alert, device_name: str | None, group_name: str | None, expand_evidence: bool = True,
           ) -> dict[str, Any]:
    rule = alert.rule or {}
    out: dict[str, Any] = {
        "id": alert.id, "incidentId": alert.incident_id, "title": alert.title, "description": alert.description,
        "severity": alert.severity, "status": alert.status, "classification": alert.classification,
        "determination": alert.determination, "category": alert.category,
        "detectionSource": alert.detection_source, "detectorId": alert.detector_id,
        "mitreTechniques": alert.mitre_techniques, "assignedTo": alert.assigned_to,
        "alertCreationTime": alert.alert_creation_time, "firstEventTime": alert.first_event_time,
        "lastEventTime": alert.last_event_time, "lastUpdateTime": alert.last_update_time,
        "resolvedTime": alert.resolved_time, "machineId": alert.device_id, "computerDnsName": device_name,
        "rbacGroupName": group_name, "eventCount": alert.event_count, "comments": alert.comments,
        "detectionRule": rule, "detectorAuthor": rule.get("author"),
    }
    if expand_evidence:
        out["evidence"] = alert.evidence
    return out


MAX_COMMENT = 4096


def classified(classification: str | None, determination: str | None, patch: Mapping[str, Any],
               ) -> tuple[str | None, str | None]:
    """Classification and determination after ``patch``, checked as Defender pairs them (a new
    classification without a determination clears the old determination)."""
    new_class = patch.get("classification", classification)
    new_det = patch.get("determination", determination if "classification" not in patch else None)
    if new_class is not None and new_class not in CLASSIFICATIONS:
        raise Invalid(f"classification must be one of {', '.join(CLASSIFICATIONS)}")
    if new_det is not None:
        allowed = DETERMINATIONS.get(new_class or "", ())
        if new_det not in allowed:
            raise Invalid(f"determination {new_det!r} does not go with classification {new_class!r}"
                          + (f" (one of {', '.join(allowed)})" if allowed else ""))
    return new_class, new_det


def apply_update(alert: Alert, patch: Mapping[str, Any], actor: str) -> None:
    """Defender's alert update: status, assignedTo, classification, determination, comment."""
    now = utcnow()
    status = patch.get("status")
    if status is not None:
        if status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}")
        if status == "Resolved" and alert.status != "Resolved":
            alert.resolved_time = now
        elif status != "Resolved":
            alert.resolved_time = None
        alert.status = status
    if "assignedTo" in patch:
        alert.assigned_to = patch["assignedTo"] or None
    alert.classification, alert.determination = classified(alert.classification, alert.determination, patch)
    comment = patch.get("comment")
    if comment:
        alert.comments = [*alert.comments, {"comment": comment[:MAX_COMMENT], "createdBy": actor,
                                            "createdTime": now.isoformat()}][-200:]
    alert.last_update_time = now


def incident_to_api(incident: Incident, device_name: str | None, alerts: Sequence[Alert] | None = None,
                    ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "incidentId": incident.id, "incidentName": incident.name, "status": incident.status,
        "severity": incident.severity, "assignedTo": incident.assigned_to,
        "classification": incident.classification, "determination": incident.determination,
        "tags": incident.tags, "comments": incident.comments, "createdTime": incident.created_time,
        "lastUpdateTime": incident.last_update_time, "firstActivity": incident.first_activity,
        "lastActivity": incident.last_activity, "machineId": incident.device_id, "computerDnsName": device_name,
    }
    if alerts is not None:
        out["alerts"] = [{**to_api(a, device_name, None, expand_evidence=False), "linkReason": LINK_REASON}
                         for a in alerts]
    return out


MAX_TAGS = 50


def apply_incident_update(incident: Incident, alerts: Sequence[Alert], patch: Mapping[str, Any], actor: str) -> None:
    """Defender's incident update: status (resolving resolves its alerts), assignedTo (assigns its alerts too),
    classification, determination, tags, comment."""
    now = utcnow()
    status = patch.get("status")
    if status is not None:
        if status not in INCIDENT_STATUSES:
            raise Invalid(f"status must be one of {', '.join(INCIDENT_STATUSES)}")
        incident.status = status
        if status == "Resolved":
            for a in alerts:
                apply_update(a, {"status": "Resolved"}, actor)
    if "assignedTo" in patch:
        incident.assigned_to = patch["assignedTo"] or None
        for a in alerts:
            apply_update(a, {"assignedTo": incident.assigned_to}, actor)
    incident.classification, incident.determination = classified(incident.classification, incident.determination,
                                                                 patch)
    if "tags" in patch:
        tags = patch["tags"] or []
        if len(tags) > MAX_TAGS or any(not isinstance(t, str) or not t.strip() or len(t) > 100 for t in tags):
            raise Invalid(f"tags: at most {MAX_TAGS} non-empty texts of at most 100 characters")
        incident.tags = sorted({t.strip() for t in tags})
    comment = patch.get("comment")
    if comment:
        incident.comments = [*incident.comments, {"comment": comment[:MAX_COMMENT], "createdBy": actor,
                                                  "createdTime": now.isoformat()}][-200:]
    incident.last_update_time = now
