"""sysctl, kernel_module, mount, package, service, listening, accounts, sudoers, firewall, agent."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from garrison.agent.assessment.env import Env
from garrison.agent.collectors.base import AgentContext
from tests.agent.assessment.tree import DATA, Tree, run_probe

# --- sysctl ---------------------------------------------------------------------------------


def test_sysctl_reads_proc_sys(tree: Tree) -> None:
    tree.write("/proc/sys/kernel/randomize_va_space", "2\n")
    tree.write("/proc/sys/net/ipv4/conf/all/rp_filter", "0\n")
    aslr = tree.probe("sysctl", key="kernel.randomize_va_space", value=2)
    assert (aslr.status, aslr.value, aslr.file) == ("pass", "2", "/proc/sys/kernel/randomize_va_space")
    assert tree.probe("sysctl", key="net.ipv4.conf.all.rp_filter", value=1).status == "fail"
    assert tree.probe("sysctl", key="kernel.kptr_restrict", op="ge", value=1).status == "error"
    missing = tree.probe("sysctl", key="kernel.yama.ptrace_scope", op="ge", value=1, missing="fail")
    assert missing.status == "fail" and "does not exist" in missing.message


def test_sysctl_on_this_machine_matches_proc(tmp_path: Path) -> None:
    """The live /proc/sys, read in small chunks (a large read fails with ENOMEM on /proc/sys)."""
    expected = Path("/proc/sys/kernel/randomize_va_space").read_text().strip()
    env = Env(AgentContext(state_dir=tmp_path, agent_version="test"))
    out = run_probe(env, "sysctl", key="kernel.randomize_va_space", value=expected)
    assert (out.status, out.value) == ("pass", expected)


# --- kernel modules -------------------------------------------------------------------------


def test_module_loaded_fails(tree: Tree) -> None:
    tree.write("/proc/modules", "usb_storage 81920 0 - Live 0x0000000000000000\nuas 32768 0 - Live 0x0\n")
    out = tree.probe("kernel_module", name="usb-storage")
    assert (out.status, out.file, out.line) == ("fail", "/proc/modules", 1)


def test_module_install_redirect_passes_blacklist_alone_fails(tree: Tree) -> None:
    tree.write("/proc/modules", "ext4 1 0 - Live 0x0\n")
    tree.write("/etc/modprobe.d/cramfs.conf", "blacklist cramfs\n")
    out = tree.probe("kernel_module", name="cramfs")
    assert out.status == "fail" and "only blacklisted" in out.message
    tree.write("/etc/modprobe.d/cramfs.conf", "blacklist cramfs\ninstall cramfs /bin/false\n")
    out = tree.probe("kernel_module", name="cramfs")
    assert (out.status, out.file, out.line) == ("pass", "/etc/modprobe.d/cramfs.conf", 2)
    assert tree.probe("kernel_module", name="dccp").status == "fail"  # nothing stops it


def test_module_state_from_the_kernel_build_configuration(tree: Tree) -> None:
    """This machine's kernel: no loadable modules (no /proc/modules), SQUASHFS built in, CRAMFS absent."""
    tree.p("/proc").mkdir()
    (tree.p("/proc/config.gz")).write_bytes((DATA / "config-6.18-nomodules.gz").read_bytes())
    cramfs = tree.probe("kernel_module", name="cramfs", kconfig="CONFIG_CRAMFS")
    assert (cramfs.status, cramfs.value) == ("pass", "unavailable")
    squash = tree.probe("kernel_module", name="squashfs", kconfig="CONFIG_SQUASHFS")
    assert (squash.status, squash.value) == ("fail", "built-in")
    # Without the symbol the kernel config cannot tell: error, not pass.
    assert tree.probe("kernel_module", name="cramfs").status == "error"


