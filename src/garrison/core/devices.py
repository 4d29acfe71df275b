"""Devices: enrollment, check-in, the device report, health, tags, value, offboarding."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, delete, literal, or_, select
from sqlalchemy.orm import Session

from garrison import __version__ as SERVER_VERSION  # noqa: F401  (kept for later protocol checks)
from garrison.core import access, actions
from garrison.core.errors import Invalid, NotFound
from garrison.core.ingest import IngestContext
from garrison.core.security import new_credential
from garrison.protocol import DeviceReport
from garrison.protocol.limits import HOSTNAME_LEN
from garrison.store.base import utcnow
from garrison.store.models.core import AgentBatch, Device, DeviceTag

INACTIVE_AFTER = dt.timedelta(days=7)
DEVICE_VALUES = ("Low", "Normal", "High")
HEALTH_STATES = ("Active", "Inactive", "ImpairedCommunication", "NoSensorData",
                 "NoSensorDataImpairedCommunication", "Unknown")
MAX_TAG_LEN = 200
MAX_TAGS = 100


def enroll(s: Session, tenant_id: int, machine_key: str, hostname: str, agent_version: str) -> tuple[Device, str]:
    """New device, or the same record again when the machine re-enrolls (same machine key)."""
    device = s.scalar(select(Device).where(Device.tenant_id == tenant_id, Device.machine_key == machine_key))
    credential, digest = new_credential()
    if device is None:
        # lower() can lengthen a name (Unicode): cut to the column, whose size the protocol shares
        device = Device(tenant_id=tenant_id, machine_key=machine_key, computer_dns_name=hostname.lower()[:HOSTNAME_LEN])
        s.add(device)
    else:
        # A re-installed agent starts a new spool at sequence 1: forget the old sequence numbers
        # so that its first batches are not mistaken for duplicates.
        s.execute(delete(AgentBatch).where(AgentBatch.device_id == device.id))
    device.credential_hash = digest
    device.agent_version = agent_version
    device.onboarding_status = "Onboarded"
    device.offboarded_at = None
    s.flush()
    access.assign_group(s, device)
    return device, credential


def sensor_state(device: Device) -> str:
    """Health as stored at the last heartbeat flush; 'Inactive' is decided at read time."""
    if device.last_seen is None:
        return "Unknown"
    return device.health_state or "Active"


def health_status(device: Device, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if device.offboarded_at is not None:
        return "Inactive"
    if device.last_seen is not None and now - device.last_seen > INACTIVE_AFTER:
        return "Inactive"
    return sensor_state(device)


def health_expr(now: dt.datetime | None = None) -> ColumnElement[str]:
    """The same rule as SQL, so that ``$filter=healthStatus eq 'Inactive'`` works in the database.

    The sensor part (NoSensorData, ImpairedCommunication, …) is stored at every check-in in
    ``health_state``; the time part (Inactive after 7 days) is decided here, at read time.
    """
    now = now or utcnow()
    return case(
        (Device.offboarded_at.is_not(None), literal("Inactive")),
        (Device.last_seen.is_(None), literal("Unknown")),
        (Device.last_seen < now - INACTIVE_AFTER, literal("Inactive")),
        else_=Device.health_state,
    )


def apply_device_report(s: Session, device: Device, report: DeviceReport, ctx: IngestContext) -> None:
    device.computer_dns_name = (report.fqdn or report.hostname).lower()[:HOSTNAME_LEN]
    device.os_platform = report.os_platform or "Linux"
    device.os_version = report.os_version
    device.os_build = report.os_build
    device.os_id = report.os_id
    device.os_codename = report.os_codename
    device.kernel = report.kernel
    device.os_architecture = _arch_bits(report.architecture)
    device.os_processor = report.architecture or report.processor
    device.ip_addresses = [_ip_entry(ip, report.mac_addresses) for ip in report.ip_addresses if _valid_ip(ip)]
    device.mac_addresses = list(report.mac_addresses)
    device.last_ip_address = _primary_ip(report.ip_addresses)
    device.boot_time = report.boot_time
    device.logged_on_users = [u.model_dump(mode="json") for u in report.logged_on_users]
    if report.agent_version:
        device.agent_version = report.agent_version
    if ctx.source_ip:
        device.last_external_ip_address = ctx.source_ip
    access.assign_group(s, device)


def _arch_bits(arch: str) -> str:
    return "64-bit" if arch in ("x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "amd64") else \
        ("32-bit" if arch else "")


def _valid_ip(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip.split("%")[0])
        return True
    except ValueError:
        return False


def _ip_entry(ip: str, macs: list[str]) -> dict[str, Any]:
    return {"ipAddress": ip, "macAddress": macs[0] if macs else "", "operationalStatus": "Up"}


def _primary_ip(ips: list[str]) -> str:
    """The first non-loopback, non-link-local address, IPv4 first (what Defender shows as lastIpAddress)."""
    best = ""
    for raw in ips:
        if not _valid_ip(raw):
            continue
        ip = ipaddress.ip_address(raw.split("%")[0])
        if ip.is_loopback or ip.is_link_local:
            continue
        if ip.version == 4:
            return raw
        best = best or raw
    return best


# --- tags, value, offboarding -----------------------------------------------------------

def get_device(s: Session, device_id: str) -> Device:
    device = s.get(Device, device_id) if isinstance(device_id, str) and len(device_id) <= 64 else None
    # the session's tenant criteria do not apply to get() of an identity already loaded,
    # so check the tenant explicitly as well.
    scope = s.info.get("tenant")
    if device is None or (isinstance(scope, int) and device.tenant_id != scope):
        raise NotFound(f"no machine with id {device_id!r}")
    return device


def set_tag(s: Session, device: Device, tag: str, add: bool) -> None:
    tag = tag.strip()
    if not tag or len(tag) > MAX_TAG_LEN:
        raise Invalid(f"tag must be 1-{MAX_TAG_LEN} characters")
    tags = list(device.tags or [])
    if add and tag not in tags:
        if len(tags) >= MAX_TAGS:
            raise Invalid(f"a machine has at most {MAX_TAGS} tags")
        tags.append(tag)
        s.add(DeviceTag(device_id=device.id, tag=tag, tenant_id=device.tenant_id))
    elif not add and tag in tags:
        tags.remove(tag)
        s.execute(delete(DeviceTag).where(DeviceTag.device_id == device.id, DeviceTag.tag == tag))
    device.tags = tags
    access.assign_group(s, device)


def set_device_value(device: Device, value: str) -> None:
    if value not in DEVICE_VALUES:
        raise Invalid(f"DeviceValue must be one of {', '.join(DEVICE_VALUES)}")
    device.device_value = value


def offboard(s: Session, device: Device, requestor: str, comment: str) -> Any:
    """Ask the agent to stop (an Offboard action) and mark the device offboarded."""
    action = actions.create(s, device, "Offboard", requestor, comment)
    device.onboarding_status = "Offboarded"
    device.offboarded_at = utcnow()
    return action


def reference_to_api(device: Device, group_name: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A device as a sub-resource lists it (Defender's machine references): the one shape of every
    ``…/machineReferences`` and of a timeline event's devices; ``extra``: the sub-resource's own fields."""
    return {"id": device.id, "computerDnsName": device.computer_dns_name, "osPlatform": device.os_platform,
            "osVersion": device.os_version, "rbacGroupId": device.group_id, "rbacGroupName": group_name,
            "exposureLevel": device.exposure_level, "exposureScore": device.exposure_score,
            "deviceValue": device.device_value, **(extra or {})}


def tag_filter(tag: str, starts_with: bool) -> ColumnElement[bool]:
    q = select(DeviceTag.device_id)
    if starts_with:
        q = q.where(DeviceTag.tag.startswith(tag, autoescape=True))
    else:
        q = q.where(DeviceTag.tag == tag)
    return Device.id.in_(q)


def ip_filter(ip: str, at: dt.datetime | None) -> ColumnElement[bool]:
    """Devices that reported ``ip`` (Defender: seen with it within 15 minutes of ``at``)."""
    if not _valid_ip(ip):
        raise Invalid(f"invalid IP address {ip!r}")
    cond = or_(Device.last_ip_address == ip, cast(Device.ip_addresses, Text).contains(f'"{ip}"', autoescape=True))
    if at is not None:
        cond = and_(cond, Device.last_seen >= at - dt.timedelta(minutes=15))
    return cond
