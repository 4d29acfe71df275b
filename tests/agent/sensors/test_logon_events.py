"""DeviceLogonEvents from PAM's audit records: a real failed and a real successful ``su``."""

from __future__ import annotations

import os
import pty
import select
import time


def _su_as_nobody_with_wrong_password() -> None:
    """``su root`` from the unprivileged account ``nobody`` on a pseudo-terminal, wrong password."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: drop to nobody, then su (setuid root) asks for root's password
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)
        os.execv("/usr/bin/su", ["su", "root", "-c", "true"])
    deadline = time.monotonic() + 20
    buf, sent, reaped = b"", False, False
    while time.monotonic() < deadline and not reaped:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                chunk = b""
            buf += chunk
            if not sent and b"assword" in buf:
                os.write(fd, b"definitely-wrong\n")
                sent = True
        reaped = os.waitpid(pid, os.WNOHANG)[0] == pid
    if not reaped:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os.close(fd)
    assert sent, buf


def test_a_failed_su_is_a_logon_failure_and_a_root_su_a_success(start_sensor) -> None:
    run = start_sensor()
    _su_as_nobody_with_wrong_password()
    failed = run.recorder.wait_for(lambda r: r["ActionType"] == "LogonFailed" and r["AccountName"] == "root",
                                   "DeviceLogonEvents", timeout=15)
    assert len(failed) == 1, run.recorder.rows("DeviceLogonEvents")
    row = failed[0]
    assert row["LogonType"] == "Interactive" and row["FailureReason"] == "InvalidUserNameOrPassword"
    assert row["AccountSid"] == "0" and row["IsLocalAdmin"] is True
    assert row["InitiatingProcessFileName"] == "su" and row["AdditionalFields"]["Terminal"].startswith("/dev/pts/")

    import subprocess
    subprocess.run(["su", "-s", "/bin/sh", "nobody", "-c", "true"], check=True, timeout=30)
    ok = run.recorder.wait_for(lambda r: r["ActionType"] == "LogonSuccess" and r["AccountName"] == "nobody",
                               "DeviceLogonEvents")
    assert len(ok) == 1 and ok[0]["AccountSid"] == "65534" and ok[0]["IsLocalAdmin"] is False
    assert ok[0]["InitiatingProcessFileName"] == "su"