def test_module_built_as_module_falls_back_to_modprobe(tree: Tree) -> None:
    tree.write("/proc/modules", "ext4 1 0 - Live 0x0\n")
    tree.write("/proc/sys/kernel/osrelease", "6.1.0-28-amd64\n")
    tree.write("/boot/config-6.1.0-28-amd64", "CONFIG_MODULES=y\nCONFIG_USB_STORAGE=m\n")
    assert tree.probe("kernel_module", name="usb-storage", kconfig="CONFIG_USB_STORAGE").status == "fail"
    tree.write("/etc/modprobe.d/usb.conf", "install usb-storage /bin/true\n")
    assert tree.probe("kernel_module", name="usb-storage", kconfig="CONFIG_USB_STORAGE").status == "pass"
    # /etc shadows a same-named file in /lib (kmod's rule).
    tree.write(
        "/lib/modprobe.d/usb.conf", "install usb-storage /sbin/modprobe --ignore-install usb-storage\n"
    )
    assert tree.probe("kernel_module", name="usb-storage", kconfig="CONFIG_USB_STORAGE").status == "pass"


# --- mounts ---------------------------------------------------------------------------------

MOUNTS = """proc /proc proc rw,relatime 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev,size=24684084k 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,relatime 0 0
"""


def test_mount_options_from_proc_mounts(tree: Tree) -> None:
    tree.write("/proc/mounts", MOUNTS)
    assert tree.probe("mount", mountpoint="/tmp", separate=True).status == "pass"
    assert tree.probe("mount", mountpoint="/tmp", options=["noexec"]).status == "pass"
    shm = tree.probe("mount", mountpoint="/dev/shm", options=["noexec"])
    assert (shm.status, shm.line) == ("fail", 3)
    assert tree.probe("mount", mountpoint="/var/tmp", options=["nodev"]).status == "not_applicable"
    home = tree.probe("mount", mountpoint="/home", separate=True)
    assert home.status == "fail"
    assert (
        tree.probe("mount", mountpoint="/proc", options_any=["hidepid=2", "hidepid=invisible"]).status
        == "fail"
    )


def test_mount_fstab_must_keep_the_options(tree: Tree) -> None:
    tree.write("/proc/mounts", MOUNTS)
    tree.write(
        "/etc/fstab", "# <file system> <mount point> <type> <options>\ntmpfs /tmp tmpfs defaults,nosuid 0 0\n"
    )
    out = tree.probe("mount", mountpoint="/tmp", options=["noexec"])
    assert (out.status, out.file, out.line) == ("fail", "/etc/fstab", 2)
    assert "next mount" in out.message


def test_mount_last_entry_wins_for_overmounts(tree: Tree) -> None:
    tree.write("/proc/mounts", MOUNTS + "tmpfs /tmp tmpfs rw,relatime 0 0\n")
    assert tree.probe("mount", mountpoint="/tmp", options=["noexec"]).status == "fail"


def test_mount_escaped_paths(tree: Tree) -> None:
    tree.write("/proc/mounts", "/dev/sdb1 /srv/my\\040data ext4 rw,nodev 0 0\n")
    assert tree.probe("mount", mountpoint="/srv/my data", options=["nodev"]).status == "pass"


# --- packages -------------------------------------------------------------------------------


def test_package_from_dpkg_status(tree: Tree) -> None:
    tree.copy("debian12/var/lib/dpkg/status")
    ssh = tree.probe("package", names=["openssh-server"])
    assert ssh.status == "pass"
    assert ssh.value.startswith("openssh-server 1:9.2p1")
    assert tree.p(ssh.file).read_text().splitlines()[ssh.line - 1] == "Package: openssh-server"
    assert tree.probe("package", names=["telnetd", "telnet-server"], expect="absent").status == "pass"


def test_package_removed_with_config_files_is_not_installed(tree: Tree) -> None:
    """Ubuntu 18.04 status from Trivy's test data: git is 'deinstall ok config-files'."""
    tree.copy("ubuntu-18.04.dpkg-status", "/var/lib/dpkg/status")
    assert tree.probe("package", names=["git"]).status == "fail"
    assert tree.probe("package", names=["bash"]).status == "pass"


def test_package_from_rpmdb_sqlite_name_index(tree: Tree) -> None:
    import sqlite3

    db = tree.p("/var/lib/rpm/rpmdb.sqlite")
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL)")
    con.executemany("INSERT INTO Name VALUES (?, ?, 0)", [("openssh-server", 1), ("audit", 2), ("chrony", 3)])
    con.commit()
    con.close()
    assert tree.probe("package", names=["audit", "auditd"]).status == "pass"
    assert tree.probe("package", names=["telnet-server"], expect="absent").status == "pass"


