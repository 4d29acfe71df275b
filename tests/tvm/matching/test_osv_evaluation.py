"""The OSV schema's evaluation algorithm (``IsVulnerable``), case by case, with real version schemes."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.tvm.matching import evaluate, prepare_entry, smallest_version


def entry(ecosystem: str, events: list[dict[str, str]] | None = None, versions: list[str] | None = None,
          kind: str = "ECOSYSTEM", ranges: list[dict[str, Any]] | None = None) -> Any:
    if ranges is None:
        ranges = [{"type": kind, "events": events}] if events is not None else []
    return prepare_entry(ecosystem, "TEST-1", "osv", "affected", ranges, versions or [])


def vulnerable(e: Any, version: str) -> bool:
    return evaluate(e, version).affected


def fix(e: Any, version: str, ecosystem: str) -> str | None:
    v = evaluate(e, version)
    return smallest_version(ecosystem, v.fixes) if v.affected and v.fixes else None


# --- the spec's examples ------------------------------------------------------------------

def test_unfixed_every_version_is_affected() -> None:
    e = entry("npm", [{"introduced": "0"}], kind="SEMVER")
    assert all(vulnerable(e, v) for v in ("0.0.1", "1.0.0", "99.0.0-rc.1"))
    assert evaluate(e, "1.0.0").fixes == []


def test_fixed_everything_before_the_fix() -> None:
    e = entry("npm", [{"introduced": "0"}, {"fixed": "1.0.2"}], kind="SEMVER")
    assert vulnerable(e, "1.0.1") and vulnerable(e, "1.0.2-rc.1")
    assert not vulnerable(e, "1.0.2") and not vulnerable(e, "2.0.0")
    assert fix(e, "0.9.0", "npm") == "1.0.2"


def test_multiple_ranges_in_one_event_list() -> None:
    e = entry("npm", [{"introduced": "1.0.0"}, {"fixed": "1.0.2"}, {"introduced": "3.0.0"}, {"fixed": "3.2.5"}],
              kind="SEMVER")
    assert [vulnerable(e, v) for v in ("0.9.9", "1.0.0", "1.0.1", "1.0.2", "2.5.0", "3.0.0", "3.2.4", "3.2.5")] == \
        [False, True, True, False, False, True, True, False]
    assert fix(e, "1.0.1", "npm") == "1.0.2"
    assert fix(e, "3.1.0", "npm") == "3.2.5"


def test_last_affected_is_inclusive() -> None:
    e = entry("Maven", [{"introduced": "0"}, {"last_affected": "2.1.214"}])
    assert vulnerable(e, "2.1.214") and not vulnerable(e, "2.1.215")
    assert fix(e, "2.1.0", "Maven") is None  # no fixed event: "affected, no fix yet"


def test_limit_bounds_the_range() -> None:
    e = entry("PyPI", [{"introduced": "1.0"}, {"limit": "2.0"}])
    assert vulnerable(e, "1.5") and not vulnerable(e, "2.0") and not vulnerable(e, "3.0")
    star = entry("PyPI", [{"introduced": "1.0"}, {"limit": "*"}])
    assert vulnerable(star, "999.0")
    two = entry("PyPI", [{"introduced": "1.0"}, {"limit": "1.5"}, {"limit": "3.0"}])
    assert vulnerable(two, "2.0")  # before *some* limit is enough


def test_events_are_sorted_before_evaluation() -> None:
    # PYSEC-2023-192 (urllib3) lists its events out of order.
    e = entry("PyPI", [{"introduced": "2.0.0"}, {"fixed": "2.0.6"}, {"introduced": "0"}, {"fixed": "1.26.17"}])
    assert vulnerable(e, "1.25.8") and not vulnerable(e, "1.26.17") and vulnerable(e, "2.0.5")
    assert not vulnerable(e, "2.0.6")
    assert fix(e, "1.25.8", "PyPI") == "1.26.17"
    assert fix(e, "2.0.1", "PyPI") == "2.0.6"


def test_explicit_versions_list() -> None:
    e = entry("PyPI", versions=["1.0", "1.1"])
    assert vulnerable(e, "1.0") and not vulnerable(e, "1.0.1")
    # A version in the list is affected even when no range covers it.
    both = entry("PyPI", [{"introduced": "2.0"}, {"fixed": "2.1"}], versions=["1.5"])
    assert vulnerable(both, "1.5") and vulnerable(both, "2.0") and not vulnerable(both, "1.6")


def test_git_ranges_are_left_to_the_versions_list() -> None:
    e = entry("PyPI", ranges=[{"type": "GIT", "repo": "https://example.org/r",
                               "events": [{"introduced": "0"}, {"fixed": "a" * 40}]}], versions=["1.0"])
    assert vulnerable(e, "1.0") and not vulnerable(e, "1.1")


# --- ecosystem orders -----------------------------------------------------------------------

@pytest.mark.parametrize(("version", "want"), [
    ("1.8.31-1ubuntu1", True), ("1.8.31-1ubuntu1.1", True), ("1.8.31-1ubuntu1.2", False),
    ("1.8.31-1ubuntu1.2~esm1", True),  # '~' sorts before the end: a pre-release of the fix
    ("1:1.0-1", False),  # any epoch beats no epoch
])
def test_dpkg_order(version: str, want: bool) -> None:
    e = entry("Ubuntu:20.04:LTS", [{"introduced": "0"}, {"fixed": "1.8.31-1ubuntu1.2"}])
    assert vulnerable(e, version) is want


@pytest.mark.parametrize(("version", "want"), [
    ("1.2.11-r3", True), ("1.2.12-r0", False), ("1.2.12_rc1-r0", True), ("1.2.12-r1", False),
])
def test_apk_order(version: str, want: bool) -> None:
    e = entry("Alpine:v3.15", [{"introduced": "0"}, {"fixed": "1.2.12-r0"}])
    assert vulnerable(e, version) is want


def test_pep440_order() -> None:
    e = entry("PyPI", [{"introduced": "5.1"}, {"fixed": "5.2b1"}])
    assert vulnerable(e, "5.1") and vulnerable(e, "5.1.2") and vulnerable(e, "5.2a1")
    assert not vulnerable(e, "5.2b1") and not vulnerable(e, "5.0") and not vulnerable(e, "5.2")


def test_rpm_epoch() -> None:
    e = entry("Rocky Linux:8", [{"introduced": "0"}, {"fixed": "1:11.0.13.0.8-1.el8_4"}])
    assert vulnerable(e, "1:11.0.12.0.7-0.el8_4") and vulnerable(e, "0:11.0.99-1.el8")
    assert not vulnerable(e, "1:11.0.13.0.8-1.el8_4") and not vulnerable(e, "2:1.0-1.el8")


def test_rpm_version_without_epoch_takes_the_advisorys() -> None:
    # Plain `rpm -qa` prints no epoch: java-11-openjdk-11.0.13.0.8-1.el8_4 *is* the fixed build
    # (RLSA-2021:3891, epoch 1), not an epoch-0 build older than every epoch-1 one.
    e = entry("Rocky Linux:8", [{"introduced": "0"}, {"fixed": "1:11.0.13.0.8-1.el8_4"}])
    assert not vulnerable(e, "11.0.13.0.8-1.el8_4") and vulnerable(e, "11.0.12.0.7-0.el8_4")


def test_rpm_module_stream_fix_applies_to_its_stream_only() -> None:
    # RLSA-2024:3671 (ruby:3.3 module) must not reach the default non-modular ruby 3.0 of Rocky 9.
    e = entry("Rocky Linux:9", [{"introduced": "0"}, {"fixed": "0:3.3.1-2.module+el9.4.0+20012+8d1c8b0a"}])
    assert not vulnerable(e, "3.0.7-165.el9_5")
    assert vulnerable(e, "3.3.0-1.module+el9.3.0+1000+aaaaaaaa")
    assert not vulnerable(e, "3.1.4-1.module+el9.2.0+1000+aaaaaaaa")  # the ruby:3.1 stream


def test_fix_of_a_range_that_did_not_match_is_not_the_fix() -> None:
    # NVD-style overlapping ranges: <=3.0 and [1.0, 1.4); 0.9 is only in the first, which has no fix.
    e = prepare_entry("CPE", "T", "nvd", "affected", [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "3.0"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.4"}]}], [])
    assert evaluate(e, "0.9").affected and evaluate(e, "0.9").fixes == []


# --- robustness -------------------------------------------------------------------------------

def test_unreadable_bounds_err_on_the_side_of_reporting() -> None:
    # An unreadable "fixed" cannot close the range; an unreadable "introduced" counts as "0".
    e = entry("PyPI", [{"introduced": "0"}, {"fixed": "not a version!"}])
    assert vulnerable(e, "99.0") and e.warnings
    e = entry("PyPI", [{"introduced": "not a version!"}, {"fixed": "2.0"}])
    assert vulnerable(e, "1.0") and not vulnerable(e, "2.0")


def test_an_unorderable_installed_version_matches_only_the_versions_list() -> None:
    e = entry("PyPI", [{"introduced": "0"}], versions=["weird version"])
    assert vulnerable(e, "weird version")
    assert not vulnerable(e, "another weird one")


def test_smallest_fix_over_several_candidates() -> None:
    assert smallest_version("Ubuntu:20.04:LTS", ["2.31-0ubuntu9.7", "2.31-0ubuntu9.2", "2.31-0ubuntu9.10"]) == \
        "2.31-0ubuntu9.2"
    assert smallest_version("PyPI", ["1.26.18", "1.26.5", "2.0.7"]) == "1.26.5"


def test_the_fix_is_one_every_advisory_agrees_on() -> None:
    from garrison.tvm.matching import _first_fix

    dsa = entry("Debian:12", [{"introduced": "0"}, {"fixed": "1.2-1+deb12u1"}])
    tracker = entry("Debian:12", [{"introduced": "0"}, {"fixed": "1.2-1+deb12u2"}])  # u1 was incomplete
    fixes = {"1.2-1+deb12u1": "DSA", "1.2-1+deb12u2": "DEBIAN-CVE"}
    assert _first_fix("Debian:12", fixes, [dsa, tracker]) == "1.2-1+deb12u2"
    assert _first_fix("Debian:12", fixes, [dsa]) == "1.2-1+deb12u1"
    open_entry = entry("Debian:12", [{"introduced": "0"}])  # no fix anywhere: the lowest one is still named
    assert _first_fix("Debian:12", fixes, [dsa, tracker, open_entry]) == "1.2-1+deb12u1"
