"""The watchdog interval of noded.service and of node units (noded.contract.sdnotify.watchdog_interval)."""

from __future__ import annotations

from noded.contract.sdnotify import watchdog_interval


def test_a_quarter_of_the_watchdog_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}, 7) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "7"}, 7) == 5.0


def test_no_watchdog() -> None:
    assert watchdog_interval({}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "8"}, 7) is None  # another's
