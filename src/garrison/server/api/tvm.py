"""Vulnerability management API, shaped like Defender's Software, Vulnerability and machine APIs.

Everything a caller sees is limited to the devices of their device groups (``device_scope``);
software and vulnerabilities no visible device has answer 404, like another tenant's ids.
``/api/vulnerabilities`` lists the vulnerabilities that affect the tenant; ``?scope=all`` lists the
whole knowledge base (what Defender's list returns), with exposedMachines 0 where nothing is exposed.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    distinct,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from garrison.core.access import Principal
from garrison.core.devices import reference_to_api
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.inventory import FORMATS
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, device_scope, json_response, odata_list, returns, run_list
from garrison.server.api.machines import load_device
from garrison.server.auth import require
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import (
    DevicePackage,
    GroupPackageCount,
    GroupSoftwareCount,
    GroupVulnerabilityCount,
    PackageVersion,
    PackageVersionVuln,
    SoftwareProduct,
)
from garrison.tvm import findings as tvm_findings
from garrison.tvm import inventory as tvm_inventory
from garrison.tvm import service
from garrison.tvm.queries import vulnerabilities

router = APIRouter(prefix="/api", tags=["vulnerability management"])
Group = aliased(DeviceGroup)
DP, PV, PVV, SP, V = DevicePackage, PackageVersion, PackageVersionVuln, SoftwareProduct, Vulnerability
GPC, GSC, GVC = GroupPackageCount, GroupSoftwareCount, GroupVulnerabilityCount
MAX_ID = 300
# A machine's vulnerabilities page binds up to this many ids to fetch their details; a longer page reads
# all the machine's findings instead (one index range, ~30 ms for a dense machine).
FEW_IDS = 200


def _exploit_expr() -> ColumnElement[bool]:
    return or_(V.public_exploit, V.kev, V.exploit_in_kit, V.exploit_verified)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a large page is built. A dense machine's vulnerabilities are
    ~100,000 new objects (rows, dicts, lists), none in cycles; the collections they triggered walked
    the whole heap each time and were 40% of the request. Reference counting still frees everything.
    Of overlapping requests, the one that found collection enabled enables it again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- vulnerabilities ------------------------------------------------------------------------

@contextmanager
def counts_session(request: Request, principal: Principal) -> Iterator[Session]:
    """A tenant session for reading the per-group counts: devices whose group changed are booked into
    them first (:func:`garrison.tvm.findings.rebook_moved`, as the console pages do), so the counts are
    right at once after a device-group change."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        tvm_findings.rebook_moved(s)
        yield s


def group_scope(principal: Principal, column: Any) -> ColumnElement[bool]:
    """Summary rows of the caller's device groups (devices without a group count as group 0)."""
    if principal.group_ids is None:
        return true()
    return column.in_(principal.group_ids)


def _exposed(principal: Principal, *where: Any, among: Any = None) -> Any:
    """Exposed devices per vulnerability among the caller's devices.

    Without ``where``: the per-group summaries (devices counted once however many of their packages
    carry the vulnerability). With ``where`` (e.g. one software): counted live, which stays cheap
    because the condition narrows the rows to a few package versions."""
    if not where:
        total = func.sum(GVC.exposed)
        narrow = [GVC.vulnerability_id.in_(among)] if among is not None else []
        return (select(GVC.vulnerability_id.label("vid"), total.label("n"))
                .where(group_scope(principal, GVC.group_id), *narrow)
                .group_by(GVC.vulnerability_id).having(total > 0).subquery())
    return (select(PVV.vulnerability_id.label("vid"), func.count(distinct(DP.device_id)).label("n"))
            .select_from(DP)
            .join(PVV, PVV.package_version_id == DP.package_version_id)
            .join(Device, Device.id == DP.device_id)
            .join(PV, PV.id == DP.package_version_id)
            .where(device_scope(principal), *where)
            .group_by(PVV.vulnerability_id).subquery())


