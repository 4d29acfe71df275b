"""Exposure score: the formula of docs/exposure-score.md, per-device contributions, organisation and
device-group scores (Defender's weighting), inactive devices, daily history, alerts."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.tvm.kb import import_paths
from garrison.tvm.prioritisation import exposure
from tests.tvm.prioritisation.conftest import (
    EPSS,
    FOCAL,
    KEV,
    Agent,
    Env,
    api,
    focal_kb,
    ga_packages,
    import_ga,
    make_group,
    recompute,
    scoped_headers,
    set_value,
)


def vuln(**kw: object) -> SimpleNamespace:
    base = {"id": "X", "cvss_v3_score": None, "cvss_v4_score": None, "severity": "Unknown", "epss": None,
            "kev": False, "kev_ransomware": "", "public_exploit": False, "exploit_verified": False,
            "exploit_in_kit": False}
    base.update(kw)
    return SimpleNamespace(**base)


# --- the formula (numbers as in docs/exposure-score.md, "Worked example") ----------------------

BARON_SAMEDIT = vuln(id="CVE-2021-3156", cvss_v3_score=7.8, severity="High", epss=0.99295, kev=True,
                     kev_ransomware="Unknown", public_exploit=True, exploit_verified=True)
SUDO_LOW = vuln(id="CVE-2021-23239", cvss_v3_score=2.5, severity="Low", epss=0.01029)
PUBLIC_MEDIUM = vuln(id="CVE-EXAMPLE-1", cvss_v3_score=5.5, severity="Medium", epss=0.004, public_exploit=True)


def test_worked_example_of_the_docs() -> None:
    assert exposure.hazard(BARON_SAMEDIT) == pytest.approx(2.34)
    assert exposure.hazard(SUDO_LOW) == pytest.approx(0.25 * 0.025725)
    assert exposure.hazard(PUBLIC_MEDIUM) == pytest.approx(0.44)
    assert exposure.config_hazard(8) == pytest.approx(0.08)
    total = exposure.hazard(BARON_SAMEDIT) + exposure.hazard(SUDO_LOW) + exposure.hazard(PUBLIC_MEDIUM) + 0.08
    m = exposure.device_multiplier("Normal", internet_facing=True)
    assert m == 1.5
    score = exposure.score_from_hazard(total, m)
    assert score == pytest.approx(83.33, abs=0.01)
    assert exposure.level_for(score) == "High"
    shares = [exposure.hazard(BARON_SAMEDIT) + exposure.hazard(SUDO_LOW), exposure.hazard(PUBLIC_MEDIUM), 0.08]
    assert [round(score * h / total, 2) for h in shares] == [68.21, 12.79, 2.33]
    after = exposure.score_from_hazard(total - shares[0], m)
    assert after == pytest.approx(27.75, abs=0.01) and exposure.level_for(after) == "Low"
    org = exposure.Components()
    for s_, value in [(score, "Normal"), (40, "Low"), (10, "High"), (0, "Normal")]:
        org.add_device(s_, value, exposure.level_for(s_))
    assert org.score == pytest.approx(32.89, abs=0.01)
    assert org.impact(score - after, 0.0) == pytest.approx(14.82, abs=0.01)


def test_threat_order_kev_over_exploits_over_epss_over_severity() -> None:
    critical_plain = vuln(cvss_v3_score=9.8, epss=0.0005)
    medium_public = vuln(cvss_v3_score=5.5, public_exploit=True)
    medium_kev = vuln(cvss_v3_score=5.5, kev=True)
    high_epss = vuln(cvss_v3_score=7.5, epss=0.6)
    ransomware = vuln(cvss_v3_score=5.5, kev=True, kev_ransomware="Known")
    assert exposure.hazard(ransomware) > exposure.hazard(medium_kev) > exposure.hazard(high_epss) \
        > exposure.hazard(medium_public) > exposure.hazard(critical_plain)
    # a single known-exploited critical finding puts a device in High; a plain critical one in Low
    assert exposure.level_for(exposure.score_from_hazard(exposure.hazard(vuln(cvss_v3_score=9.8, kev=True)))) == "High"
    assert exposure.level_for(exposure.score_from_hazard(exposure.hazard(critical_plain))) == "Low"
    # an active alert on the device for the vulnerability beats everything
    assert exposure.hazard(medium_public, active_alert=True) > exposure.hazard(ransomware)
    # severity word when there is no CVSS; v4 when there is no v3
    assert exposure.impact(vuln(severity="Critical")) == 0.95
    assert exposure.impact(vuln(cvss_v4_score=8.7)) == pytest.approx(0.87)


def test_levels_and_weights() -> None:
    # Score 0 (no findings at all) is "None", as Defender shows, not "Low".
    assert [exposure.level_for(x) for x in (0, 0.01, 29.9, 30, 69.99, 70, 100)] == [
        "None", "Low", "Low", "Medium", "Medium", "High", "High"]
    assert exposure.level_for(55, has_data=False) == "None"
    assert exposure.high_weight(100) == 10  # Defender: NumberOfAssets / 10
    assert exposure.high_weight(4) == 1  # never less than a Normal device
    c = exposure.Components()
    for score, value in [(80, "Normal"), (40, "Low"), (10, "High"), (0, "Normal")]:
        c.add_device(score, value, exposure.level_for(score))
    assert c.score == pytest.approx((80 + 0.75 * 40 + 1 * 10 + 0) / (1 + 0.75 + 1 + 1))
    big = exposure.Components()
    for _ in range(99):
        big.add_device(20, "Normal", "Low")
    big.add_device(90, "High", "High")
    assert big.score == pytest.approx((99 * 20 + 10 * 90) / (99 + 10))


def test_sql_hazard_equals_python_hazard(store: Store) -> None:
    import_paths(store, [FOCAL, KEV, EPSS])
    with store.system() as s:
        rows = s.execute(select(Vulnerability, exposure.hazard_expr(), exposure.likelihood_expr())).all()
    assert len(rows) > 1000
    for v, h, lk in rows:
        assert h == pytest.approx(exposure.hazard(v), rel=1e-9), v.id
        assert lk == pytest.approx(exposure.likelihood(v), rel=1e-9), v.id
    kev = [v for v, _, _ in rows if v.kev]
    assert kev and all(exposure.likelihood(v) >= exposure.L_KEV for v in kev)


# --- real devices -----------------------------------------------------------------------------------

def test_ga_host_score_contributions_add_up(env: Env) -> None:
    focal_kb(env)
    mid = import_ga(env, "focal-ga")
    stats = recompute(env)
    assert stats["scoredDevices"] == 1 and stats["recommendations"] == 25
    m = api(env, "GET", f"/api/machines/{mid}")
    assert m["exposureLevel"] == "High" and 70 <= m["exposureScore"] <= 100
    ex = api(env, "GET", f"/api/machines/{mid}/exposure")
    assert ex["computedScore"] == pytest.approx(m["exposureScore"], abs=0.01)
    items = ex["contributions"]
    assert sum(i["contribution"] for i in items) == pytest.approx(ex["computedScore"], abs=0.05)
    assert ex["computedScore"] == pytest.approx(
        100 * (1 - math.exp(-ex["multiplier"] * ex["totalHazard"] / ex["saturation"])), abs=0.01)
    first = items[0]
    assert first["recommendationId"] == "va-_-ubuntu-_-sudo"
    top = first["vulnerabilities"][0]
    assert top["id"] == "CVE-2021-3156" and top["kev"] and top["reason"] == "known exploited (KEV)"
    assert top["fixedVersion"] == "1.8.31-1ubuntu1.2"
    for it in items:  # each unit's vulnerabilities add up to the unit
        assert sum(v["contribution"] for v in it["vulnerabilities"]) == pytest.approx(it["contribution"], abs=0.01)
    # a Low-value device: multiplier 0.75
    api(env, "POST", f"/api/machines/{mid}/setDeviceValue", role="security_operator", json={"DeviceValue": "Low"})
    recompute(env)
    lower = api(env, "GET", f"/api/machines/{mid}")
    assert lower["exposureScore"] < m["exposureScore"]


def test_organisation_score_weights_and_inactive_devices(env: Env) -> None:
    focal_kb(env)
    ids = [import_ga(env, f"host-{i}") for i in range(3)]
    clean = Agent(env, "clean-1")
    clean.inventory([p for p in ga_packages() if p["name"] in ("base-files", "bash-completion", "hostname")])
    set_value(env, ids[0], "High")
    set_value(env, ids[1], "Low")
    recompute(env)
    scores = {i: api(env, "GET", f"/api/machines/{i}")["exposureScore"] for i in [*ids, clean.id]}
    assert scores[clean.id] == 0
    # No findings at all: level "None", as Defender shows (not "Low"), and the reason says so.
    clean_exposure = api(env, "GET", f"/api/machines/{clean.id}/exposure")
    assert api(env, "GET", f"/api/machines/{clean.id}")["exposureLevel"] == "None"
    assert clean_exposure["exposureLevelReason"] == "No findings"
    org = api(env, "GET", "/api/exposureScore")
    want = (scores[ids[0]] * 1 + scores[ids[1]] * 0.75 + scores[ids[2]] + 0) / (1 + 0.75 + 1 + 1)
    assert org["score"] == pytest.approx(want, abs=0.01)
    assert org["devices"] == 4
    assert org["exposureLevels"]["High"] + org["exposureLevels"]["Medium"] >= 3

    # a device not seen for more than 30 days leaves the score and has no exposure level
    with env.store.tenant(env.a.id) as s:
        s.execute(update(Device).where(Device.id == ids[0]).values(
            last_seen=dt.datetime.now(dt.UTC) - dt.timedelta(days=31)))
    recompute(env)
    org2 = api(env, "GET", "/api/exposureScore")
    assert org2["devices"] == 3
    assert org2["score"] == pytest.approx((scores[ids[1]] * 0.75 + scores[ids[2]]) / (0.75 + 1 + 1), abs=0.01)
    gone = api(env, "GET", f"/api/machines/{ids[0]}")
    assert gone["exposureLevel"] == "None"
    recs = api(env, "GET", "/api/recommendations")["value"]
    sudo = next(r for r in recs if r["id"] == "va-_-ubuntu-_-sudo")
    assert sudo["exposedMachinesCount"] == 2 and sudo["totalMachineCount"] == 2


def test_group_scores_history_and_scoped_callers(env: Env) -> None:
    focal_kb(env)
    web = make_group(env, "web", "web-*")
    import_ga(env, "web-1")
    db = Agent(env, "db-1")
    db.inventory(ga_packages())
    db.inventory([p for p in ga_packages() if p["source_name"] != "sudo"])  # sudo removed
    recompute(env)
    by_group = {g["rbacGroupName"]: g for g in api(env, "GET", "/api/exposureScore/ByMachineGroups")["value"]}
    assert by_group["web"]["rbacGroupId"] == web and by_group["web"]["devices"] == 1
    ungrouped = by_group["Ungrouped devices"]
    assert ungrouped["devices"] == 1 and ungrouped["score"] < by_group["web"]["score"]
    org = api(env, "GET", "/api/exposureScore")
    assert org["score"] == pytest.approx((by_group["web"]["score"] + ungrouped["score"]) / 2, abs=0.01)

    hist = api(env, "GET", "/api/exposureScore/history", params={"days": 7})["value"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert hist[-1]["date"] == today and hist[-1]["score"] == pytest.approx(org["score"], abs=0.01)
    ghist = api(env, "GET", "/api/exposureScore/history", params={"rbacGroupId": web})["value"]
    assert ghist[-1]["score"] == pytest.approx(by_group["web"]["score"], abs=0.01)

    # a caller limited to the web group sees the web group's score and figures only
    h = scoped_headers(env, "analyst", [web])
    mine = env.client.get("/api/exposureScore", headers=h).json()
    assert mine["score"] == pytest.approx(by_group["web"]["score"], abs=0.01) and mine["devices"] == 1
    groups = env.client.get("/api/exposureScore/ByMachineGroups", headers=h).json()["value"]
    assert [g["rbacGroupName"] for g in groups] == ["web"]
    assert env.client.get(f"/api/machines/{db.id}/exposure", headers=h).status_code == 404
    recs = {r["id"]: r for r in env.client.get("/api/recommendations", headers=h).json()["value"]}
    assert recs["va-_-ubuntu-_-sudo"]["exposedMachinesCount"] == 1
    everyone = {r["id"]: r for r in api(env, "GET", "/api/recommendations")["value"]}
    assert everyone["va-_-ubuntu-_-openssl"]["exposedMachinesCount"] == 2
    assert recs["va-_-ubuntu-_-openssl"]["exposedMachinesCount"] == 1


def test_active_alert_raises_the_device_score(env: Env) -> None:
    focal_kb(env)
    mid = import_ga(env, "focal-ga")
    recompute(env)
    before = api(env, "GET", f"/api/machines/{mid}/exposure")
    zlib = next(i for i in before["contributions"] if i["recommendationId"] == "va-_-ubuntu-_-zlib")
    cve = zlib["vulnerabilities"][0]["id"]
    api(env, "POST", f"/api/machines/{mid}/vulnerabilityAlerts", role="security_operator",
        json={"vulnerabilityId": cve, "alertId": "da637551", "title": "Suspicious zlib crash"})
    recompute(env)
    after = api(env, "GET", f"/api/machines/{mid}/exposure")
    assert after["exposureScore"] > before["exposureScore"]
    z2 = next(i for i in after["contributions"] if i["recommendationId"] == "va-_-ubuntu-_-zlib")
    assert z2["vulnerabilities"][0]["activeAlert"] and z2["vulnerabilities"][0]["reason"] == "active alert on this device"
    rec = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-zlib")
    assert rec["activeAlert"] and "ActiveAlert" in rec["associatedThreats"]
    # resolving the alert restores the score
    api(env, "POST", f"/api/machines/{mid}/vulnerabilityAlerts", role="security_operator",
        json={"vulnerabilityId": cve, "alertId": "da637551", "active": False})
    recompute(env)
    assert api(env, "GET", f"/api/machines/{mid}")["exposureScore"] == pytest.approx(before["exposureScore"])


def test_devices_no_feed_covers_are_counted_apart_from_none(env: Env) -> None:
    """A real Alpine 3.14 host, where only Ubuntu 20.04 advisories are imported, and a clean Ubuntu
    host: both scored "None", but the organisation's levels count the Alpine one as "not covered"."""
    from garrison.tvm import inventory

    focal_kb(env)
    clean = Agent(env, "clean-1")
    clean.inventory([p for p in ga_packages() if p["name"] in ("base-files", "bash-completion", "hostname")])
    data = Path(__file__).resolve().parents[2] / "data" / "inventories"
    alpine = inventory.import_agentless(env.store, env.a.id, "alpine-old",
                                        (data / "alpine-3.14.0.apk-installed").read_bytes(),
                                        os_ident=inventory.read_os_release(
                                            (data / "alpine-3.14.0.os-release").read_bytes()))
    recompute(env)
    assert api(env, "GET", f"/api/machines/{alpine['machineId']}")["exposureLevel"] == "None"
    levels = api(env, "GET", "/api/exposureScore")["exposureLevels"]
    assert levels == {"High": 0, "Medium": 0, "Low": 0, "None": 1, "NotCovered": 1}
