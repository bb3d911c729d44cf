"""The machine's conditions for a latency benchmark: its load average before and after,
a warning when it was not quiet, and a wait for a quiet machine (``--wait-quiet``).

A latency figure taken while other jobs load the machine says more about them than about
the code: every benchmark records the 1-minute load average on both sides of its run, and
its table says so when it was above ``QUIET``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

QUIET = 0.5  # 1-minute load average at or below which a machine counts as quiet


def loadavg(path: str = "/proc/loadavg") -> list[str]:
    """The 1, 5 and 15-minute load averages, as /proc/loadavg spells them."""
    return Path(path).read_text().split()[:3]


def warning(before: list[str], after: list[str], quiet: float = QUIET) -> str | None:
    """The line a table prints when the machine was not quiet, else None."""
    worst = max(float(before[0]), float(after[0]))
    if worst <= quiet:
        return None
    return (
        f"WARNING: the machine was not quiet (1-minute load average {before[0]} before, {after[0]} after; "
        f"quiet is <= {quiet:g}): compare rows of this run, not absolute figures"
    )


def wait_quiet(
    quiet: float = QUIET,
    timeout: float = 600.0,
    read: Callable[[], list[str]] = loadavg,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 5.0,
) -> bool:
    """Wait until the 1-minute load average is at most ``quiet``, for at most ``timeout``
    seconds; True if it got there (the run goes on either way, with its warning)."""
    waited = 0.0
    while float(read()[0]) > quiet:
        if waited >= timeout:
            return False
        sleep(poll)
        waited += poll
    return True
