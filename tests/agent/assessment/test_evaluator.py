"""The evaluator: combinators, applicability, preconditions, errors, and the shipped checks on
prepared Debian 12 and RHEL 9 trees and on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import pytest

from garrison.agent.assessment import CompileError, Evaluator
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import PROBES, Probe, ProbeParams, register_probe
from garrison.agent.collectors.base import AgentContext
from garrison.checks import CheckSet, builtin_checks, parse_checks
from tests.agent.assessment.tree import Tree

HEAD = """
x-meta: &meta
  title: t
  description: d
  rationale: r
  remediation: m
  category: OS
  subcategory: s
  impact: 5
checks:
"""
PRESENT = "{probe: file_exists, path: /etc/present}"
ABSENT = "{probe: file_exists, path: /etc/absent}"
ERROR = "{probe: file_mode, path: /etc/absent, max_mode: '0644'}"  # missing file -> error
NA = "{probe: mount, mountpoint: /srv, options: [nodev]}"  # not a separate mount -> not applicable


def checkset(body: str) -> CheckSet:
    checks = parse_checks(HEAD + body)
    return CheckSet({c.id: c for c in checks}, version="test")


def results(tree: Tree, body: str) -> dict[str, Any]:
    ev = Evaluator(checkset(body))
    return {r.check_id: r for r in ev.evaluate(tree.ctx()).results}


@pytest.fixture
def small(tree: Tree) -> Tree:
    tree.write("/etc/present", "x\n")
    tree.write("/etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    tree.write("/proc/mounts", "/dev/vda / ext4 rw 0 0\n")
    return tree


@pytest.mark.parametrize(
    ("logic", "expected"),
    [
        (f"all: [{PRESENT}, {PRESENT}]", "pass"),
        (f"all: [{PRESENT}, {ABSENT}]", "fail"),
        (f"all: [{ERROR}, {ABSENT}]", "fail"),  # a failing child decides, whatever the other
        (f"all: [{PRESENT}, {ERROR}]", "error"),  # never pass over what could not be read
        (f"all: [{PRESENT}, {NA}]", "pass"),
        (f"all: [{NA}, {NA}]", "not_applicable"),
        (f"any: [{ABSENT}, {PRESENT}]", "pass"),
        (f"any: [{ERROR}, {PRESENT}]", "pass"),
        (f"any: [{ABSENT}, {ERROR}]", "error"),
        (f"any: [{ABSENT}, {ABSENT}]", "fail"),
        (f"none: [{ABSENT}, {ABSENT}]", "pass"),
        (f"none: [{ABSENT}, {PRESENT}]", "fail"),
        (f"none: [{ABSENT}, {ERROR}]", "error"),
        (f"all: [{PRESENT}, {{any: [{ABSENT}, {{none: [{ABSENT}]}}]}}]", "pass"),
    ],
)
def test_combinators(small: Tree, logic: str, expected: str) -> None:
    r = results(small, f"  - {{<<: *meta, id: c.one, test: {{{logic}}}}}\n")["c.one"]
    assert r.status == expected


def test_failing_child_gives_the_evidence(small: Tree) -> None:
    small.write("/etc/login.defs", "PASS_MAX_DAYS 99999\nPASS_MIN_DAYS 1\n")
    body = """  - <<: *meta
    id: c.defs
    test:
      all:
        - {probe: config_value, path: /etc/login.defs, format: keyvalue, key: PASS_MIN_DAYS, op: ge, value: 1}
        - {probe: config_value, path: /etc/login.defs, format: keyvalue, key: PASS_MAX_DAYS, op: le, value: 365}
"""
    r = results(small, body)["c.defs"]
    assert (r.status, r.evidence.value, r.evidence.file, r.evidence.line) == (
        "fail",
        "99999",
        "/etc/login.defs",
        1,
    )


def test_applicability_by_os_family_and_version(small: Tree) -> None:
    body = f"""  - {{<<: *meta, id: c.rhel, applies_to: [{{family: rhel}}], test: {PRESENT}}}
  - {{<<: *meta, id: c.deb, applies_to: [{{family: debian}}], test: {PRESENT}}}
  - {{<<: *meta, id: c.deb13, applies_to: [{{family: debian, min_version: "13"}}], test: {PRESENT}}}
  - {{<<: *meta, id: c.ubuntu, applies_to: [{{family: debian, distro: ubuntu}}], test: {PRESENT}}}
  - {{<<: *meta, id: c.any, test: {PRESENT}}}
