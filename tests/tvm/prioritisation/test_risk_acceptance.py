"""Exceptions: justifications (risk reduced or not), group and global scope, suspension, expiry,
cancellation, and the 'after exceptions' figures of recommendations."""

from __future__ import annotations

import datetime as dt

import pytest

from garrison.tvm.prioritisation import refresh
from tests.tvm.prioritisation.conftest import (
    Agent,
    Env,
    api,
    focal_kb,
    ga_packages,
    import_ga,
    make_group,
    recompute,
    scoped_headers,
)

SUDO = "va-_-ubuntu-_-sudo"


def fleet(env: Env) -> tuple[int, int, str, str]:
    """web-1 in group 'web', db-1 in group 'db'; both the Ubuntu 20.04 GA host."""
    focal_kb(env)
    web, db = make_group(env, "web", "web-*"), make_group(env, "db", "db-*")
    w = import_ga(env, "web-1")
    d = Agent(env, "db-1")
    d.inventory(ga_packages())
    recompute(env)
    return web, db, w, d.id


def score(env: Env, mid: str) -> float:
    return float(api(env, "GET", f"/api/machines/{mid}")["exposureScore"])


def except_(env: Env, justification: str, groups: list[int] | None = None, role: str = "security_operator",
            expect: int = 201, **extra: object) -> dict:
    body: dict[str, object] = {"recommendationId": SUDO, "justification": justification,
                               "justificationContext": "tested", **extra}
    if groups is None:
        body["scope"] = "Global"
    else:
        body["rbacGroupIds"] = groups
    return dict(api(env, "POST", "/api/recommendationExceptions", role=role, expect=expect, json=body))


def test_risk_reducing_group_exception_lowers_exposure(env: Env) -> None:
    web, db, w, d = fleet(env)
    before = {m: score(env, m) for m in (w, d)}
    org_before = api(env, "GET", "/api/exposureScore")["score"]
    rec_before = api(env, "GET", f"/api/recommendations/{SUDO}")
    exc = except_(env, "ThirdPartyControl", [web])
    assert exc["status"] == "Active" and exc["riskReduced"] and exc["scope"] == "DeviceGroups"
    assert [g["rbacGroupName"] for g in exc["deviceGroups"]] == ["web"]
    assert score(env, w) < before[w] and score(env, d) == before[d]
    assert api(env, "GET", "/api/exposureScore")["score"] < org_before
    rec = api(env, "GET", f"/api/recommendations/{SUDO}")
    assert rec["status"] == "PartialException"
    assert rec["exposedMachinesCount"] == 2 and rec["exposedMachinesAfterExceptions"] == 1
    assert rec["exposureImpactAfterExceptions"] < rec["exposureImpact"]
    assert rec["exposureImpact"] == pytest.approx(rec_before["exposureImpact"], abs=0.5)
    # the device page says why: the sudo contribution is excepted
    ex = api(env, "GET", f"/api/machines/{w}/exposure")
    sudo = next(i for i in ex["contributions"] if i["recommendationId"] == SUDO)
    assert sudo["riskReduced"] and sudo["contribution"] == 0 and sudo["exceptionJustification"] == "ThirdPartyControl"
    # both groups excepted: a full exception
    except_(env, "AlternateMitigation", [db])
    assert api(env, "GET", f"/api/recommendations/{SUDO}")["status"] == "Exception"


def test_risk_accepted_changes_no_score(env: Env) -> None:
    web, _db, w, _d = fleet(env)
    before = score(env, w)
    exc = except_(env, "Risk accepted", [web])  # the portal's wording is accepted too
    assert exc["justification"] == "RiskAccepted" and not exc["riskReduced"]
    assert score(env, w) == before
    rec = api(env, "GET", f"/api/recommendations/{SUDO}")
    assert rec["status"] == "PartialException" and rec["exposedMachinesAfterExceptions"] == 2
    # a group that has an exception cannot get a second one
    dup = except_(env, "PlannedRemediation", [web], expect=409)
    assert "already has an exception" in dup["error"]["message"]


