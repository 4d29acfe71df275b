"""The exposure score: per finding hazard, per device score, organisation and device-group scores.

The formula is written down with a worked example in ``docs/exposure-score.md``; the constants
below are the ones it names. In short:

* every open finding (a vulnerability of a software product on a device) has a **hazard**
  ``h = impact × likelihood``: impact from CVSS (0–1), likelihood from the threat context —
  known exploited (KEV) highest, then exploit kits, verified and public exploits, and EPSS;
* a failed configuration check has ``h = configScoreImpact / 10 × CONFIG_LIKELIHOOD``;
* the device score is ``100 × (1 − exp(−m × H / SATURATION))`` where ``H`` is the sum of the
  device's hazards and ``m`` its multiplier (device value, internet exposure); each finding
  contributes ``score × h / H``;
* the organisation (or device-group) score is the weighted average over active devices with
  data: Normal 1, Low 0.75, High ``max(1, devices / 10)``.

The per-vulnerability hazard is also an SQL expression so that recomputing a fleet is a handful of
aggregate queries (see :mod:`garrison.tvm.prioritisation.engine`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from garrison.store.models.core import Device
from garrison.store.models.kb import AffectedPackage, Vulnerability
from garrison.store.models.prioritisation import ORG, ExposureGroupScore
from garrison.store.models.tvm import DeviceInventoryState

# --- constants of the formula (docs/exposure-score.md) -----------------------------------

SEVERITY_IMPACT = {"Critical": 9.5, "High": 8.0, "Medium": 5.5, "Low": 2.5, "None": 1.0}
UNKNOWN_IMPACT = 5.0  # CVSS-equivalent when neither a score nor a severity is known

L_KEV = 3.0  # known exploited in the wild (CISA KEV)
L_KEV_RANSOMWARE = 3.5  # … and known to be used in ransomware campaigns
L_EXPLOIT_KIT = 2.0
L_EXPLOIT_VERIFIED = 1.5
L_PUBLIC_EXPLOIT = 0.8
EPSS_FACTOR = 2.5  # EPSS probability × this; EPSS 0.9 approaches a KEV entry
L_FLOOR = 0.003  # every known weakness has some likelihood (about the median EPSS × EPSS_FACTOR)
L_ACTIVE_ALERT = 4.0  # an active alert on this device for this vulnerability: highest of all
CONFIG_LIKELIHOOD = 0.1  # a failed configuration check: hazard = impact/10 × this

SATURATION = 2.4  # hazard at which a device reaches 1 − e⁻¹ ≈ 63
VALUE_MULTIPLIER = {"Low": 0.75, "Normal": 1.0, "High": 1.5}
INTERNET_FACING_MULTIPLIER = 1.5

ORG_WEIGHT = {"Low": 0.75, "Normal": 1.0}  # High: max(1, devices / 10)
INACTIVE_AFTER = dt.timedelta(days=30)

LEVELS = ("None", "Low", "Medium", "High")


# --- SQL helpers ---------------------------------------------------------------------------

class greatest(FunctionElement[Any]):
    """GREATEST(a, b, …) on PostgreSQL, the multi-argument MAX(a, b, …) on SQLite."""

    type = Float()
    inherit_cache = True
    name = "greatest"


@compiles(greatest)
def _greatest_default(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"MAX({compiler.process(element.clauses, **kw)})"


def impact_expr(v: Any = Vulnerability) -> ColumnElement[Any]:
    by_severity = case(*((v.severity == k, x) for k, x in SEVERITY_IMPACT.items()), else_=UNKNOWN_IMPACT)
    return cast(func.coalesce(v.cvss_v3_score, v.cvss_v4_score, by_severity), Float) / 10.0


def exploit_likelihood_expr(v: Any = Vulnerability) -> ColumnElement[float]:
    return case(
        (and_(v.kev, v.kev_ransomware == "Known"), L_KEV_RANSOMWARE),
        (v.kev, L_KEV),
        (v.exploit_in_kit, L_EXPLOIT_KIT),
        (v.exploit_verified, L_EXPLOIT_VERIFIED),
        (v.public_exploit, L_PUBLIC_EXPLOIT),
        else_=0.0,
    )


def likelihood_expr(v: Any = Vulnerability) -> ColumnElement[float]:
    epss = cast(func.coalesce(v.epss, 0.0), Float) * EPSS_FACTOR
    return greatest(exploit_likelihood_expr(v), epss, L_FLOOR)


def hazard_expr(v: Any = Vulnerability) -> ColumnElement[float]:
    return impact_expr(v) * likelihood_expr(v)


# --- the same formula in Python (explanations, single devices, tests) --------------------

def impact(v: Any) -> float:
    score = v.cvss_v3_score if v.cvss_v3_score is not None else v.cvss_v4_score
    if score is None:
        score = SEVERITY_IMPACT.get(v.severity, UNKNOWN_IMPACT)
    return float(score) / 10.0


def exploit_likelihood(v: Any) -> float:
    if v.kev:
        return L_KEV_RANSOMWARE if (v.kev_ransomware or "") == "Known" else L_KEV
    if v.exploit_in_kit:
        return L_EXPLOIT_KIT
    if v.exploit_verified:
        return L_EXPLOIT_VERIFIED
    if v.public_exploit:
        return L_PUBLIC_EXPLOIT
    return 0.0


def likelihood(v: Any, active_alert: bool = False) -> float:
    if active_alert:
        return L_ACTIVE_ALERT
    return max(exploit_likelihood(v), (v.epss or 0.0) * EPSS_FACTOR, L_FLOOR)


def hazard(v: Any, active_alert: bool = False) -> float:
    return impact(v) * likelihood(v, active_alert)


def threat_reason(v: Any, active_alert: bool = False) -> str:
    """What drives a vulnerability's likelihood, in words."""
    if active_alert:
        return "active alert on this device"
    exploit = exploit_likelihood(v)
    epss = (v.epss or 0.0) * EPSS_FACTOR
    if exploit >= epss and exploit > 0:
        if v.kev:
            return "known exploited (KEV)" + (", used by ransomware" if (v.kev_ransomware or "") == "Known" else "")
        if v.exploit_in_kit:
            return "exploit in an exploit kit"
        if v.exploit_verified:
            return "verified exploit"
        return "public exploit"
    if epss > L_FLOOR:
        return f"EPSS {v.epss:.3f}"
    return "no known exploit"


