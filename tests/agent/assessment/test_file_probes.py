"""file_exists, file_mode, file_owner, file_regex and system_files on real files."""

from __future__ import annotations

import os

from tests.agent.assessment.tree import Tree


def accounts(tree: Tree) -> None:
    tree.copy("debian12/etc/passwd")
    tree.copy("debian12/etc/group")


def test_file_exists_with_glob(tree: Tree) -> None:
    assert tree.probe("file_exists", path="/boot/grub*/grub.cfg").status == "fail"
    tree.write("/boot/grub2/grub.cfg", "set timeout=5\n")
    out = tree.probe("file_exists", path="/boot/grub*/grub.cfg")
    assert (out.status, out.file) == ("pass", "/boot/grub2/grub.cfg")
    assert tree.probe("file_exists", path="/etc/cron.allow", expect="absent").status == "pass"


def test_file_mode_limits_and_required_bits(tree: Tree) -> None:
    tree.write("/etc/shadow", "root:*:19000:0:99999:7:::\n", mode=0o640)
    assert tree.probe("file_mode", path="/etc/shadow", max_mode="0640").status == "pass"
    os.chmod(tree.p("/etc/shadow"), 0o644)
    out = tree.probe("file_mode", path="/etc/shadow", max_mode="0640")
    assert (out.status, out.value, out.file) == ("fail", "0644", "/etc/shadow")

    tree.mkdir("/tmp", mode=0o777)
    assert tree.probe("file_mode", path="/tmp", require="1000").status == "fail"
    os.chmod(tree.p("/tmp"), 0o1777)
    out = tree.probe("file_mode", path="/tmp", require="1000")
    assert (out.status, out.value) == ("pass", "1777")


def test_file_mode_every_glob_match_must_comply(tree: Tree) -> None:
    tree.write("/etc/ssh/ssh_host_ed25519_key", "k", mode=0o600)
    tree.write("/etc/ssh/ssh_host_rsa_key", "k", mode=0o644)
    tree.write("/etc/ssh/ssh_host_rsa_key.pub", "k", mode=0o644)
    out = tree.probe("file_mode", path="/etc/ssh/ssh_host_*_key", max_mode="0640")
    assert (out.status, out.file) == ("fail", "/etc/ssh/ssh_host_rsa_key")


def test_file_mode_missing_file_follows_the_check(tree: Tree) -> None:
    assert tree.probe("file_mode", path="/etc/gshadow", max_mode="0640").status == "error"
    assert (
        tree.probe("file_mode", path="/etc/gshadow", max_mode="0640", missing="not_applicable").status
        == "not_applicable"
    )


def test_file_owner_uses_the_devices_own_names(tree: Tree) -> None:
    accounts(tree)  # group 'shadow' is GID 42 on Debian
    tree.write("/etc/shadow", "root:*:1::::::\n", mode=0o640)
    os.chown(tree.p("/etc/shadow"), 0, 42)
    out = tree.probe("file_owner", path="/etc/shadow", user=["root"], group=["root", "shadow"])
    assert (out.status, out.value) == ("pass", "root:shadow")
    assert tree.probe("file_owner", path="/etc/shadow", user=["root"], group=["root"]).status == "fail"
    os.chown(tree.p("/etc/shadow"), 1000, 42)
    out = tree.probe("file_owner", path="/etc/shadow", user=["root"])
    assert (out.status, out.value) == ("fail", "cloudsdk:shadow")


def test_file_regex_ignores_comments_and_reports_the_line(tree: Tree) -> None:
    tree.copy("debian12/etc/pam.d/common-auth")
    nullok = tree.probe(
        "file_regex",
        path="/etc/pam.d/common-auth",
        pattern=r"^\s*auth\s+.*pam_unix\.so.*\bnullok\b",
        expect="no_match",
    )
    assert nullok.status == "fail"
    assert "pam_unix.so nullok" in nullok.value
    assert tree.p("/etc/pam.d/common-auth").read_text().splitlines()[nullok.line - 1].strip() == nullok.value

    tree.write("/etc/security/limits.conf", "#*               hard    core            0\n")
    kw = {
        "path": ["/etc/security/limits.conf", "/etc/security/limits.d/*.conf"],
        "pattern": r"^\s*\*\s+hard\s+core\s+0\s*$",
    }
    assert tree.probe("file_regex", **kw).status == "fail"
    tree.write("/etc/security/limits.d/10-core.conf", "*    hard    core    0\n")
    out = tree.probe("file_regex", **kw)
    assert (out.status, out.file, out.line) == ("pass", "/etc/security/limits.d/10-core.conf", 1)