"""
    r = results(small, body)
    assert {k: v.status for k, v in r.items()} == {
        "c.rhel": "not_applicable",
        "c.deb": "pass",
        "c.deb13": "not_applicable",
        "c.ubuntu": "not_applicable",
        "c.any": "pass",
    }
    assert "debian 12" in r["c.rhel"].evidence.message
    small.write(
        "/etc/os-release", 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
    )
    r = results(small, body)
    assert (r["c.rhel"].status, r["c.deb"].status) == ("pass", "not_applicable")


def test_precondition(small: Tree) -> None:
    body = f"""  - {{<<: *meta, id: c.when-fails, when: {ABSENT}, test: {ABSENT}}}
  - {{<<: *meta, id: c.when-holds, when: {PRESENT}, test: {ABSENT}}}
  - {{<<: *meta, id: c.when-error, when: {ERROR}, test: {PRESENT}}}
"""
    r = results(small, body)
    assert r["c.when-fails"].status == "not_applicable"
    assert r["c.when-fails"].evidence.message.startswith("not applicable:")
    assert r["c.when-holds"].status == "fail"
    assert r["c.when-error"].status == "error"


def test_compile_errors_name_the_check() -> None:
    with pytest.raises(CompileError, match="c.bad.*unknown probe 'shell'"):
        Evaluator(checkset("  - {<<: *meta, id: c.bad, test: {probe: shell, cmd: id}}\n"))
    with pytest.raises(CompileError, match="c.bad2.*sysctl"):
        Evaluator(
            checkset("  - {<<: *meta, id: c.bad2, test: {probe: sysctl, key: kernel.x, value: 1, run: id}}\n")
        )


class _BoomParams(ProbeParams):
    pass


class _Boom(Probe[_BoomParams]):
    name: ClassVar[str] = "test_boom"
    Params = _BoomParams

    def run(self, env: Env, params: _BoomParams) -> Outcome:
        raise KeyError("bug")


def test_a_crashing_probe_is_an_error_result(small: Tree) -> None:
    register_probe(_Boom)
    try:
        r = results(small, "  - {<<: *meta, id: c.boom, test: {probe: test_boom}}\n")["c.boom"]
    finally:
        PROBES.remove("test_boom")
    assert r.status == "error"
    assert "KeyError" in r.evidence.message


def test_long_evidence_is_clipped_to_the_wire_bounds(small: Tree) -> None:
    small.write("/etc/long.conf", "Key " + "v" * 5000 + "\n")
    body = "  - {<<: *meta, id: c.long, test: {probe: config_value, path: /etc/long.conf, format: keyvalue, key: Key, value: x}}\n"
    r = results(small, body)["c.long"]
    assert r.status == "fail" and len(r.evidence.value) <= 1024 and len(r.evidence.message) <= 1024


# --- the shipped checks on prepared systems -------------------------------------------------

SYSCTL_DEBIAN = {
    "kernel/randomize_va_space": "2",
    "kernel/dmesg_restrict": "1",
    "kernel/kptr_restrict": "1",
    "kernel/yama/ptrace_scope": "1",
    "kernel/unprivileged_bpf_disabled": "2",
    "kernel/perf_event_paranoid": "3",
    "fs/protected_hardlinks": "1",
    "fs/protected_symlinks": "1",
    "fs/protected_fifos": "1",
    "fs/protected_regular": "2",
    "fs/suid_dumpable": "0",
    "net/ipv4/ip_forward": "0",
    "net/ipv4/tcp_syncookies": "1",
    "net/ipv4/conf/all/accept_redirects": "0",
    "net/ipv4/conf/default/accept_redirects": "1",
    "kernel/osrelease": "6.1.0-28-amd64",
}


def debian_tree(tree: Tree) -> Tree:
    """Debian 12 server: files from the packages (openssh-server, sudo, auditd) and a running kernel."""
    tree.copy("debian12/etc", "/etc")
    tree.copy("debian12/var", "/var")
    tree.copy("debian12/usr", "/usr")
    tree.link("/etc/os-release", "../usr/lib/os-release")
    os.chmod(tree.p("/etc/shadow"), 0o640)
    os.chmod(tree.p("/etc/sudoers"), 0o440)
    for key, value in SYSCTL_DEBIAN.items():
        tree.write(f"/proc/sys/{key}", value + "\n")
    tree.write(
        "/proc/mounts",
        "/dev/vda1 / ext4 rw,relatime 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0\n"
        "tmpfs /tmp tmpfs rw,nosuid,nodev,noexec 0 0\n",
    )
    tree.write("/proc/modules", "ext4 1 0 - Live 0x0\n")
    tree.write("/proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet\n")
    tree.write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae nx lm\n")
    tree.write(
        "/proc/net/tcp",
        "  sl  local_address rem_address   st\n"
        "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n",
    )
    tree.write("/lib/systemd/system/ssh.service", "[Unit]\n")
    tree.link("/etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
    tree.write("/lib/systemd/system/auditd.service", "[Unit]\n")
    tree.link(
        "/etc/systemd/system/multi-user.target.wants/auditd.service", "/lib/systemd/system/auditd.service"
    )
    tree.mkdir("/tmp", mode=0o1777)
    tree.mkdir("/root", mode=0o700)
    return tree


def statuses(ctx: AgentContext) -> dict[str, str]:
    return {r.check_id: r.status for r in Evaluator().evaluate(ctx).results}


def test_builtin_checks_on_a_debian_server(tree: Tree) -> None:
    s = statuses(debian_tree(tree).ctx())
    assert len(s) == len(builtin_checks())
    expected = {
        "ssh.permit-root-login": "fail",  # OpenSSH default prohibit-password
        "ssh.x11-forwarding": "fail",  # Debian ships X11Forwarding yes
        "ssh.use-pam": "pass",
        "ssh.permit-empty-passwords": "pass",
        "sudo.use-pty": "pass",
        "sudo.logfile": "fail",
        "audit.auditd-installed": "pass",
        "audit.auditd-enabled": "pass",
        "audit.rules-identity": "fail",  # the shipped audit.rules only sets buffers
        "audit.keep-logs": "fail",  # auditd.conf ships max_log_file_action = ROTATE
        "pw.login-defs-max-days": "fail",
        "pw.hash-algorithm": "pass",
        "pw.no-nullok": "fail",
        "perm.shadow": "pass",
        "acct.uid0-only-root": "pass",
        "kernel.aslr": "pass",
        "kernel.ptrace-scope": "pass",
        "net.accept-redirects": "fail",  # default.accept_redirects = 1
        "net.ip-forwarding": "pass",
        "fs.tmp-noexec": "pass",
        "fs.dev-shm-noexec": "fail",
        "fs.var-tmp-nodev": "not_applicable",
        "mac.selinux-enforcing": "not_applicable",
        "updates.dnf-automatic": "not_applicable",
        "updates.unattended-upgrades": "fail",
        "svc.telnet-server": "pass",
        "kernel.usb-storage-disabled": "fail",  # a modular kernel, nothing in modprobe.d
        "time.sync-enabled": "fail",
        "cron.crontab-permissions": "not_applicable",  # no cron package
    }
    assert {k: s[k] for k in expected} == expected


def rhel_tree(tree: Tree) -> Tree:
    """Rocky Linux 9 layout: rpmdb.sqlite, crypto-policies, SELinux, dnf-automatic."""
    import sqlite3

    tree.write(
        "/etc/os-release",
        'NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\n'
        'ID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
    )
    db = tree.p("/var/lib/rpm/rpmdb.sqlite")
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL)")
    con.executemany(
        "INSERT INTO Name VALUES (?, ?, 0)",
        [
            (n, i)
            for i, n in enumerate(
                [
                    "openssh-server",
                    "sudo",
                    "audit",
                    "chrony",
                    "dnf-automatic",
                    "libpwquality",
                    "systemd",
                    "logrotate",
                ]
            )
        ],
    )
    con.commit()
    con.close()
    tree.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n")
    tree.write(
        "/etc/ssh/sshd_config.d/50-redhat.conf",
        "Include /etc/crypto-policies/back-ends/opensshserver.config\nSyslogFacility AUTHPRIV\n"
        "ChallengeResponseAuthentication no\nGSSAPIAuthentication yes\nUsePAM yes\nX11Forwarding yes\n",
    )
    tree.write(
        "/etc/crypto-policies/back-ends/opensshserver.config",
        "Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes128-gcm@openssh.com,"
        "aes128-ctr\n",
    )
    tree.write("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    tree.write("/sys/fs/selinux/enforce", "1")
    tree.write("/etc/dnf/dnf.conf", "[main]\ngpgcheck=1\ninstallonly_limit=3\n")
    tree.write("/etc/yum.repos.d/rocky.repo", "[baseos]\nname=Rocky Linux $releasever - BaseOS\ngpgcheck=1\n")
    tree.write("/etc/dnf/automatic.conf", "[commands]\nupgrade_type = security\napply_updates = yes\n")
    tree.write("/usr/lib/systemd/system/dnf-automatic.timer", "[Timer]\n")
    tree.link(
        "/etc/systemd/system/timers.target.wants/dnf-automatic.timer",
        "/usr/lib/systemd/system/dnf-automatic.timer",
    )
    tree.write("/usr/lib/systemd/system/chronyd.service", "[Unit]\n")
    tree.link(
        "/etc/systemd/system/multi-user.target.wants/chronyd.service",
        "/usr/lib/systemd/system/chronyd.service",
    )
    tree.write(
        "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74::/usr/share/empty.sshd:/sbin/nologin\n"
    )
    tree.write("/etc/group", "root:x:0:\nsshd:x:74:\n")
    tree.write("/etc/shadow", "root:!!:19800:0:99999:7:::\nsshd:!!:19800::::::\n", mode=0o000)
    tree.write(
        "/etc/sudoers",
        "Defaults   !visiblepw\nroot\tALL=(ALL) \tALL\n%wheel\tALL=(ALL)\tALL\n#includedir /etc/sudoers.d\n",
        mode=0o440,
    )
    return tree


def test_builtin_checks_on_a_rhel_server(tree: Tree) -> None:
    s = statuses(rhel_tree(tree).ctx())
    expected = {
        "ssh.permit-root-login": "pass",
        "ssh.x11-forwarding": "fail",  # from 50-redhat.conf
        "ssh.strong-ciphers": "pass",  # from the crypto policy back-end
        "mac.selinux-enforcing": "pass",
        "mac.selinux-policy": "pass",
        "mac.apparmor-enabled": "not_applicable",
        "updates.dnf-automatic": "pass",
        "updates.dnf-gpgcheck": "pass",
        "updates.unattended-upgrades": "not_applicable",
        "updates.apt-signed": "not_applicable",
        "time.sync-enabled": "pass",
        "audit.auditd-installed": "pass",
        "sudo.use-pty": "fail",
        "pw.minimum-length": "fail",  # libpwquality installed, minlen defaults to 8
        "perm.shadow": "pass",  # RHEL: root:root 0000
    }
    assert {k: s[k] for k in expected} == expected


def test_builtin_checks_on_this_machine(tmp_path: Path) -> None:
    """Every check gives a result on the live system (its CPU and memory budget is measured by
    bench/bench_assessment.py, not here)."""
    ev = Evaluator()
    ctx = AgentContext(state_dir=tmp_path, agent_version="test")
    evaluation = ev.evaluate(ctx)
    assert len(evaluation.results) == len(builtin_checks()) >= 100
    assert evaluation.os.family == "debian"
    assert "/etc/login.defs" in evaluation.watched
    assert not any(p.startswith(("/proc/", "/sys/")) for p in evaluation.watched)
