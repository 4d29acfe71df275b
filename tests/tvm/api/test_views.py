"""The hunting views return the tenant's inventory and findings with Defender's column names."""

from __future__ import annotations

from garrison.tvm import matching, views
from garrison.tvm.kb import import_paths
from tests.tvm.api.conftest import FOCAL, Env, import_ga


def test_hunting_views(env: Env) -> None:
    result = import_paths(env.store, [FOCAL])
    matching.rematch_changed(env.store, result.changed_packages)
    dev = import_ga(env)
    import_ga(env, "other-tenant-host", tenant="b")
    with env.store.tenant(env.a.id) as s:
        inventory = views.rows(s, "DeviceTvmSoftwareInventory", limit=10_000)
        vulns = views.rows(s, "DeviceTvmSoftwareVulnerabilities", limit=10_000)
    assert len(inventory) == 221
    sudo = next(r for r in inventory if r["SoftwareName"] == "sudo")
    assert sudo == {"TenantId": env.a.id, "DeviceId": dev["machineId"], "DeviceName": "focal-ga",
                    "OSPlatform": "Linux", "OSVersion": "20.04", "OSArchitecture": "", "SoftwareVendor": "ubuntu",
                    "SoftwareName": "sudo", "SoftwareVersion": "1.8.31-1ubuntu1", "EndOfSupportStatus": "",
                    "ProductCodeCpe": None}
    assert len(vulns) == 140
    baron = next(r for r in vulns if r["CveId"] == "CVE-2021-3156")
    assert (baron["SoftwareName"], baron["VulnerabilitySeverityLevel"], baron["RecommendedSecurityUpdate"],
            baron["RecommendedSecurityUpdateId"]) == ("sudo", "High", "USN-4705-1", "1.8.31-1ubuntu1.2")
    assert {r["DeviceName"] for r in vulns} == {"focal-ga"}  # tenant B's host is not in tenant A's rows
