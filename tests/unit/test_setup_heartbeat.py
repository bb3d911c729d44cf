"""SC-002's "a status every <= 2 s while models load": a worker whose setup is silent (a
model loading in one long call) sends its last status again, with the seconds since
setup began, every HEARTBEAT s, without extending systemd's start timeout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from noded.contract.status import Phase, Status
from noded.worker.notify import HEARTBEAT, Heartbeat, ProgressReporter
from tests.unit.dataplane_support import Session


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_setup_repeats_its_last_status_with_the_time_and_no_timeout_extension() -> None:
    clock = Clock()
    sent: list[tuple[Status, Any]] = []
    reporter = ProgressReporter(lambda st, *, extend_usec=None: sent.append((st, extend_usec)), clock=clock)
    assert not reporter.heartbeat(1.0)  # setup begins
    clock.now += 0.5
    assert not reporter.heartbeat(1.0)  # setup just began
    clock.now += 0.5
    assert reporter.heartbeat(1.0)
    assert sent == [(Status(Phase.INITIALIZING, None, "(1 s)"), None)]
    clock.now += 0.2
    assert reporter.report(0.2, "loading whisper")
    assert sent[-1][1] is not None  # a report extends the timeout
    clock.now += 0.9
    assert not reporter.heartbeat(1.0)  # 0.9 s since the report
    clock.now += 0.1
    assert reporter.heartbeat(1.0)
    assert sent[-1] == (Status(Phase.INITIALIZING, 0.2, "loading whisper (2 s)"), None)
    clock.now += 0.5
    assert not reporter.heartbeat(1.0)  # 0.5 s since the heartbeat
    assert reporter.report(0.3, "loading whisper")  # the same text as before the heartbeat: still news
    assert len(sent) == 4


def test_the_heartbeat_thread_beats_while_setup_is_silent_and_stops() -> None:
    times: list[float] = []
    reporter = ProgressReporter(lambda st, *, extend_usec=None: times.append(time.monotonic()))
    with Heartbeat(reporter, interval=0.2):
        time.sleep(1.1)
    n = len(times)
    assert 3 <= n <= 6, times
    time.sleep(0.3)
    assert len(times) == n  # stopped


def test_a_worker_whose_setup_is_silent_for_3_s_sends_a_status_at_least_every_2_s(tmp_path: Path) -> None:
    session = Session(tmp_path)
    try:
        w = session.worker("slow", "sleep", None, {"seconds": 3.0, "steps": 1, "label": "loading"})
        w.wait_ready(timeout=30)
        assert session.stop(w) == 0
    finally:
        session.close()
    statuses = [m for m in w.notify.messages if "STATUS" in m]
    beats = [m for m in statuses if m["STATUS"].startswith("initializing: (")]
    assert len(beats) >= 2, statuses  # "(1 s)", "(2 s)", ...
    assert all("EXTEND_TIMEOUT_USEC" not in m for m in beats)
    assert HEARTBEAT <= 2.0
