"""The shipped check definitions and the schema that guards them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from garrison.checks import CATEGORIES, CheckLoadError, builtin_checks, load_checks, parse_checks
from garrison.checks.schema import MAX_LOGIC_DEPTH

VALID = """
checks:
  - id: site.motd-present
    title: A message of the day exists
    description: /etc/motd exists.
    rationale: Site policy.
    remediation: Create /etc/motd.
    category: OS
    subcategory: Banners
    impact: 1
    test: {probe: file_exists, path: /etc/motd}
"""


def test_at_least_100_checks_with_complete_metadata() -> None:
    checks = builtin_checks()
    assert len(checks) >= 100
    for c in checks:
        assert c.title and c.description and c.rationale and c.remediation, c.id
        assert c.category in CATEGORIES
        assert 1 <= c.impact <= 10
        assert c.benchmarks, f"{c.id} has no benchmark reference"
    # Every Secure Score category is covered.
    assert set(Counter(c.category for c in checks)) == set(CATEGORIES)


def test_ids_are_stable_and_unique_across_files() -> None:
    checks = builtin_checks()
    assert len(checks.sources) == len(checks)
    assert all(c.id == c.id.lower() and " " not in c.id for c in checks)
    # A second load gives the same set and version (the agent reports the version; the server compares).
    again = load_checks()
    assert again.version == checks.version and list(again.checks) == list(checks.checks)


def test_both_distribution_families_are_covered() -> None:
    families = Counter(p.family for c in builtin_checks() for p in c.applies_to)
    assert families["linux"] > 50
    assert families["debian"] >= 2 and families["rhel"] >= 2


def test_the_issue_topics_are_covered() -> None:
    ids = set(builtin_checks().checks)
    for wanted in [
        "ssh.permit-root-login",
        "net.firewall-active",
        "updates.unattended-upgrades",
        "updates.dnf-automatic",
        "kernel.aslr",
        "kernel.suid-dumpable",
        "kernel.core-limits",
        "fs.tmp-noexec",
        "fs.dev-shm-noexec",
        "pw.login-defs-max-days",
        "acct.password-max-age",
        "acct.uid0-only-root",
        "sudo.use-pty",
        "audit.auditd-running",
        "mac.apparmor-enabled",
        "mac.selinux-enforcing",
        "perm.world-writable-files",
        "perm.unexpected-suid",
        "time.sync-enabled",
        "svc.telnet-server",
        "svc.rsh-server",
        "svc.tftp-server",
        "net.ip-forwarding",
        "net.accept-redirects",
        "net.tcp-syncookies",
        "kernel.cramfs-disabled",
        "kernel.usb-storage-disabled",
        "garrison.realtime-protection",
    ]:
        assert wanted in ids, wanted


def test_every_check_compiles_against_the_agent_probes() -> None:
    from garrison.agent.assessment import Evaluator

    ev = Evaluator(builtin_checks())
    assert len(ev.compiled) == len(builtin_checks())


def test_attack_techniques_are_well_formed() -> None:
    techniques = [t for c in builtin_checks() for t in c.mitre_techniques]
    assert len(techniques) > 150
    with pytest.raises(CheckLoadError, match="mitre_techniques"):
        parse_checks(VALID.replace("impact: 1", "impact: 1\n    mitre_techniques: [ATTACK-1]"))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("category: OS", "category: Kernel"), "category"),
        (("impact: 1", "impact: 11"), "impact"),
        (("id: site.motd-present", "id: Site Motd"), "id"),
        (("    test:", "    command: /bin/true\n    test:"), "command"),  # no field can carry code
        (("{probe: file_exists, path: /etc/motd}", "{probe: file_exists, probe2: x, all: []}"), "test"),
    ],
)
def test_invalid_checks_are_refused(change: tuple[str, str], error: str) -> None:
    with pytest.raises(CheckLoadError, match=error):
        parse_checks(VALID.replace(*change))


def test_logic_depth_is_bounded() -> None:
    logic = "{probe: file_exists, path: /etc/motd}"
    for _ in range(MAX_LOGIC_DEPTH):
        logic = "{all: [" + logic + "]}"
    with pytest.raises(CheckLoadError, match="deeper"):
        parse_checks(VALID.replace("{probe: file_exists, path: /etc/motd}", logic))


def test_not_yaml_is_refused() -> None:
    with pytest.raises(CheckLoadError, match="not valid YAML"):
        parse_checks("checks: [")
    with pytest.raises(CheckLoadError, match="'checks' list"):
        parse_checks("- id: x\n")


def test_site_checks_from_an_extra_directory(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(VALID)
    both = load_checks([tmp_path])
    assert "site.motd-present" in both and len(both) == len(builtin_checks()) + 1
    assert both.version != builtin_checks().version
    (tmp_path / "dup.yaml").write_text(VALID)
    with pytest.raises(CheckLoadError, match="already defined"):
        load_checks([tmp_path])