def _vuln_stmt(principal: Principal, all_kb: bool, *where: Any, among: Any = None) -> tuple[Select[Any], Any]:
    """Rows of vulnerabilities.COLUMNS + ``exposed``."""
    exposed = _exposed(principal, *where, among=among)
    if all_kb:
        count = func.coalesce(exposed.c.n, 0)
        stmt = select(*vulnerabilities.COLUMNS, count.label("exposed")).outerjoin(exposed, exposed.c.vid == V.id)
    else:
        count = exposed.c.n
        stmt = select(*vulnerabilities.COLUMNS, count.label("exposed")).join(exposed, exposed.c.vid == V.id)
    return stmt, count


def vulnerability_fields(count: Any) -> dict[str, odata.Field]:
    return {
        "id": odata.Field(V.id), "name": odata.Field(V.id), "severity": odata.Field(V.severity),
        "description": odata.Field(V.description, sortable=False),
        "cvssV3": odata.Field(V.cvss_v3_score, float), "cvssV4": odata.Field(V.cvss_v4_score, float),
        "exposedMachines": odata.Field(count, int),
        "publishedOn": odata.Field(V.published_on, dt.datetime), "updatedOn": odata.Field(V.updated_on, dt.datetime),
        "publicExploit": odata.Field(V.public_exploit, bool), "exploitVerified": odata.Field(V.exploit_verified, bool),
        "exploitInKit": odata.Field(V.exploit_in_kit, bool),
        "epss": odata.Field(V.epss, float), "epssPercentile": odata.Field(V.epss_percentile, float),
        "kev": odata.Field(V.kev, bool), "kevDateAdded": odata.Field(V.kev_date_added, dt.datetime),
        "kevDueDate": odata.Field(V.kev_due_date, dt.datetime),
    }


def _scope_all(request: Request) -> bool:
    scope = request.query_params.get("scope", "tenant")
    if scope not in ("tenant", "all"):
        raise Invalid("scope must be 'tenant' (vulnerabilities affecting your devices) or 'all' (the knowledge base)")
    return scope == "all"


