"""Demo content: the starter knowledge base and the demo fleet, offline, idempotent."""

from __future__ import annotations

from garrison.core import access
from garrison.store.db import Store
from garrison.tvm import demo
from garrison.tvm.findings import open_findings


def test_demo_loads_real_findings_and_is_idempotent(store: Store) -> None:
    with store.system() as s:
        tenant_id = access.create_tenant(s, "default").id
    first = demo.load(store, "default", quiet=True)
    assert first["demoDevices"] == first["demoDevicesCreated"] == 6
    assert first["knowledgeBase"]["records"] > 1000
    assert first["findings"] > 0 and first["vulnerabilities"] > 0
    with store.tenant(tenant_id) as s:
        found = open_findings(s)
    baron = [f for f in found if f.vulnerability_id == "CVE-2021-3156"]
    assert {(f.package, f.version, f.fixed_version) for f in baron} >= {("sudo", "1.8.31-1ubuntu1", "1.8.31-1ubuntu1.2")}
    # A Red Hat-family host matched through Red Hat's product streams, and a server binary by its CPE.
    got = {(f.package, f.vulnerability_id, f.source) for f in found}
    assert {("openssl-libs", "CVE-2019-1559", "osv"), ("postgresql", "CVE-2022-1552", "nvd")} <= got

    second = demo.load(store, "default", quiet=True)
    assert second["demoDevicesCreated"] == 0 and second["demoDevices"] == 6
    assert (second["findings"], second["vulnerabilities"]) == (first["findings"], first["vulnerabilities"])
    with store.tenant(tenant_id) as s:
        assert len(open_findings(s)) == len(found)