def test_no_package_database_is_an_error(tree: Tree) -> None:
    assert tree.probe("package", names=["sudo"], expect="absent").status == "error"


# --- services -------------------------------------------------------------------------------


def test_service_enabled_from_wants_links(tree: Tree) -> None:
    tree.write("/lib/systemd/system/auditd.service", "[Unit]\n")
    assert tree.probe("service", units=["auditd.service"], expect="enabled").status == "fail"
    tree.link(
        "/etc/systemd/system/multi-user.target.wants/auditd.service", "/lib/systemd/system/auditd.service"
    )
    out = tree.probe("service", units=["auditd.service"], expect="enabled")
    assert (out.status, out.file) == ("pass", "/etc/systemd/system/multi-user.target.wants/auditd.service")
    assert tree.probe("service", units=["auditd.service"], expect="not_enabled").status == "fail"


def test_service_alias_and_mask(tree: Tree) -> None:
    tree.write("/lib/systemd/system/ssh.service", "[Install]\nAlias=sshd.service\n")
    tree.link("/etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
    tree.link("/etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service")
    assert tree.probe("service", units=["sshd.service"], expect="enabled").status == "pass"
    tree.link("/etc/systemd/system/ctrl-alt-del.target", "/dev/null")
    assert tree.probe("service", units=["ctrl-alt-del.target"], expect="masked").status == "pass"
    tree.link("/etc/systemd/system/ssh.service", "/dev/null")
    assert tree.probe("service", units=["ssh.service"], expect="enabled").status == "fail"


def test_service_active_with_systemd_and_without(tree: Tree) -> None:
    kw = {"units": ["auditd.service"], "expect": "active", "processes": ["auditd"]}
    # No systemd as PID 1: the process list decides.
    tree.write("/proc/1/comm", "init\n")
    assert tree.probe("service", **kw).status == "fail"
    tree.write("/proc/812/comm", "auditd\n")
    assert tree.probe("service", **kw).status == "pass"
    no_names = tree.probe("service", units=["auditd.service"], expect="active")
    assert no_names.status == "error"
    # systemd running: its runtime state decides.
    tree.mkdir("/run/systemd/system")
    tree.mkdir("/run/systemd/units")
    assert tree.probe("service", **kw).status == "fail"
    tree.link("/run/systemd/units/invocation:auditd.service", "3f1c2d")
    assert tree.probe("service", **kw).status == "pass"


# --- listening sockets ----------------------------------------------------------------------

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18402 1 0000000000000000 100 0 0 10 0
   1: 00000000:0017 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17863 1 0000000000000000 100 0 0 10 0
   2: 0100007F:809B 0100007F:9982 06 00000000:00000000 03:0000045A 00000000     0        0 0 3 000000003e375ecc
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:006F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20 1 0000000000000000 100 0 0 10 0
"""


def test_listening_ports(tree: Tree) -> None:
    tree.write("/proc/net/tcp", TCP)
    tree.write("/proc/net/tcp6", TCP6)
    telnet = tree.probe("listening", ports=[23])
    assert (telnet.status, telnet.value, telnet.line) == ("fail", "tcp 0.0.0.0:23", 3)
    assert tree.probe("listening", ports=[25], expect="local_only").status == "pass"  # 127.0.0.1:25
    assert tree.probe("listening", ports=[25]).status == "fail"
    assert tree.probe("listening", ports=[111], expect="local_only").status == "pass"  # ::1 is loopback
    assert tree.probe("listening", ports=[21]).status == "pass"
    assert tree.probe("listening", ports=[69], protocols=["udp"]).status == "error"  # no /proc/net/udp


# --- accounts -------------------------------------------------------------------------------


def test_accounts_on_debian_databases(tree: Tree) -> None:
    for f in ("passwd", "group", "shadow", "login.defs"):
        tree.copy(f"debian12/etc/{f}")
    for fact in (
        "uid0_only_root",
        "no_empty_passwords",
        "all_shadowed",
        "unique_uids",
        "unique_gids",
        "unique_usernames",
        "unique_group_names",
        "passwd_groups_exist",
        "root_gid_0",
        "shadow_group_empty",
        "no_legacy_plus",
    ):
        assert tree.probe("accounts", fact=fact).status == "pass", fact
    # postgres (UID 101) has /bin/bash on this Debian image.
    out = tree.probe("accounts", fact="system_accounts_nologin")
    assert out.status == "fail" and out.value == "postgres:/bin/bash"


def test_accounts_violations(tree: Tree) -> None:
    tree.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"
        "alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1000:1001::/home/bob:/bin/bash\n"
        "+::::::\n",
    )
    tree.write("/etc/group", "root:x:0:\nshadow:x:42:alice\nalice:x:1000:\n")
    tree.write(
        "/etc/shadow",
        "root:$y$j9T$abc:19700:0:99999:7:::\ntoor:::::::\n"
        "alice:$6$salt$hash:19700:1:90:7:30::\nbob:!:19700::::::\n",
    )
    uid0 = tree.probe("accounts", fact="uid0_only_root")
    assert (uid0.status, uid0.value, uid0.line) == ("fail", "toor", 2)
    empty = tree.probe("accounts", fact="no_empty_passwords")
    assert (empty.status, empty.value, empty.file) == ("fail", "toor", "/etc/shadow")
    assert tree.probe("accounts", fact="unique_uids").status == "fail"
    assert tree.probe("accounts", fact="passwd_groups_exist").status == "fail"  # bob's 1001
    assert tree.probe("accounts", fact="shadow_group_empty").value == "alice"
    assert tree.probe("accounts", fact="no_legacy_plus").status == "fail"
    # Ageing only looks at accounts with a usable password: root (99999) fails, bob (locked) is skipped.
    max_days = tree.probe("accounts", fact="password_max_days", threshold=365)
    assert (max_days.status, max_days.value) == ("fail", "root:99999")
    assert tree.probe("accounts", fact="password_warn_days", threshold=7).status == "pass"


def test_accounts_home_directory_modes(tree: Tree) -> None:
    tree.write("/etc/passwd", "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n")
    tree.write("/etc/login.defs", "UID_MIN 1000\n")
    home = tree.mkdir("/home/alice", mode=0o755)
    out = tree.probe("accounts", fact="home_dir_mode", mode="0750")
    assert (out.status, out.value) == ("fail", "0755")
    os.chmod(home, 0o700)
    assert tree.probe("accounts", fact="home_dir_mode", mode="0750").status == "pass"


def test_unreadable_shadow_is_an_error(tree: Tree) -> None:
    tree.copy("debian12/etc/passwd")
    tree.mkdir("/etc/shadow")
    assert tree.probe("accounts", fact="no_empty_passwords").status == "error"


# --- sudoers --------------------------------------------------------------------------------


def test_sudoers_debian_default(tree: Tree) -> None:
    """sudo 1.9.13's shipped sudoers: use_pty on, no logfile, @includedir /etc/sudoers.d."""
    tree.copy("debian12/etc/sudoers")
    tree.copy("debian12/etc/sudoers.d")
    pty = tree.probe("sudoers", fact="use_pty")
    assert (pty.status, pty.file) == ("pass", "/etc/sudoers")
    assert tree.p("/etc/sudoers").read_text().splitlines()[pty.line - 1].split() == ["Defaults", "use_pty"]
    assert tree.probe("sudoers", fact="logfile").status == "fail"
    assert tree.probe("sudoers", fact="no_nopasswd").status == "pass"
    assert tree.probe("sudoers", fact="timestamp_timeout", threshold=15).status == "pass"


def test_sudoers_includedir_rules(tree: Tree) -> None:
    tree.copy("debian12/etc/sudoers")
    tree.write(
        "/etc/sudoers.d/90-cloud-init-users", "# Created by cloud-init\nadmin ALL=(ALL) NOPASSWD:ALL\n"
    )
    tree.write("/etc/sudoers.d/old.bak", "Defaults !authenticate\n")  # ignored: name has a dot
    tree.write("/etc/sudoers.d/zz-timeout", "Defaults timestamp_timeout=-1, \\\n    !use_pty\n")
    nopw = tree.probe("sudoers", fact="no_nopasswd")
    assert (nopw.status, nopw.file, nopw.line) == ("fail", "/etc/sudoers.d/90-cloud-init-users", 2)
    assert tree.probe("sudoers", fact="no_unauthenticated").status == "pass"
    timeout = tree.probe("sudoers", fact="timestamp_timeout", threshold=15)
    assert (timeout.status, timeout.value) == ("fail", "-1")
    assert tree.probe("sudoers", fact="use_pty").status == "fail"  # turned off later by the drop-in


# --- firewall -------------------------------------------------------------------------------


def test_firewall_from_boot_configuration(tree: Tree) -> None:
    assert tree.probe("firewall").status == "fail"
    tree.write("/etc/ufw/ufw.conf", "# /etc/ufw/ufw.conf\nENABLED=no\nLOGLEVEL=low\n")
    assert tree.probe("firewall").status == "fail"
    tree.write("/etc/ufw/ufw.conf", "ENABLED=yes\nLOGLEVEL=low\n")
    out = tree.probe("firewall")
    assert (out.status, out.value, out.file) == ("pass", "ufw", "/etc/ufw/ufw.conf")


def test_firewall_nftables_needs_an_input_filter(tree: Tree) -> None:
    """Debian's default /etc/nftables.conf has an input chain with policy accept and no rule."""
    tree.write("/lib/systemd/system/nftables.service", "[Unit]\n")
    tree.link(
        "/etc/systemd/system/sysinit.target.wants/nftables.service", "/lib/systemd/system/nftables.service"
    )
    tree.write(
        "/etc/nftables.conf",
        "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n"
        "\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n"
        "\tchain forward {\n\t\ttype filter hook forward priority filter;\n\t}\n}\n",
    )
    assert tree.probe("firewall").status == "fail"
    tree.write(
        "/etc/nftables.conf",
        "table inet filter {\n\tchain input {\n"
        "\t\ttype filter hook input priority 0; policy drop;\n"
        "\t\tct state established,related accept\n\t\ttcp dport 22 accept\n\t}\n}\n",
    )
    assert tree.probe("firewall").status == "pass"
    # With systemd running, the enabled unit must also be active.
    tree.mkdir("/run/systemd/system")
    assert tree.probe("firewall").status == "fail"
    tree.link("/run/systemd/units/invocation:nftables.service", "a1")
    assert tree.probe("firewall").status == "pass"


# --- the agent itself -----------------------------------------------------------------------


def test_agent_facts(tree: Tree) -> None:
    ctx = tree.ctx()
    os.chmod(ctx.state_dir, 0o700)
    assert tree.probe("agent", fact="state_dir_private").status == "pass"
    os.chmod(ctx.state_dir, 0o755)
    assert tree.probe("agent", fact="state_dir_private").status == "fail"
    assert tree.probe("agent", fact="collectors_healthy").status == "error"  # nothing recorded yet
    ctx.memory["collector_health"] = {"inventory": {"ok": True}, "events": {"ok": False, "error": "ENOSPC"}}
    bad = tree.probe("agent", fact="collectors_healthy")
    assert bad.status == "fail" and "events" in bad.message and "ENOSPC" in bad.message
    assert tree.probe("agent", fact="realtime_protection").status == "fail"
    ctx.memory["protection"] = {"realtime": True}
    assert tree.probe("agent", fact="realtime_protection").status == "pass"
    ctx.memory["drops"] = {"events": 0, "inventory": 0}
    assert tree.probe("agent", fact="no_dropped_telemetry").status == "pass"
    ctx.memory["drops"] = {"events": 12}
    assert tree.probe("agent", fact="no_dropped_telemetry").value == "12"


def test_kernel_config_gz_is_real(tree: Tree) -> None:
    text = gzip.decompress((DATA / "config-6.18-nomodules.gz").read_bytes()).decode()
    assert "# CONFIG_MODULES is not set" in text