@router.get("/vulnerabilities", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Vulnerability]))
def list_vulnerabilities(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    all_kb = _scope_all(request)
    with counts_session(request, principal) as s:
        stmt, count = _vuln_stmt(principal, all_kb)
        return json_response(run_list(s, request, stmt, vulnerability_fields(count), vulnerabilities.to_api,
                                      "Vulnerabilities", default_order=[V.id]))


def machine_vuln_fields() -> dict[str, odata.Field]:
    return {
        "id": odata.Field(DP.device_id + literal("_") + PVV.vulnerability_id, sortable=False, filterable=False),
        "cveId": odata.Field(PVV.vulnerability_id), "machineId": odata.Field(DP.device_id),
        "fixingKbId": odata.Field(PVV.fixed_version), "productName": odata.Field(SP.name),
        "productVendor": odata.Field(SP.vendor), "productVersion": odata.Field(PV.version),
        "severity": odata.Field(V.severity), "firstSeen": odata.Field(tvm_findings.first_seen_expr(), dt.datetime),
        "status": odata.Field(PVV.status),
    }


def _machine_vuln_to_api(r: Any) -> dict[str, Any]:
    device_id, cve, name, vendor, version, fixed, severity, first_seen, advisories, status, last_used = r
    return {"id": f"{device_id}_{vendor}_{name}_{version}_{cve}", "cveId": cve, "machineId": device_id,
            "fixingKbId": fixed, "productName": name, "productVendor": vendor, "productVersion": version,
            "severity": severity, "firstSeen": first_seen, "advisoryIds": advisories or [], "status": status,
            "inUse": tvm_findings.in_use(last_used), "lastUsed": last_used}


@router.get("/vulnerabilities/machinesVulnerabilities", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineSoftwareVulnerability]))
def machines_vulnerabilities(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    """One row per (machine, CVE, software version): Defender's "list vulnerabilities by machine and
    software"; ``fixingKbId`` is the fixed version (None: no fix yet)."""
    stmt = (tvm_findings.findings_select(DP.device_id, PVV.vulnerability_id, SP.name, SP.vendor, PV.version,
                                         PVV.fixed_version, V.severity, tvm_findings.first_seen_expr(),
                                         PVV.advisory_ids, PVV.status, DP.last_used)
            .join(SP, SP.id == PV.software_id).join(V, V.id == PVV.vulnerability_id)
            .join(Device, Device.id == DP.device_id).where(device_scope(principal)))
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return json_response(run_list(s, request, stmt, machine_vuln_fields(), _machine_vuln_to_api,
                                      "MachineVulnerabilities",
                                      default_order=[DP.device_id, DP.package_version_id, PVV.vulnerability_id]))


def _load_vulnerability(s: Session, principal: Principal, cve_id: str, all_kb: bool) -> Any:
    """The row of _vuln_stmt for one vulnerability."""
    stmt, _count = _vuln_stmt(principal, all_kb, among=[cve_id[:MAX_ID]])
    row = s.execute(stmt.where(V.id == cve_id[:MAX_ID])).first() if cve_id else None
    if row is None:
        raise NotFound(f"no vulnerability {cve_id[:128]!r}" + ("" if all_kb else " affects your devices"))
    return row


@router.get("/vulnerabilities/{cve_id}", responses=returns(schema.Vulnerability))
def get_vulnerability(cve_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with counts_session(request, principal) as s:
        return vulnerabilities.to_api(_load_vulnerability(s, principal, cve_id, _scope_all(request)))


def reference_fields() -> dict[str, odata.Field]:
    return {"id": odata.Field(Device.id), "computerDnsName": odata.Field(Device.computer_dns_name),
            "osPlatform": odata.Field(Device.os_platform), "rbacGroupId": odata.Field(Device.group_id, int),
            "rbacGroupName": odata.Field(Group.name), "exposureLevel": odata.Field(Device.exposure_level),
            "exposureScore": odata.Field(Device.exposure_score, float), "deviceValue": odata.Field(Device.device_value)}


def _references(s: Session, request: Request, principal: Principal, device_ids: Any, entity: str,
                details: Any) -> dict[str, Any]:
    """Machine references (Defender: id, computerDnsName, osPlatform, rbacGroup…), with ``details``
    (device id -> extra fields) for the page's devices."""
    stmt = (select(Device, Group.name).outerjoin(Group, Group.id == Device.group_id)
            .where(device_scope(principal), Device.id.in_(device_ids)))
    body = run_list(s, request, stmt, reference_fields(), lambda r: reference_to_api(r[0], r[1]), entity,
                    default_order=[Device.computer_dns_name, Device.id])
    extra = details([m["id"] for m in body["value"] if "id" in m]) if body["value"] else {}
    for m in body["value"]:
        m.update(extra.get(m.get("id"), {}))
    return body


def _package_details(s: Session, device_ids: list[str], *where: Any) -> dict[str, dict[str, Any]]:
    rows = s.execute(select(DP.device_id, SP.id, SP.name, PV.version, DP.path, DP.last_used, DP.first_seen)
                     .join(PV, PV.id == DP.package_version_id).join(SP, SP.id == PV.software_id)
                     .where(DP.device_id.in_(device_ids), *where)
                     .order_by(DP.device_id, SP.id, PV.version)).all()
    out: dict[str, dict[str, Any]] = {}
    for device_id, sw, name, version, path, last_used, first_seen in rows:
        d = out.setdefault(device_id, {"software": [], "inUse": False, "lastUsed": None})
        d["software"].append({"softwareId": sw, "productName": name, "productVersion": version, "evidencePath": path,
                              "firstSeen": first_seen, "lastUsed": last_used,
                              "inUse": tvm_findings.in_use(last_used)})
        d["inUse"] = d["inUse"] or tvm_findings.in_use(last_used)
        if last_used and (d["lastUsed"] is None or last_used > d["lastUsed"]):
            d["lastUsed"] = last_used
    return out


@router.get("/vulnerabilities/{cve_id}/machineReferences", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineWithSoftware]))
def vulnerability_machines(cve_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with counts_session(request, principal) as s:
        v = _load_vulnerability(s, principal, cve_id, _scope_all(request))
        pvs = select(PVV.package_version_id).where(PVV.vulnerability_id == v.id)
        devices = select(DP.device_id).where(DP.package_version_id.in_(pvs))
        return _references(s, request, principal, devices, "MachineReferences",
                           lambda ids: _package_details(s, ids, DP.package_version_id.in_(pvs)))


# --- software --------------------------------------------------------------------------------

def _software_stats(principal: Principal, software_id: str | None) -> tuple[Any, Any]:
    """Per software product, among the caller's device groups (from the summaries): installations,
    exposed and in-use devices (``inst``); weaknesses, impact and exploits of its installed versions
    (``vul``). ``impactScore`` sums, over installed versions, devices x CVSS of each vulnerability."""
    one_sw = [GSC.software_id == software_id] if software_id is not None else []
    one_pv = [PV.software_id == software_id] if software_id is not None else []
    installed = func.sum(GSC.installed)
    inst = (select(GSC.software_id.label("sid"), installed.label("installed"),
                   func.sum(GSC.exposed).label("exposed"), func.sum(GSC.in_use).label("in_use"))
            .where(group_scope(principal, GSC.group_id), *one_sw)
            .group_by(GSC.software_id).having(installed > 0).subquery())
    devices = func.sum(GPC.devices)
    per_pv = (select(GPC.package_version_id.label("pv"), devices.label("n"))
              .where(group_scope(principal, GPC.group_id))
              .group_by(GPC.package_version_id).having(devices > 0))
    if software_id is not None:
        per_pv = per_pv.join(PV, PV.id == GPC.package_version_id).where(*one_pv)
    pv_sq = per_pv.subquery()
    # (software, vulnerability) first, with the devices of its versions summed: ~5x fewer rows than
    # (package version, vulnerability) pairs to join with the vulnerabilities, and no count(DISTINCT).
    # Impact is the same sum (devices x weight) grouped differently.
    per_sv = (select(PV.software_id.label("sid"), PVV.vulnerability_id.label("vid"), func.sum(pv_sq.c.n).label("n"))
              .select_from(pv_sq).join(PV, PV.id == pv_sq.c.pv)
              .join(PVV, PVV.package_version_id == pv_sq.c.pv)
              .group_by(PV.software_id, PVV.vulnerability_id).subquery())
    vul = (select(per_sv.c.sid, func.count().label("weaknesses"),
                  func.sum(per_sv.c.n * tvm_findings.cvss_weight_expr()).label("impact"),
                  func.max(case((_exploit_expr(), 1), else_=0)).label("exploit"))
           .select_from(per_sv).join(V, V.id == per_sv.c.vid)
           .group_by(per_sv.c.sid).subquery())
    return inst, vul


def _software_stmt(principal: Principal, software_id: str | None = None) -> tuple[Select[Any], dict[str, Any]]:
    inst, vul = _software_stats(principal, software_id)
    cols = {
        "weaknesses": func.coalesce(vul.c.weaknesses, 0), "exposed": inst.c.exposed,
        "impact": func.coalesce(vul.c.impact, 0) / 10.0,
        "exploit": func.coalesce(vul.c.exploit, 0) > 0,
        "installed": inst.c.installed, "in_use": inst.c.in_use,
    }
    stmt = (select(SP.id, SP.name, SP.vendor, *cols.values())
            .join(inst, inst.c.sid == SP.id).outerjoin(vul, vul.c.sid == SP.id))
    return stmt, cols


def software_fields(cols: dict[str, Any]) -> dict[str, odata.Field]:
    return {
        "id": odata.Field(SP.id), "name": odata.Field(SP.name), "vendor": odata.Field(SP.vendor),
        "weaknesses": odata.Field(cols["weaknesses"], int), "publicExploit": odata.Field(cols["exploit"], bool),
        "activeAlert": odata.Field(false(), bool, filterable=False, sortable=False),
        "exposedMachines": odata.Field(cols["exposed"], int), "impactScore": odata.Field(cols["impact"], float),
        "installedMachines": odata.Field(cols["installed"], int), "inUseMachines": odata.Field(cols["in_use"], int),
    }


def software_to_api(r: Any) -> dict[str, Any]:
    sid, name, vendor, weaknesses, exposed, impact, exploit, installed, in_use = r
    return {"id": sid, "name": name, "vendor": vendor, "weaknesses": int(weaknesses),
            "publicExploit": bool(exploit), "activeAlert": False, "exposedMachines": int(exposed or 0),
            "impactScore": round(float(impact or 0), 2), "installedMachines": int(installed),
            "inUseMachines": int(in_use or 0), "inUse": int(in_use or 0) > 0}


@router.get("/Software", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Software]))
def list_software(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with counts_session(request, principal) as s:
        stmt, cols = _software_stmt(principal)
        return json_response(run_list(s, request, stmt, software_fields(cols), software_to_api, "Software",
                                      default_order=[SP.id]))


def _load_software(s: Session, principal: Principal, software_id: str) -> Any:
    stmt, _ = _software_stmt(principal, software_id[:MAX_ID])
    row = s.execute(stmt).first()
    if row is None:
        raise NotFound(f"no software {software_id[:128]!r} on your devices")
    return row


@router.get("/Software/{software_id}", responses=returns(schema.Software))
def get_software(software_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with counts_session(request, principal) as s:
        return software_to_api(_load_software(s, principal, software_id))


@router.get("/Software/{software_id}/machineReferences", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineWithSoftware]))
def software_machines(software_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with counts_session(request, principal) as s:
        sid = _load_software(s, principal, software_id)[0]
        pvs = select(PV.id).where(PV.software_id == sid)
        devices = select(DP.device_id).where(DP.package_version_id.in_(pvs))
        return _references(s, request, principal, devices, "MachineReferences",
                           lambda ids: _package_details(s, ids, DP.package_version_id.in_(pvs)))


@router.get("/Software/{software_id}/vulnerabilities", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Vulnerability]))
def software_vulnerabilities(software_id: str, request: Request,
                             principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with counts_session(request, principal) as s:
        sid = _load_software(s, principal, software_id)[0]
        stmt, count = _vuln_stmt(principal, False, PV.software_id == sid)
        return json_response(run_list(s, request, stmt, vulnerability_fields(count), vulnerabilities.to_api,
                                      "Vulnerabilities", default_order=[V.id]))


@router.get("/Software/{software_id}/distributions", responses=returns(schema.ODataList[schema.VersionDistribution]))
def software_distributions(software_id: str, request: Request,
                           principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    """Version distribution: per installed version, devices, vulnerabilities and devices using it."""
    with counts_session(request, principal) as s:
        sid = _load_software(s, principal, software_id)[0]
        vulns = (select(PVV.package_version_id.label("pv"), func.count().label("n"))
                 .group_by(PVV.package_version_id).subquery())
        devices = func.sum(GPC.devices)
        rows = s.execute(
            select(PV.version, devices, func.max(func.coalesce(vulns.c.n, 0)), func.sum(GPC.in_use))
            .select_from(GPC).join(PV, PV.id == GPC.package_version_id)
            .outerjoin(vulns, vulns.c.pv == PV.id)
            .where(PV.software_id == sid, group_scope(principal, GPC.group_id))
            .group_by(PV.version).having(devices > 0).order_by(devices.desc(), PV.version)).all()
        return odata_list(request, "SoftwareVersionDistribution", [
            {"version": v, "installations": int(n), "vulnerabilities": int(nv), "inUseMachines": int(u or 0)}
            for v, n, nv, u in rows])


# --- a machine's software and vulnerabilities --------------------------------------------------

def machine_software_fields() -> dict[str, odata.Field]:
    return {"id": odata.Field(SP.id), "name": odata.Field(SP.name), "vendor": odata.Field(SP.vendor),
            "version": odata.Field(PV.version), "lastUsed": odata.Field(DP.last_used, dt.datetime),
            "firstSeen": odata.Field(DP.first_seen, dt.datetime)}


@router.get("/machines/{machine_id}/software", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineSoftware]))
def machine_software(machine_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    """Software installed on the machine, one entry per installed version, with its weaknesses on this
    machine, the evidence (where it was found, by which package manager) and its runtime context."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        # Counted for this machine's package versions only, not for every version of the fleet.
        counts = (select(PVV.package_version_id.label("pv"), func.count().label("n"),
                         func.max(case((_exploit_expr(), 1), else_=0)).label("x"))
                  .join(V, V.id == PVV.vulnerability_id)
                  .where(PVV.package_version_id.in_(select(DP.package_version_id).where(DP.device_id == device.id)))
                  .group_by(PVV.package_version_id).subquery())
        stmt = (select(SP, PV, DP.path, DP.first_seen, DP.last_used, func.coalesce(counts.c.n, 0),
                       func.coalesce(counts.c.x, 0))
                .select_from(DP).join(PV, PV.id == DP.package_version_id).join(SP, SP.id == PV.software_id)
                .outerjoin(counts, counts.c.pv == PV.id).where(DP.device_id == device.id))

        def to_api(r: Any) -> dict[str, Any]:
            sp, pv, path, first_seen, last_used, n, x = r
            return {"id": sp.id, "name": sp.name, "vendor": sp.vendor, "version": pv.version,
                    "weaknesses": int(n), "publicExploit": bool(x), "activeAlert": False,
                    "evidence": {"path": path, "packageManager": pv.manager, "packageName": pv.name,
                                 "sourcePackage": pv.source_name, "sourceVersion": pv.source_version,
                                 "architecture": pv.arch, "ecosystem": pv.ecosystem, "purl": pv.purl},
                    "firstSeen": first_seen, "lastUsed": last_used, "inUse": tvm_findings.in_use(last_used)}

        return json_response(run_list(s, request, stmt, machine_software_fields(), to_api, "Software",
                                      default_order=[SP.id, PV.id]))


@router.get("/machines/{machine_id}/vulnerabilities", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineVulnerability]))
def machine_vulnerabilities(machine_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    """Vulnerabilities of the machine (each once), with exposedMachines across the caller's devices and,
    per CVE, the affected software on this machine with fixed versions and runtime context."""
    with gc_paused(), request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        on_device = (select(PVV.vulnerability_id).join(DP, DP.package_version_id == PVV.package_version_id)
                     .where(DP.device_id == device.id))
        stmt, count = _vuln_stmt(principal, False, among=on_device)
        body = run_list(s, request, stmt, vulnerability_fields(count), vulnerabilities.to_api,
                        "Vulnerabilities", default_order=[V.id])
        ids = [v["id"] for v in body["value"] if "id" in v]
        if ids:
            details = _machine_findings(s, device.id, ids)
            for v in body["value"]:
                if "id" in v:
                    sw = details.get(v["id"], [])
                    v["software"] = sw
                    v["inUse"] = any(x["inUse"] for x in sw)
                    v["firstSeen"] = min((x["firstSeen"] for x in sw), default=None)
        return json_response(body)


def _machine_findings(s: Session, device_id: str, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The machine's findings of (at least) the vulnerabilities ``ids``, per vulnerability. A short page
    binds its ids; a longer one reads all the machine's findings (one index range) rather than binding
    thousands of ids."""
    stmt = (tvm_findings.findings_select(PVV.vulnerability_id, SP.id, SP.name, PV.version, PVV.fixed_version,
                                         PVV.advisory_ids, PVV.status, tvm_findings.first_seen_expr(), DP.last_used)
            .join(SP, SP.id == PV.software_id).where(DP.device_id == device_id)
            .order_by(PVV.vulnerability_id, SP.id, PV.version))
    if len(ids) <= FEW_IDS:
        stmt = stmt.where(PVV.vulnerability_id.in_(ids))
    now = utcnow()
    details: dict[str, list[dict[str, Any]]] = {}
    for vid, sw, name, version, fixed, advisories, status, first_seen, last_used in s.execute(stmt):
        details.setdefault(vid, []).append({
            "softwareId": sw, "productName": name, "productVersion": version, "fixedVersion": fixed,
            "advisoryIds": advisories or [], "status": status, "firstSeen": first_seen, "lastUsed": last_used,
            "inUse": tvm_findings.in_use(last_used, now)})
    return details


# --- agentless import and feeds ----------------------------------------------------------------

async def _read_import(request: Request) -> tuple[bytes, dict[str, str], bytes | None]:
    """(inventory bytes, parameters, os-release bytes) from multipart form data or a raw body + query."""
    params = {k: v for k, v in request.query_params.items() if k in ("deviceName", "os", "format")}
    os_release: bytes | None = None
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=2, max_fields=10)
        data = b""
        for key, value in form.multi_items():
            if key == "file" and hasattr(value, "read"):
                data = await value.read()
            elif key == "osRelease":
                os_release = await value.read() if hasattr(value, "read") else str(value).encode()
            elif key in ("deviceName", "os", "format") and isinstance(value, str):
                params[key] = value
        if not data:
            raise Invalid("multipart body has no 'file' part with the inventory")
    else:
        data = await request.body()
    return data, params, os_release