def config_hazard(score_impact: float) -> float:
    return max(0.0, min(float(score_impact), 10.0)) / 10.0 * CONFIG_LIKELIHOOD


def device_multiplier(device_value: str, internet_facing: bool) -> float:
    m = VALUE_MULTIPLIER.get(device_value, 1.0)
    return m * (INTERNET_FACING_MULTIPLIER if internet_facing else 1.0)


def score_from_hazard(total_hazard: float, multiplier: float = 1.0) -> float:
    if total_hazard <= 0:
        return 0.0
    return 100.0 * (1.0 - math.exp(-multiplier * total_hazard / SATURATION))


def level_for(score: float | None, has_data: bool = True) -> str:
    """Low/Medium/High; "None" when the device has no data or no findings at all (score 0), as Defender shows."""
    if not has_data or score is None or score <= 0:
        return "None"
    if score < 30:
        return "Low"
    if score < 70:
        return "Medium"
    return "High"


def rounded(x: float) -> float:
    return round(x + 0.0, 2)


def is_active_expr(now: dt.datetime) -> ColumnElement[bool]:
    """Devices that count for vulnerability management: not offboarded, seen in the last 30 days."""
    seen = func.coalesce(Device.last_seen, Device.first_seen)
    return and_(Device.offboarded_at.is_(None), seen >= now - INACTIVE_AFTER)


def release_covered_expr() -> ColumnElement[bool]:
    """The device's release (its inventory's OSV ecosystem) is covered by some imported advisory; a device
    whose inventory names no release (an SBOM of application packages) is judged by its packages."""
    ecosystem = DeviceInventoryState.ecosystem
    return or_(ecosystem == "", select(AffectedPackage.id).where(AffectedPackage.ecosystem == ecosystem).exists())


def has_data_expr(now: dt.datetime) -> ColumnElement[bool]:
    """Devices the prioritisation job scores: active, with an inventory. (Their level is "None" when they
    have no findings; :func:`covered_expr` tells whether that is because no feed covers their release.)"""
    inventory = (select(DeviceInventoryState.device_id).where(DeviceInventoryState.device_id == Device.id)
                 .correlate(Device).exists())
    return and_(is_active_expr(now), inventory)


def covered_expr() -> ColumnElement[bool]:
    """The device has an inventory of a release some imported feed covers."""
    return (select(DeviceInventoryState.device_id)
            .where(DeviceInventoryState.device_id == Device.id, release_covered_expr())
            .correlate(Device).exists())


REASON_INACTIVE = "Inactive: not seen in the last 30 days"
REASON_NO_INVENTORY = "No data: no software inventory yet"
REASON_NOT_COVERED = "No data / release not covered"
REASON_NO_FINDINGS = "No findings"


