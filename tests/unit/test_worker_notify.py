"""noded.worker.notify: the progress throttle, the reporter and the STATUS= line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noded.contract.status import Phase, Status, parse_status
from noded.errors import SetupInterrupted
from noded.testing import NotifyListener
from noded.worker import notify
from noded.worker.notify import MAX_STATUS_BYTES, ProgressReporter, ProgressThrottle, Watchdog, status_assignment

INIT = Phase.INITIALIZING


def test_throttle_lets_the_first_status_through_and_drops_fast_followers() -> None:
    t = ProgressThrottle(0.05)
    assert t.admit(Status(INIT, 0.1), now=10.0)
    assert not t.admit(Status(INIT, 0.2), now=10.01)
    assert not t.admit(Status(INIT, 0.3), now=10.049)
    assert t.admit(Status(INIT, 0.4), now=10.05)


def test_throttle_never_repeats_what_is_shown() -> None:
    t = ProgressThrottle(0.05)
    assert t.admit(Status(INIT, 0.5, "x"), now=0.0)
    assert not t.admit(Status(INIT, 0.5, "x"), now=100.0)
    assert not t.admit(Status(INIT, 0.50001, "x"), now=200.0)  # shows as 50.0% too
    assert t.admit(Status(INIT, 0.5, "y"), now=300.0)


def test_throttle_lets_phase_changes_and_completion_through_at_once() -> None:
    t = ProgressThrottle(0.05)
    assert t.admit(Status(INIT, 0.1), now=0.0)
    assert t.admit(Status(INIT, 1.0), now=0.001)
    assert t.admit(Status(Phase.READY), now=0.002)
    assert t.admit(Status(Phase.STOPPING), now=0.003)


steps = st.lists(
    st.tuples(
        st.floats(0.0, 0.2),  # time since the previous report
        st.sampled_from([Phase.INITIALIZING, Phase.READY]),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
        st.sampled_from(["", "a", "b"]),
    ),
    max_size=60,
)


@given(steps)
def test_throttle_properties(reports: list[tuple[float, Phase, float | None, str]]) -> None:
    t = ProgressThrottle(0.05)
    now = 0.0
    sent: list[tuple[float, Status]] = []
    for dt, phase, fraction, text in reports:
        now += dt
        status = Status(phase, fraction, text)
        if t.admit(status, now):
            sent.append((now, status))
        elif not sent:
            pytest.fail("the first status must always be sent")
    for (t0, a), (t1, b) in zip(sent, sent[1:], strict=False):
        assert (a.phase, a.fraction, a.text) != (b.phase, b.fraction, b.text)
        urgent = a.phase != b.phase or b.fraction == 1.0
        assert urgent or t1 - t0 >= 0.05


def test_reporter_sends_status_with_timeout_extension_through_the_throttle() -> None:
    sent: list[tuple[Status, int | None]] = []
    clock = iter([0.0, 0.01, 0.2, 0.21]).__next__
    reporter = ProgressReporter(lambda s, *, extend_usec: sent.append((s, extend_usec)), clock=clock)
    assert reporter.report(0.1, "a")
    assert not reporter.report(0.2, "a")
    assert reporter.report(0.3, "b")
    assert reporter.report(1.0, "done")
    assert sent == [
        (Status(INIT, 0.1, "a"), notify.EXTEND_TIMEOUT_USEC),
        (Status(INIT, 0.3, "b"), notify.EXTEND_TIMEOUT_USEC),
        (Status(INIT, 1.0, "done"), notify.EXTEND_TIMEOUT_USEC),
    ]


def test_status_assignment_is_one_parseable_line() -> None:
    line = status_assignment(Status(Phase.ERROR, text="ValueError: bad\n  value\x00 ✗"))
    assert line == "STATUS=error: ValueError: bad value ✗"
    assert parse_status(line.removeprefix("STATUS=")) == Status(Phase.ERROR, None, "ValueError: bad value ✗")


def test_status_assignment_is_cut_to_fit_a_datagram_without_splitting_a_character() -> None:
    line = status_assignment(Status(Phase.ERROR, text="é" * 5000))
    data = line.removeprefix("STATUS=").encode()
    assert len(data) <= MAX_STATUS_BYTES
    assert line.endswith("é…")


def test_nan_progress_shows_no_percentage() -> None:
    assert status_assignment(Status(INIT, math.nan, "x")) == "STATUS=initializing: x"


def test_notifier_sends_utf8_datagrams_to_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NotifyListener(str(tmp_path / "n.sock")) as listener:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
        n = notify.Notifier()
        try:
            n.send("READY=1", status_assignment(Status(Phase.READY, text="café")))
        finally:
            n.close()
        assert listener.receive(1.0) == {"READY": "1", "STATUS": "ready: café"}


def test_notifier_without_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = notify.Notifier()
    n.send("READY=1")
    n.close()


def test_notifier_lets_a_stop_request_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception raised by a signal handler during a send (SetupInterrupted) is not swallowed."""
    with NotifyListener(str(tmp_path / "n.sock")) as listener:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
        n = notify.Notifier()
        assert n._sd is not None
        sock = n._sd._sock

        class Interrupting:
            def sendto(self, data: bytes, address: object) -> None:
                raise SetupInterrupted(15)

        n._sd._sock = Interrupting()  # type: ignore[assignment]
        try:
            with pytest.raises(SetupInterrupted):
                n.send("STATUS=x")
        finally:
            assert sock is not None
            sock.close()


def test_notify_socket_reaches_an_abstract_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd may name an abstract socket (``@name``), as it does for transient units."""
    import os
    import socket as socketmod

    from noded.contract.sdnotify import NotifySocket

    name = f"noded-test-notify-{os.getpid()}"
    with socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(2.0)
        n = NotifySocket("@" + name)
        try:
            n.send("RELOADING=1", "STATUS=é")
        finally:
            n.close()
        assert server.recv(4096).decode() == "RELOADING=1\nSTATUS=é"


def test_watchdog_is_fed_at_most_once_an_interval() -> None:
    now = [0]
    sent: list[str] = []
    dog = Watchdog(0.5, sent.append, clock=lambda: now[0])
    assert dog.timeout == 0.5
    dog.feed()  # the first feed pings at once
    for t in (0.1, 0.3, 0.499):
        now[0] = int(t * 1e9)
        dog.feed()
    assert sent == ["WATCHDOG=1"]
    now[0] = int(0.5e9)
    dog.feed()
    dog.feed()
    assert sent == ["WATCHDOG=1"] * 2
    now[0] = int(5e9)  # a late feed pings, and the next is due an interval after it
    dog.feed()
    now[0] = int(5.4e9)
    dog.feed()
    assert sent == ["WATCHDOG=1"] * 3


def test_without_a_watchdog_feeding_sends_nothing() -> None:
    sent: list[str] = []
    dog = Watchdog(None, sent.append)
    dog.feed()
    dog.ping()
    assert sent == [] and dog.timeout is None
