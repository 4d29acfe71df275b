import datetime as dt
import gzip
import json

from garrison.tvm.kb import import_paths
from tests.tvm.kb.kbutil import changes, counts, vuln


def test_kev_marks_exploited_in_the_wild(store, data) -> None:
    import_paths(store, data / "osv" / "ubuntu-focal")
    result = import_paths(store, data / "kev")
    assert result.errors == [] and result.records == 17
    v = vuln(store, "CVE-2021-3156")
    assert v.kev is True
    assert v.kev_date_added == dt.date(2022, 4, 6) and v.kev_due_date == dt.date(2022, 4, 27)
    assert v.kev_ransomware == "Unknown"
    assert v.public_exploit and v.exploit_verified
    assert v.sources == ["USN-4705-1"]  # KEV is no advisory: the evidence is unchanged
    assert "CVE-2021-3156" in result.changed_vulnerabilities
    assert [c["details"]["kev_date_added"] for c in changes(store, "exploit_verified", "CVE-2021-3156")] == [
        "2022-04-06"]


def test_kev_creates_missing_rows_with_its_description(store, data) -> None:
    import_paths(store, data / "kev")
    v = vuln(store, "CVE-2025-48384")
    assert v.kev and v.description.startswith("Git contains a link following vulnerability")
    assert v.cwes == ["CWE-59", "CWE-436"]
    assert vuln(store, "CVE-2025-53770").kev_ransomware == "Known"


def test_kev_is_idempotent_and_a_removal_clears_the_flag(store, data, tmp_path) -> None:
    import_paths(store, data / "kev")
    before = counts(store)
    again = import_paths(store, data / "kev")
    assert again.changed_vulnerabilities == set() and counts(store) == before
    catalog = json.loads((data / "kev" / "known_exploited_vulnerabilities.json").read_text())
    catalog["vulnerabilities"] = [v for v in catalog["vulnerabilities"] if v["cveID"] != "CVE-2021-4034"]
    (tmp_path / "kev.json").write_text(json.dumps(catalog))
    result = import_paths(store, tmp_path / "kev.json")
    gone = vuln(store, "CVE-2021-4034")
    assert not gone.kev and gone.kev_date_added is None and not gone.exploit_verified
    assert result.changed_vulnerabilities == {"CVE-2021-4034"}
    assert [c["vid"] for c in changes(store, "kev_removed")] == ["CVE-2021-4034"]


def test_malformed_kev_entry_is_reported_and_does_not_clear_others(store, data, tmp_path) -> None:
    import_paths(store, data / "kev")
    catalog = json.loads((data / "kev" / "known_exploited_vulnerabilities.json").read_text())
    catalog["vulnerabilities"][0]["dateAdded"] = "last tuesday"
    catalog["vulnerabilities"] = catalog["vulnerabilities"][:3]  # a partly broken catalog …
    (tmp_path / "kev.json").write_text(json.dumps(catalog))
    result = import_paths(store, tmp_path / "kev.json")
    assert result.records == 2
    assert len(result.errors) == 1
    assert "kev.json" in result.errors[0] and "vulnerabilities[0].dateAdded" in result.errors[0]
    assert vuln(store, "CVE-2021-3156").kev  # … must not remove what it failed to list


def test_epss_scores(store, data) -> None:
    import_paths(store, data / "osv" / "ubuntu-focal")
    result = import_paths(store, data / "epss")
    assert result.errors == []
    v = vuln(store, "CVE-2021-3156")
    assert v.epss == 0.99295 and v.epss_percentile == 0.99935
    assert v.sources == ["USN-4705-1"] and v.severity == "High"  # untouched by EPSS
    assert result.records == result.vulnerabilities == 1370
    again = import_paths(store, data / "epss")
    assert again.changed_vulnerabilities == set() and again.unchanged == 1370


def test_epss_with_first_model_comment_line_and_notable_moves(store, data, tmp_path) -> None:
    rows = gzip.decompress((data / "epss" / "epss_scores.csv.gz").read_bytes()).decode().splitlines()
    import_paths(store, data / "epss")
    # As FIRST publishes it: a comment line before the header. Two scores changed.
    lines = ["#model_version:v2025.03.14,score_date:2026-08-17T00:00:00+0000", *rows]
    for i, line in enumerate(lines):
        if line.startswith("CVE-2021-3156,"):
            lines[i] = "CVE-2021-3156,0.500000000,0.900000000"
        if line.startswith("CVE-2021-23239,"):
            lines[i] = "CVE-2021-23239,0.010300000,0.770000000"
    (tmp_path / "epss.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    result = import_paths(store, tmp_path / "epss.csv.gz")
    assert result.errors == []
    assert result.changed_vulnerabilities == {"CVE-2021-3156", "CVE-2021-23239"}
    assert vuln(store, "CVE-2021-3156").epss == 0.5
    moved = changes(store, "epss_changed")
    assert [(c["vid"], c["details"]) for c in moved] == [("CVE-2021-3156", {"old": 0.99295, "new": 0.5})]


def test_malformed_epss_rows_name_line_and_field(store, data, tmp_path) -> None:
    (tmp_path / "e.csv").write_text(
        "cve,epss,percentile\nCVE-2021-3156,0.99,0.99\nCVE-2021-X,0.1,0.1\nCVE-2020-0001,abc,0.1\nCVE-2020-0002,1.5,0.1\n"
    )
    result = import_paths(store, tmp_path / "e.csv")
    assert result.records == 1 and vuln(store, "CVE-2021-3156").epss == 0.99
    assert [e.split(": ", 1)[0].rsplit("/", 1)[-1] for e in result.errors] == ["e.csv:3", "e.csv:4", "e.csv:5"]
    assert "cve: not a CVE id" in result.errors[0]
    assert "epss/percentile: not a number" in result.errors[1]
    assert "outside [0, 1]" in result.errors[2]
