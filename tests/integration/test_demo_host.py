"""examples/demo on a machine whose PID 1 is systemd and where noded is not installed:
the sandbox is such a machine once noded.service is removed. The demo runs this
checkout's daemon as a transient noded.service, says so, and removes it afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .conftest import noded_units, systemctl

REPO = Path(__file__).resolve().parents[2]
UNIT = Path("/run/systemd/system/noded.service")  # where tests/sandbox installs it
WANTS = Path("/run/systemd/system/sandbox.target.wants/noded.service")  # and enables it
TRANSIENT = Path("/run/systemd/transient/noded.service")


def _wait_active(unit: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while systemctl("is-active", unit).stdout.strip() != "active":
        assert time.monotonic() < deadline, systemctl("status", unit).stdout
        time.sleep(0.2)


def test_demo_runs_the_checkouts_daemon_where_noded_is_not_installed() -> None:
    saved, link = UNIT.read_text(), os.readlink(WANTS)
    systemctl("stop", "noded.service", check=True)
    UNIT.unlink()
    WANTS.unlink()
    systemctl("daemon-reload", check=True)
    try:
        assert systemctl("cat", "noded.service").returncode != 0  # not installed
        env = {**os.environ, "NODED_VENV": sys.prefix}
        res = subprocess.run(
            [str(REPO / "examples" / "demo"), str(REPO / "examples" / "chain_io.toml")],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd="/",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        out = res.stdout + res.stderr
        assert "noded is not installed here" in out and "transient noded.service" in out, out
        assert "wrote /var/tmp/noded-demo/reply.wav" in out and "wrote /var/tmp/noded-demo/frames.npy" in out, out
        # nothing of it is left: no daemon unit (once systemd has collected it), no session units
        deadline = time.monotonic() + 30
        while systemctl("cat", "noded.service").returncode == 0:
            assert time.monotonic() < deadline, "the transient noded.service is still loaded"
            time.sleep(0.2)
        assert systemctl("is-active", "noded.service").stdout.strip() != "active"
        assert noded_units() == []
    finally:
        if TRANSIENT.exists():  # the demo failed to remove it: do not leave it shadowing the unit
            systemctl("stop", "noded.service")
            TRANSIENT.unlink(missing_ok=True)
        UNIT.write_text(saved)
        WANTS.symlink_to(link)
        systemctl("daemon-reload", check=True)
        systemctl("start", "noded.service", check=True)
        _wait_active("noded.service")