def inventory_reason(s: Session, device: Device) -> str | None:
    """Why the device's inventory gives no exposure data (none yet, or a release no feed covers), or None."""
    state = s.get(DeviceInventoryState, device.id)
    if state is None:
        return REASON_NO_INVENTORY
    if state.ecosystem and s.scalar(select(AffectedPackage.id)
                                    .where(AffectedPackage.ecosystem == state.ecosystem).limit(1)) is None:
        return f"{REASON_NOT_COVERED} ({state.ecosystem})"
    return None


def no_data_reason(s: Session, device: Device, now: dt.datetime) -> str | None:
    """Why a device's exposure level is "None" (API ``exposureLevelReason``), or None when it has a level."""
    if not is_active(device, now):
        return REASON_INACTIVE
    reason = inventory_reason(s, device)
    if (device.exposure_level or "None") != "None":
        return None  # scored (configuration findings count even where no feed covers the release)
    return reason or REASON_NO_FINDINGS


def is_active(device: Device, now: dt.datetime) -> bool:
    seen = device.last_seen or device.first_seen
    return device.offboarded_at is None and seen is not None and seen >= now - INACTIVE_AFTER


# --- organisation and group scores ---------------------------------------------------------

@dataclass
class Components:
    """Weighted-average components of a set of devices (see :class:`ExposureGroupScore`)."""

    devices: int = 0
    high_devices: int = 0
    nl_weight: float = 0.0
    nl_weighted_score: float = 0.0
    high_score_sum: float = 0.0
    levels: dict[str, int] = field(default_factory=dict)

    def add_device(self, score: float, device_value: str, level: str) -> None:
        self.devices += 1
        if device_value == "High":
            self.high_devices += 1
            self.high_score_sum += score
        else:
            w = ORG_WEIGHT.get(device_value, 1.0)
            self.nl_weight += w
            self.nl_weighted_score += w * score
        self.levels[level] = self.levels.get(level, 0) + 1

    def merge(self, other: Components | ExposureGroupScore) -> None:
        self.devices += other.devices
        self.high_devices += other.high_devices
        self.nl_weight += other.nl_weight
        self.nl_weighted_score += other.nl_weighted_score
        self.high_score_sum += other.high_score_sum
        for k, n in (other.levels or {}).items():
            self.levels[k] = self.levels.get(k, 0) + int(n)

    @property
    def high_weight(self) -> float:
        return high_weight(self.devices)

    @property
    def total_weight(self) -> float:
        return self.nl_weight + self.high_weight * self.high_devices

    @property
    def score(self) -> float:
        w = self.total_weight
        if w <= 0:
            return 0.0
        return (self.nl_weighted_score + self.high_weight * self.high_score_sum) / w

    def impact(self, nl_delta: float, high_delta: float) -> float:
        """Drop of this set's score if devices' scores dropped by the given weighted sums."""
        w = self.total_weight
        if w <= 0:
            return 0.0
        return (nl_delta + self.high_weight * high_delta) / w


def high_weight(devices: int) -> float:
    """Weight of a High-value device: Defender's devices/10, but never below a Normal device."""
    return max(1.0, devices / 10.0)


def org_weight(device_value: str, devices: int) -> float:
    return high_weight(devices) if device_value == "High" else ORG_WEIGHT.get(device_value, 1.0)


def components_for(s: Session, group_ids: Iterable[int | None] | None = None) -> Components:
    """Components of the organisation (``group_ids`` None) or of the given device groups."""
    stmt = select(ExposureGroupScore)
    if group_ids is not None:
        keys = [ORG if g is None else g for g in group_ids]
        stmt = stmt.where(ExposureGroupScore.group_id.in_(keys))
    comp = Components()
    for row in s.scalars(stmt):
        comp.merge(row)
    return comp


def last_computed(s: Session) -> dt.datetime | None:
    return s.scalar(select(func.max(ExposureGroupScore.computed_at)))


def group_key(group_id: int | None) -> int:
    return ORG if group_id is None else group_id


# Devices counted per level. A device scored "None" whose release no imported feed covers is counted
# apart, under NOT_COVERED ("No data / release not covered"), not as a device without findings.
NOT_COVERED = "NotCovered"
LEVEL_KEYS = ("High", "Medium", "Low", "None", NOT_COVERED)


def counted_level(level: str, covered: bool) -> str:
    """The key a scored device is counted under in :attr:`Components.levels`."""
    return NOT_COVERED if level == "None" and not covered else level


def levels_summary(levels: Mapping[str, int]) -> dict[str, int]:
    return {k: int(levels.get(k, 0)) for k in LEVEL_KEYS}
