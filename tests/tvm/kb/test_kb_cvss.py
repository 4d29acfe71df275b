import json

import pytest

from garrison.tvm.kb.cvss import CvssError, base_score_v3, severity_from_score, severity_from_text


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