def test_file_regex_missing_file(tree: Tree) -> None:
    assert (
        tree.probe("file_regex", path="/proc/cmdline", pattern="audit=1", missing="error").status == "error"
    )
    assert tree.probe("file_regex", path="/etc/issue", pattern="x", expect="no_match").status == "pass"


def walk_roots() -> list[dict[str, object]]:
    return [{"path": "/usr/bin"}, {"path": "/usr/lib", "max_depth": 2}, {"path": "/etc"}]


def test_system_files_world_writable(tree: Tree) -> None:
    accounts(tree)
    tree.write("/usr/bin/ls", "elf", mode=0o755)
    tree.mkdir("/etc/tmpdir-sticky", mode=0o1777)  # sticky world-writable dir: allowed
    out = tree.probe("system_files", roots=walk_roots(), find="world_writable")
    assert out.status == "pass"
    tree.write("/etc/cron.d/job", "* * * * * root true\n", mode=0o666)
    tree.mkdir("/usr/lib/plugins", mode=0o777)
    out = tree.probe("system_files", roots=walk_roots(), find="world_writable")
    assert out.status == "fail"
    assert "/etc/cron.d/job" in out.message and "/usr/lib/plugins" in out.message


def test_system_files_suid_allowlist_and_depth(tree: Tree) -> None:
    accounts(tree)
    tree.write("/usr/bin/passwd", "elf", mode=0o4755)
    tree.write("/usr/lib/openssh/ssh-keysign", "elf", mode=0o4755)
    tree.write("/usr/lib/a/b/c/deep-helper", "elf", mode=0o4755)  # deeper than max_depth 2
    allow = ["/usr/bin/passwd", "/usr/lib/openssh/ssh-keysign"]
    assert tree.probe("system_files", roots=walk_roots(), find="suid", allow=allow).status == "pass"
    tree.write("/usr/bin/.hidden-shell", "elf", mode=0o4755)
    out = tree.probe("system_files", roots=walk_roots(), find="suid", allow=allow)
    assert (out.status, out.file) == ("fail", "/usr/bin/.hidden-shell")
    sgid = tree.probe("system_files", roots=walk_roots(), find="sgid", allow=[])
    assert sgid.status == "pass"  # the set-user-ID files have no set-group-ID bit


def test_system_files_unowned(tree: Tree) -> None:
    accounts(tree)
    tree.write("/usr/bin/tool", "x")
    assert tree.probe("system_files", roots=walk_roots(), find="unowned").status == "pass"
    orphan = tree.write("/usr/bin/orphan", "x")
    os.chown(orphan, 4242, 4242)
    out = tree.probe("system_files", roots=walk_roots(), find="unowned")
    assert (out.status, out.file) == ("fail", "/usr/bin/orphan")


def test_system_files_cap_is_an_error_never_a_pass(tree: Tree) -> None:
    accounts(tree)
    for i in range(20):
        tree.write(f"/usr/bin/tool{i}", "x")
    out = tree.probe("system_files", roots=walk_roots(), find="suid", max_entries=10)
    assert out.status == "error"
    assert "cap" in out.message
    # A violation found before the walk stopped is still reported.
    tree.write("/usr/sbin/backdoor", "x", mode=0o4755)
    found = tree.probe(
        "system_files", roots=[{"path": "/usr/sbin"}, {"path": "/usr/bin"}], find="suid", max_entries=10
    )
    assert (found.status, found.file) == ("fail", "/usr/sbin/backdoor")