def test_global_exception_suspends_group_exceptions(env: Env) -> None:
    web, _db, w, _d = fleet(env)
    before = score(env, w)
    group_exc = except_(env, "ThirdPartyControl", [web])
    reduced = score(env, w)
    assert reduced < before
    # only an admin who sees every group may create a global exception
    except_(env, "RiskAccepted", None, role="security_operator", expect=403)
    glob = except_(env, "RiskAccepted", None, role="admin")
    assert glob["scope"] == "Global" and glob["deviceGroups"] == []
    suspended = api(env, "GET", f"/api/recommendationExceptions/{group_exc['id']}")
    assert suspended["status"] == "Suspended"
    assert score(env, w) == before  # the global (risk accepted) decides for every group
    assert api(env, "GET", f"/api/recommendations/{SUDO}")["status"] == "Exception"
    except_(env, "RiskAccepted", None, role="admin", expect=409)
    api(env, "POST", f"/api/recommendationExceptions/{glob['id']}/cancel", role="admin", json={})
    assert api(env, "GET", f"/api/recommendationExceptions/{group_exc['id']}")["status"] == "Active"
    assert score(env, w) == reduced
    listed = api(env, "GET", "/api/recommendationExceptions")["value"]
    assert {(e["id"], e["status"]) for e in listed} == {(group_exc["id"], "Active"), (glob["id"], "Cancelled")}


def test_exceptions_expire(env: Env) -> None:
    web, db, w, _d = fleet(env)
    before = score(env, w)
    exc = except_(env, "AlternateMitigation", [web], durationDays=1)
    assert score(env, w) < before
    refresh(env.store, env.a.id, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    assert score(env, w) == before
    got = api(env, "GET", f"/api/recommendationExceptions/{exc['id']}")
    assert got["status"] == "Expired" and got["statusLastModifiedBy"] == "System"
    assert api(env, "GET", "/api/recommendationExceptions", params={"$filter": "status eq 'Expired'"})["value"]
    past = except_(env, "RiskAccepted", [db], expect=400, expiresOn="2020-01-01T00:00:00Z")
    assert "future" in past["error"]["message"]


def test_cancel_per_group_or_all(env: Env) -> None:
    web, db, _w, _d = fleet(env)
    exc = except_(env, "ThirdPartyControl", [web, db])
    assert api(env, "GET", f"/api/recommendations/{SUDO}")["status"] == "Exception"
    one = api(env, "POST", f"/api/recommendationExceptions/{exc['id']}/cancel", role="security_operator",
              json={"rbacGroupIds": [db]})
    assert {g["rbacGroupName"]: g["status"] for g in one["deviceGroups"]} == {"web": "Active", "db": "Cancelled"}
    assert one["status"] == "Active"
    assert api(env, "GET", f"/api/recommendations/{SUDO}")["status"] == "PartialException"
    rest = api(env, "POST", f"/api/recommendationExceptions/{exc['id']}/cancel", role="security_operator", json={})
    assert rest["status"] == "Cancelled"
    assert api(env, "GET", f"/api/recommendations/{SUDO}")["status"] == "Active"
    api(env, "POST", f"/api/recommendationExceptions/{exc['id']}/cancel", role="security_operator", json={},
        expect=409)


def test_group_limited_callers(env: Env) -> None:
    web, db, _w, _d = fleet(env)
    exc_db = except_(env, "RiskAccepted", [db])
    h = scoped_headers(env, "security_operator", [web])
    r = env.client.get(f"/api/recommendationExceptions/{exc_db['id']}", headers=h)
    assert r.status_code == 404
    r = env.client.post("/api/recommendationExceptions", headers=h, json={
        "recommendationId": SUDO, "justification": "RiskAccepted", "rbacGroupIds": [db]})
    assert r.status_code == 404
    r = env.client.post("/api/recommendationExceptions", headers=h, json={
        "recommendationId": SUDO, "justification": "RiskAccepted", "scope": "Global"})
    assert r.status_code == 403
    r = env.client.post("/api/recommendationExceptions", headers=h, json={
        "recommendationId": SUDO, "justification": "ThirdPartyControl", "rbacGroupIds": [web]})
    assert r.status_code == 201, r.text
    mine = env.client.get("/api/recommendationExceptions", headers=h).json()["value"]
    assert [e["id"] for e in mine] == [r.json()["id"]]
    # the group-limited view of the recommendation: both of its groups excepted → full exception
    seen = env.client.get(f"/api/recommendations/{SUDO}", headers=h).json()
    assert seen["status"] == "Exception" and seen["exposedMachinesCount"] == 1
    assert seen["exposedMachinesAfterExceptions"] == 0
