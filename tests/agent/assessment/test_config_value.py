"""config_value: effective values of sshd_config, login.defs, key = value and apt.conf files."""

from __future__ import annotations

from tests.agent.assessment.tree import Tree


def sshd(tree: Tree, key: str, value: object, op: str = "eq", **kw: object):  # type: ignore[no-untyped-def]
    return tree.probe(
        "config_value", path="/etc/ssh/sshd_config", format="sshd", key=key, op=op, value=value, **kw
    )


def test_debian_sshd_config_shipped_by_openssh_server(tree: Tree) -> None:
    """Debian 12's shipped sshd_config: X11Forwarding yes is set, PermitRootLogin is left to the default."""
    tree.copy("debian12/etc/ssh/sshd_config")
    x11 = sshd(tree, "X11Forwarding", "no", default="no")
    assert x11.status == "fail"
    assert x11.value == "yes"
    assert x11.file == "/etc/ssh/sshd_config"
    assert tree.p(x11.file).read_text().splitlines()[x11.line - 1].startswith("X11Forwarding yes")

    root = sshd(tree, "PermitRootLogin", "no", default="prohibit-password")
    assert root.status == "fail"
    assert root.value == "prohibit-password"
    assert "default" in root.message
    assert root.line is None


def test_first_value_wins_and_include_comes_first(tree: Tree) -> None:
    """Ubuntu/cloud images: a drop-in read through the Include at the top beats the main file."""
    tree.copy("debian12/etc/ssh/sshd_config")  # starts with Include /etc/ssh/sshd_config.d/*.conf
    tree.write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
    main = tree.p("/etc/ssh/sshd_config")
    main.write_text(main.read_text() + "\nPasswordAuthentication no\n")
    out = sshd(tree, "PasswordAuthentication", "no", default="yes")
    assert out.status == "fail"
    assert out.file == "/etc/ssh/sshd_config.d/50-cloud-init.conf"
    assert out.line == 1


def test_relative_include_is_under_etc_ssh_and_globs_sorted(tree: Tree) -> None:
    tree.write("/etc/ssh/sshd_config", "Include conf.d/*.conf\nMaxAuthTries 6\n")
    tree.write("/etc/ssh/conf.d/20-late.conf", "MaxAuthTries 5\n")
    tree.write("/etc/ssh/conf.d/10-early.conf", "# hardening\nmaxauthtries 3\n")
    out = sshd(tree, "MaxAuthTries", 4, op="le", type="int", default=6)
    assert out.status == "pass"
    assert (out.value, out.file, out.line) == ("3", "/etc/ssh/conf.d/10-early.conf", 2)


def test_match_blocks_are_not_global_settings(tree: Tree) -> None:
    tree.write(
        "/etc/ssh/sshd_config",
        "Match User backup\n    PermitRootLogin yes\n    X11Forwarding yes\nMatch all\nX11Forwarding no\n",
    )
    assert sshd(tree, "PermitRootLogin", "no", default="prohibit-password").value == "prohibit-password"
    x11 = sshd(tree, "X11Forwarding", "no", default="no")
    assert (x11.status, x11.line) == ("pass", 5)


def test_match_block_ends_with_the_included_file(tree: Tree) -> None:
    tree.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n")
    tree.write(
        "/etc/ssh/sshd_config.d/10-sftp.conf",
        "Match Group sftp\n  ChrootDirectory /srv\n  PermitRootLogin yes\n",
    )
    out = sshd(tree, "PermitRootLogin", "no", default="prohibit-password")
    assert (out.status, out.file, out.line) == ("pass", "/etc/ssh/sshd_config", 2)


def test_key_equals_value_form_and_quotes(tree: Tree) -> None:
    tree.write("/etc/ssh/sshd_config", 'Banner="/etc/issue.net"\nLoginGraceTime = 1m\n')
    assert sshd(tree, "Banner", "none", op="ne", default="none").value == "/etc/issue.net"
    grace = sshd(tree, "LoginGraceTime", 60, op="le", type="duration", default=120)
    assert (grace.status, grace.value) == ("pass", "1m")
    assert sshd(tree, "LoginGraceTime", 30, op="le", type="duration", default=120).status == "fail"


def test_cipher_lists_compare_item_by_item(tree: Tree) -> None:
    weak = ["*-cbc", "3des*", "arcfour*"]
    tree.write("/etc/ssh/sshd_config", "Ciphers aes256-gcm@openssh.com,aes128-cbc\n")
    out = sshd(tree, "Ciphers", weak, op="contains_none", default="aes128-ctr")
    assert (out.status, out.value) == ("fail", "aes256-gcm@openssh.com,aes128-cbc")
    tree.write("/etc/ssh/sshd_config", "Ciphers chacha20-poly1305@openssh.com,aes256-ctr\n")
    assert sshd(tree, "Ciphers", weak, op="contains_none", default="aes128-ctr").status == "pass"


def test_rhel_crypto_policy_include_sets_ciphers(tree: Tree) -> None:
    """RHEL 9 layout: 50-redhat.conf includes the crypto-policies back-end by absolute path."""
    tree.write(
        "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n#PermitRootLogin prohibit-password\n"
    )
    tree.write(
        "/etc/ssh/sshd_config.d/50-redhat.conf",
        "Include /etc/crypto-policies/back-ends/opensshserver.config\nSyslogFacility AUTHPRIV\nUsePAM yes\n",
    )
    tree.write(
        "/etc/crypto-policies/back-ends/opensshserver.config",
        "Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes128-gcm@openssh.com,"
        "aes128-ctr,aes256-cbc,aes128-cbc\nMACs hmac-sha2-256-etm@openssh.com\n",
    )
    out = sshd(tree, "Ciphers", ["*-cbc"], op="contains_none", default="aes128-ctr")
    assert (out.status, out.file) == ("fail", "/etc/crypto-policies/back-ends/opensshserver.config")
    assert sshd(tree, "UsePAM", "yes", default="no").status == "pass"