@router.post("/machines/import", responses=returns(schema.ImportResult))
async def import_machine(request: Request, principal: Principal = require(P.MACHINES_IMPORT)) -> dict[str, Any]:
    """Agentless import: create or update the device ``deviceName`` from an inventory file (dpkg status,
    apk db, rpm -qa, CycloneDX, SPDX; gzip allowed), as multipart (``file``, ``osRelease``, ``deviceName``,
    ``os``, ``format``) or a raw body with those as query parameters. A malformed file stores nothing."""
    data, params, os_release = await _read_import(request)
    name = params.get("deviceName", "")
    if not name:
        raise Invalid("deviceName is required")
    if not data:
        raise Invalid("the inventory file is empty")
    if os_release is not None and params.get("os"):
        raise Invalid("give osRelease or os, not both")
    fmt = params.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise Invalid(f"unknown format {fmt[:40]!r}; known: {', '.join(sorted(FORMATS))}")
    os_ident = (tvm_inventory.read_os_release(os_release) if os_release is not None
                else tvm_inventory.parse_os_arg(params["os"]) if params.get("os") else None)

    def run() -> dict[str, Any]:
        return tvm_inventory.import_agentless(request.app.state.store, principal.tenant_id, name, data,
                                              os_ident=os_ident, fmt=fmt, actor=principal.actor,
                                              actor_type=principal.actor_type, group_ids=principal.group_ids)

    return await run_in_threadpool(run)


@router.get("/feeds/status", responses=returns(schema.ODataList[schema.FeedStatus]))
def feeds_status(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    rows = service.feeds_status(request.app.state.store)
    return odata_list(request, "Feeds", rows)


__all__ = ["router"]
