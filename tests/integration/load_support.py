"""Shared by the load, crash, soak, restart and exhaustion tests (SC-001, SC-005, SC-006):
what a session may leave behind, and the knobs that make the CI runs longer.

Counts come from NODED_* variables (tests/sandbox passes those in), so that the full
runs are the same tests with bigger numbers:

    NODED_SC001_SESSIONS=100   sessions in SC-001
    NODED_SC005_SCENARIOS=100  crash scenarios in SC-005; NODED_SC005_SEED=N replays a run
    NODED_SOAK_CYCLES=200      soak cycles; NODED_SOAK_HOURS=8 runs for that long instead
"""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import noded_units, worker_pids

RUNTIME = Path("/run/noded")
SHM = Path("/dev/shm")
CGROUPS = Path("/sys/fs/cgroup")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def session_leftovers(sid: str) -> list[str]:
    """Everything of session ``sid`` that should be gone once it has ended: units
    (services and slice), worker processes, its iceoryx2 root and /dev/shm segments."""
    left = [f"unit {u}" for u in noded_units(f"noded-{sid}*")]
    left += [f"worker pid {p}" for p in session_pids(sid)]
    root = RUNTIME / "iox2" / sid
    if root.exists():
        left.append(f"iceoryx2 root {root}")
    left += [f"shm {p}" for p in SHM.glob(f"noded_{sid}_*")]
    return left


def session_pids(sid: str) -> list[int]:
    """Worker processes whose spec names session ``sid``."""
    found = []
    for pid in worker_pids():
        try:
            if f'"{sid}"'.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def all_leftovers() -> list[str]:
    """Anything of any session: units, worker processes, iceoryx2 roots, shm segments,
    cgroups."""
    left = [f"unit {u}" for u in noded_units()]
    left += [f"worker pid {p}" for p in worker_pids()]
    base = RUNTIME / "iox2"
    if base.exists():
        left += [f"iceoryx2 {p}" for p in base.iterdir()]
    left += [f"shm {p.name}" for p in SHM.iterdir()
             if p.name.startswith("noded_") or ("iox2" in p.name and "global_mgmt" not in p.name)]
    left += [f"cgroup {p}" for p in CGROUPS.glob("*/noded.slice/noded-*")]
    left += [f"cgroup {p}" for p in CGROUPS.glob("noded.slice/noded-*")]  # unified hierarchy
    return left


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