def test_missing_sshd_config_is_an_error_not_a_pass(tree: Tree) -> None:
    out = sshd(tree, "PermitRootLogin", "no", default="prohibit-password")
    assert out.status == "error"
    assert "does not exist" in out.message


def test_unreadable_config_is_an_error(tree: Tree) -> None:
    tree.mkdir("/etc/ssh/sshd_config")  # a directory where the file should be
    assert sshd(tree, "PermitRootLogin", "no").status == "error"


def test_login_defs_last_value_wins_with_line(tree: Tree) -> None:
    tree.copy("debian12/etc/login.defs")
    kw = {"path": "/etc/login.defs", "format": "keyvalue", "type": "int"}
    out = tree.probe("config_value", key="PASS_MAX_DAYS", op="le", value=365, **kw)
    assert (out.status, out.value) == ("fail", "99999")
    assert tree.p("/etc/login.defs").read_text().splitlines()[out.line - 1].split() == [
        "PASS_MAX_DAYS",
        "99999",
    ]
    tree.p("/etc/login.defs").write_text(tree.p("/etc/login.defs").read_text() + "PASS_MAX_DAYS 90\n")
    assert tree.probe("config_value", key="PASS_MAX_DAYS", op="le", value=365, **kw).status == "pass"


def test_umask_bits(tree: Tree) -> None:
    kw = {"path": "/etc/login.defs", "format": "keyvalue", "key": "UMASK", "op": "bits_set", "value": "027"}
    tree.write("/etc/login.defs", "UMASK\t\t022\n")
    assert tree.probe("config_value", **kw).status == "fail"
    tree.write("/etc/login.defs", "UMASK 077\n")
    assert tree.probe("config_value", **kw).status == "pass"


def test_equals_format_with_sections_and_drop_ins(tree: Tree) -> None:
    tree.write(
        "/etc/dnf/automatic.conf",
        "[commands]\nupgrade_type = default\napply_updates = no\n\n[emitters]\napply_updates = yes\n",
    )
    out = tree.probe(
        "config_value",
        path="/etc/dnf/automatic.conf",
        format="equals",
        section="commands",
        key="apply_updates",
        value="yes",
        default="no",
    )
    assert (out.status, out.value, out.line) == ("fail", "no", 3)

    kw = {
        "path": ["/etc/security/pwquality.conf", "/etc/security/pwquality.conf.d/*.conf"],
        "format": "equals",
        "key": "minlen",
        "op": "ge",
        "value": 14,
        "type": "int",
        "default": 8,
        "missing": "default",
    }
    assert tree.probe("config_value", **kw).value == "8"  # no file at all: pwquality's built-in default
    tree.write("/etc/security/pwquality.conf", "# minlen = 9\nminlen = 10\n")
    tree.write("/etc/security/pwquality.conf.d/50-site.conf", "minlen = 15\n")
    out = tree.probe("config_value", **kw)
    assert (out.status, out.file) == ("pass", "/etc/security/pwquality.conf.d/50-site.conf")


def test_apt_conf_later_files_override(tree: Tree) -> None:
    kw = {
        "path": ["/etc/apt/apt.conf", "/etc/apt/apt.conf.d/*"],
        "format": "apt",
        "key": "APT::Periodic::Unattended-Upgrade",
        "value": "1",
        "missing": "default",
    }
    assert tree.probe("config_value", **kw).status == "fail"  # not configured at all
    tree.write(
        "/etc/apt/apt.conf.d/20auto-upgrades",
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
    )
    assert tree.probe("config_value", **kw).status == "pass"
    tree.write("/etc/apt/apt.conf.d/99local", 'APT::Periodic::Unattended-Upgrade "0";\n')
    out = tree.probe("config_value", **kw)
    assert (out.status, out.file) == ("fail", "/etc/apt/apt.conf.d/99local")


def test_params_are_validated(tree: Tree) -> None:
    import pytest
    from pydantic import ValidationError

    from garrison.agent.assessment.probes import PROBES, load_probes

    load_probes()
    with pytest.raises(ValidationError):
        PROBES["config_value"].Params.model_validate(
            {"path": "etc/relative", "format": "sshd", "key": "X", "value": "y"}
        )
    with pytest.raises(ValidationError):
        PROBES["config_value"].Params.model_validate(
            {"path": "/etc/../../outside", "format": "sshd", "key": "X", "value": "y"}
        )
    with pytest.raises(ValidationError):
        PROBES["config_value"].Params.model_validate(
            {"path": "/etc/x", "format": "sshd", "key": "X", "value": "y", "command": "id"}
        )


def test_a_fifo_in_place_of_a_file_is_an_error_not_a_hang(tree: Tree) -> None:
    import os

    tree.mkdir("/etc")
    os.mkfifo(tree.p("/etc/login.defs"))
    out = tree.probe("config_value", path="/etc/login.defs", format="keyvalue", key="UMASK", value="027")
    assert out.status == "error" and "not a regular file" in out.message
