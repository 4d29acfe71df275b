"""Ids of tenant A's vulnerability-management objects, for the cross-tenant route test
(tests/server/test_route_security.py, EXTRA_ID_PROVIDERS)."""

from __future__ import annotations

from typing import Any

from garrison.tvm import matching
from garrison.tvm.kb import import_paths
from tests.server.conftest import Env, upload
from tests.tvm.api.conftest import FOCAL


def tvm_ids(env: Env, dev: dict[str, Any]) -> dict[str, str]:
    """Tenant A's device reports sudo 1.8.31-1ubuntu1; the KB has USN-4705-1 (CVE-2021-3156)."""
    result = import_paths(env.store, [FOCAL / "USN-4705-1.json"])
    matching.rematch_changed(env.store, result.changed_packages)
    pkg = {"manager": "dpkg", "name": "sudo", "version": "1.8.31-1ubuntu1", "ecosystem": "Ubuntu:20.04:LTS",
           "source_name": "sudo", "source_version": "1.8.31-1ubuntu1", "arch": "amd64"}
    r = upload(env.client, dev, "inventory", {"mode": "snapshot", "generation": 1, "packages": [pkg]})
    assert r.status_code == 200, r.text
    return {"software_id": "ubuntu-_-sudo", "cve_id": "CVE-2021-3156"}
