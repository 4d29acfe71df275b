"""Red Hat: advisories filed under product streams match hosts that know only their release."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.tvm import inventory
from garrison.tvm.kb import import_paths
from garrison.tvm.kb.importers.osv import host_ecosystem
from tests.tvm.matching.conftest import DATA, Fleet, findings

REDHAT = DATA / "redhat"
CENTOS7 = Path(__file__).resolve().parents[2] / "data" / "inventories" / "centos-7.trivy.cdx.json"


@pytest.mark.parametrize(("stream", "host"), [
    ("Red Hat:enterprise_linux:7::server", "Red Hat:7"),
    ("Red Hat:enterprise_linux:9::appstream", "Red Hat:9"),
    ("Red Hat:enterprise_linux:9::baseos", "Red Hat:9"),
    ("Red Hat:enterprise_linux:10.1", "Red Hat:10"),
    # Extended-support streams need a subscription an inventory cannot see: never a plain host's.
    ("Red Hat:rhel_eus:9.2::baseos", "Red Hat:rhel_eus:9.2::baseos"),
    ("Red Hat:openshift:4.14::el9", "Red Hat:openshift:4.14::el9"),
    ("Rocky Linux:9", "Rocky Linux:9"),
    ("Ubuntu:20.04:LTS", "Ubuntu:20.04:LTS"),
])
def test_product_streams_map_to_the_host_release(stream: str, host: str) -> None:
    assert host_ecosystem(stream) == host


def test_centos7_against_red_hat_errata(fleet: Fleet) -> None:
    result = import_paths(fleet.store, [REDHAT])
    assert result.errors == [] and result.by_importer["osv"] == 3
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "centos7", CENTOS7.read_bytes())
    assert out["ecosystem"] == "Red Hat:7"
    got = {(f.package, f.vulnerability_id, f.fixed_version, tuple(f.advisory_ids))
           for f in findings(fleet, out["machineId"])}
    assert got == {
        # openssl-libs 1:1.0.2k-16.el7 is built from source rpm "openssl"; the four RHEL 7 streams of the
        # record give one finding per CVE, not four.
        ("openssl-libs", "CVE-2018-0734", "1:1.0.2k-19.el7", ("RHSA-2019:2304",)),
        ("openssl-libs", "CVE-2019-1559", "1:1.0.2k-19.el7", ("RHSA-2019:2304",)),
        ("bash", "CVE-2019-9924", "0:4.2.46-34.el7", ("RHSA-2020:1113",)),
        # RHSA-2019:3700 is for RHEL 8 only: its lower-looking fix must not reach a RHEL 7 host.
    }


def test_streams_are_stored_once_per_release(fleet: Fleet) -> None:
    from sqlalchemy import select

    from garrison.store.models.kb import AffectedPackage as AP

    import_paths(fleet.store, [REDHAT / "RHSA-2019_2304.json"])
    with fleet.store.system() as s:
        rows = s.execute(select(AP.ecosystem, AP.package).where(AP.advisory_id == "RHSA-2019:2304")).all()
    assert [tuple(r) for r in rows] == [("Red Hat:7", "openssl")]


def test_plain_rpm_qa_is_imported_with_a_warning(fleet: Fleet) -> None:
    # `rpm -qa` without --queryformat: no source rpm names, no epochs. Made from the CentOS 7 packages
    # of Red Hat's errata above, plus enough others to look like a host.
    lines = ["openssl-libs-1.0.2k-16.el7.x86_64", "bash-4.2.46-31.el7.x86_64"]
    lines += [f"pkg{i}-1.0-1.el7.x86_64" for i in range(20)]
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "plain", "\n".join(lines).encode(),
                                     os_ident=inventory.read_os_release(b'ID="centos"\nVERSION_ID="7"\n'))
    assert any("rpm -qa --queryformat" in w for w in out["warnings"])


def test_unknown_distro_is_named_in_a_warning(fleet: Fleet) -> None:
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "amzn", b"bash-4.2.46-34.amzn2.x86_64\n",
                                     os_ident=inventory.read_os_release(b'ID="amzn"\nVERSION_ID="2"\n'))
    assert any("amzn 2" in w and "matched against nothing" in w for w in out["warnings"])
