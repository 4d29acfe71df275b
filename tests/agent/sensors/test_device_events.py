"""DeviceEvents: ptrace attach, kernel module load, accounts and groups added, signals to the agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

PTRACE = textwrap.dedent("""
    import ctypes, os, subprocess, time
    libc = ctypes.CDLL(None, use_errno=True)
    target = subprocess.Popen(["sleep", "30"])
    time.sleep(0.1)
    assert libc.ptrace(16, target.pid, None, None) == 0, ctypes.get_errno()   # PTRACE_ATTACH
    os.waitpid(target.pid, 0)
    libc.ptrace(17, target.pid, None, None)                                    # PTRACE_DETACH
    target.kill(); target.wait()
    print(target.pid)
    # finit_module(-1, "", 0): refused (no module support here, or a bad fd) but attempted
    libc.syscall(313, -1, b"", 0)
""")


def test_ptrace_attach_and_a_module_load_attempt_are_recorded(start_sensor) -> None:
    run = start_sensor()
    out = subprocess.run([sys.executable, "-c", PTRACE], check=True, capture_output=True, text=True, timeout=30)
    target = int(out.stdout.split()[0])
    rows = run.recorder.wait_for(lambda r: r["ActionType"] == "PtraceAttach" and r["ProcessId"] == target,
                                 "DeviceEvents")
    assert len(rows) == 1
    assert rows[0]["FileName"] == "sleep" and rows[0]["ProcessCommandLine"] == "sleep 30"
    assert rows[0]["AdditionalFields"] == {"Success": True, "Request": "PTRACE_ATTACH"}
    assert rows[0]["InitiatingProcessFileName"].startswith("python")
    mods = run.recorder.wait_for(lambda r: r["ActionType"].startswith("KernelModuleLoad"), "DeviceEvents")
    assert len(mods) == 1 and mods[0]["ActionType"] == "KernelModuleLoadAttempted"
    assert mods[0]["AdditionalFields"]["Success"] is False and mods[0]["AdditionalFields"]["Syscall"] == "finit_module"


def test_accounts_and_groups_added_are_recorded(start_sensor) -> None:
    import grp
    import pwd

    run = start_sensor()
    name = f"gt{os.getpid() % 100000}"
    try:
        subprocess.run(["groupadd", name + "g"], check=True)
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name], check=True)
        uid, gid = pwd.getpwnam(name).pw_uid, grp.getgrnam(name + "g").gr_gid
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name + "g"], check=False)
    rows = run.recorder.wait_for(lambda r: r.get("AccountSid") == str(uid) or
                                 r.get("AdditionalFields", {}).get("GroupId") == gid, "DeviceEvents", count=4)
    actions = sorted((r["ActionType"], r["InitiatingProcessFileName"]) for r in rows)
    # One row per change, though shadow-utils write a record per file (passwd, shadow, group, gshadow).
    assert actions == [("SecurityGroupCreated", "groupadd"), ("SecurityGroupDeleted", "groupdel"),
                       ("UserAccountCreated", "useradd"), ("UserAccountDeleted", "userdel")]


def test_a_signal_sent_to_the_agent_is_a_tampering_attempt(start_sensor) -> None:
    run = start_sensor()  # this test process stands for the agent: the rule watches signals to its pid
    old = signal.signal(signal.SIGCONT, lambda *_: None)
    try:
        subprocess.run(["/bin/sh", "-c", f"kill -CONT {os.getpid()}; kill -0 {os.getpid()}"], check=True)
    finally:
        signal.signal(signal.SIGCONT, old)
    rows = run.recorder.wait_for(lambda r: r["ActionType"] == "TamperingAttempt", "DeviceEvents")
    assert len(rows) == 1, rows  # kill -0 (is it alive?) is not an attempt
    assert rows[0]["ProcessId"] == os.getpid()
    assert rows[0]["AdditionalFields"] == {"Operation": "Signal", "Signal": signal.SIGCONT, "Success": True}
    assert rows[0]["InitiatingProcessFileName"] in ("sh", "dash", "bash")


def test_removing_the_agents_audit_rules_is_a_tampering_attempt(start_sensor) -> None:
    from garrison.agent.sensors.audit_netlink import AuditSocket, rule_key

    run = start_sensor()
    ctl = AuditSocket()  # what `auditctl -D` does, for our ptrace rules only
    try:
        removed = ctl.delete_rules("garrison_ptrace/", keep=lambda key: not key.endswith(f"/{os.getpid()}"))
        assert removed == 2
        assert not [r for r in ctl.list_rules() if rule_key(r) == f"garrison_ptrace/{os.getpid()}"]
    finally:
        ctl.close()
    rows = run.recorder.wait_for(lambda r: r["ActionType"] == "TamperingAttempt", "DeviceEvents", count=2)
    assert len(rows) == 2
    assert all(r["AdditionalFields"] == {"Operation": "AuditConfigurationChanged", "Op": "remove_rule",
                                         "Key": f"garrison_ptrace/{os.getpid()}"} for r in rows)
