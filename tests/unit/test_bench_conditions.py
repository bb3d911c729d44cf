"""benchmarks/conditions.py: the load-average warning and the wait for a quiet machine."""

from __future__ import annotations

from pathlib import Path

from benchmarks.conditions import QUIET, loadavg, wait_quiet, warning


def test_loadavg_reads_three_figures(tmp_path: Path) -> None:
    f = tmp_path / "loadavg"
    f.write_text("0.25 1.50 3.00 2/345 6789\n")
    assert loadavg(str(f)) == ["0.25", "1.50", "3.00"]
    assert len(loadavg()) == 3


def test_a_quiet_run_has_no_warning_and_a_busy_one_names_both_figures() -> None:
    assert warning(["0.10", "1", "1"], [f"{QUIET:.2f}", "1", "1"]) is None
    w = warning(["0.10", "0", "0"], ["2.40", "0", "0"])
    assert w is not None and "0.10 before" in w and "2.40 after" in w
    assert warning(["3.00", "0", "0"], ["0.00", "0", "0"]) is not None


def test_wait_quiet_waits_for_the_load_to_fall_and_gives_up_at_its_timeout() -> None:
    loads = iter(["2.0", "1.0", "0.3"])
    slept: list[float] = []
    assert wait_quiet(0.5, 60, read=lambda: [next(loads)], sleep=slept.append, poll=5)
    assert slept == [5, 5]
    slept.clear()
    assert not wait_quiet(0.5, 12, read=lambda: ["4.0"], sleep=slept.append, poll=5)
    assert sum(slept) == 15
