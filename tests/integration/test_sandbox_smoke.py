"""The private systemd of tests/sandbox gives the tests what noded needs from systemd."""

import os
import subprocess
import time
import uuid

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        "NODED_SANDBOX" not in os.environ, reason="needs the private systemd: run through tests/run or tests/sandbox"
    ),
]


def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_the_boot_has_finished():
    state = sh("systemctl", "is-system-running").stdout.strip()
    # degraded: a unit failed, e.g. noded.service while the daemon does not start yet.
    assert state in ("running", "degraded")


def test_tmp_and_run_are_private_tmpfs():
    for path in ("/tmp", "/run"):
        assert sh("findmnt", "-n", "-o", "FSTYPE", "--mountpoint", path).stdout.split()[-1:] == ["tmpfs"], path


def test_a_transient_notify_service_runs_to_completion():
    result = sh(
        "systemd-run",
        "--wait",
        "--quiet",
        "-p",
        "Type=notify",
        "-p",
        "NotifyAccess=all",
        "/bin/sh",
        "-c",
        "systemd-notify --ready --status=up",
    )
    assert result.returncode == 0, result.stderr


def test_start_transient_unit_over_dbus_and_read_its_journal():
    unit = f"smoke-{uuid.uuid4().hex[:8]}.service"
    word = uuid.uuid4().hex
    call = sh(
        "busctl",
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        unit,
        "fail",
        "1",
        "ExecStart",
        "a(sasb)",
        "1",
        "/bin/echo",
        "2",
        "/bin/echo",
        word,
        "false",
        "0",
    )
    assert call.returncode == 0, call.stderr
    deadline = time.monotonic() + 10
    while sh("systemctl", "is-active", unit).stdout.strip() in ("active", "activating"):
        assert time.monotonic() < deadline, f"{unit} still running"
        time.sleep(0.05)
    sh("journalctl", "--sync")  # the journal is written asynchronously
    assert word in sh("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout
