import json

import pytest

from garrison.tvm.kb.cvss import (
    CvssError,
    base_score_v3,
    base_score_v4,
    pick_score,
    severity_from_score,
    severity_from_text,
    severity_source,
)


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),  # CVE-2021-3156 (NVD)
        ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N", 2.5),  # CVE-2021-23239 (NVD)
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),  # the textbook reflected XSS
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N", 5.3),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:H", 6.6),  # CVE-2021-3782 (NVD)
        ("CVSS:3.0/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 4.0),  # CVE-2014-9913, a v3.0 vector
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),  # no impact: score 0
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C", 9.8),  # temporal ignored
    ],
)
def test_base_score_of_known_vectors(vector: str, score: float) -> None:
    assert base_score_v3(vector) == score


@pytest.mark.parametrize(
    "vector",
    [
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no version prefix
        "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # A missing
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # bad value
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # repeated
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",  # unknown metric
    ],
)
def test_invalid_vectors_are_refused(vector: str) -> None:
    with pytest.raises(CvssError):
        base_score_v3(vector)


def test_calculator_agrees_with_every_nvd_score_in_the_sample(data) -> None:
    page = json.loads((data / "nvd" / "nvdcve-2.0-sample.json").read_text())
    checked = 0
    for item in page["vulnerabilities"]:
        for metric in item["cve"]["metrics"].get("cvssMetricV31", []):
            cvss = metric["cvssData"]
            assert base_score_v3(cvss["vectorString"]) == cvss["baseScore"]
            assert severity_from_score(cvss["baseScore"]).upper() == cvss["baseSeverity"]
            checked += 1
    assert checked == 3


def test_qualitative_ratings() -> None:
    assert [severity_from_score(s) for s in (None, 0.0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        "Unknown", "None", "Low", "Low", "Medium", "Medium", "High", "High", "Critical", "Critical"]
    assert severity_from_text("MODERATE") == "Medium"  # GHSA
    assert severity_from_text("negligible") == "Low"  # Ubuntu priority
    assert severity_from_text("whatever") is None


def test_v4_scores_are_computed_by_the_cvss_library() -> None:
    # FIRST's CVSS v4.0 specification examples (section 8 / calculator): full impact over the network is 9.3.
    assert base_score_v4("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") == 9.3
    assert base_score_v4("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N") == 0.0
    for bad in ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:4.0/AV:X", "", "CVSS:4.0/" + "A" * 600):
        with pytest.raises(CvssError):
            base_score_v4(bad)


def test_severity_order_nvd_then_osv_then_distro() -> None:
    """The merge (garrison.tvm.kb.pipeline) in every order: the best-ranked source's CVSS rates the CVE."""
    from garrison.tvm.kb.pipeline import _apply_info, _new_vuln_row
    from garrison.tvm.kb.records import RANK_DISTRO, RANK_NVD, RANK_PACKAGE_DB, VulnInfo

    distro = (VulnInfo(severity="Low"), RANK_DISTRO)
    osv = (VulnInfo(cvss_v3_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", cvss_v3_score=9.8), RANK_PACKAGE_DB)
    nvd_v4 = (VulnInfo(cvss_v4_vector="CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:L/SC:N/SI:N/SA:N",
                       cvss_v4_score=4.8), RANK_NVD)
    import itertools

    for order in itertools.permutations([distro, osv, nvd_v4]):
        row = _new_vuln_row("CVE-2024-0001", None)
        for info, rank in order:
            _apply_info(row, info, rank)
        assert (row["severity"], severity_source(row)) == ("Medium", "NVD CVSS v4.0"), order
        assert pick_score(row) == ("v4", 4.8)
    for order in itertools.permutations([distro, osv]):
        row = _new_vuln_row("CVE-2024-0001", None)
        for info, rank in order:
            _apply_info(row, info, rank)
        assert (row["severity"], severity_source(row)) == ("Critical", "OSV CVSS v3.1")
    row = _new_vuln_row("CVE-2024-0001", None)
    _apply_info(row, *distro)
    assert (row["severity"], severity_source(row)) == ("Low", "Distribution priority")
    assert severity_source(_new_vuln_row("CVE-2024-0001", None)) == "None"
