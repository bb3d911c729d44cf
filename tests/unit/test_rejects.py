import logging
import threading

import pytest

from noded.contract.wire import BadMagic, HeaderChecksum
from noded.dataplane.rejects import RejectLog


class FakeLogger:
    def __init__(self):
        self.lines = []

    def warning(self, msg, *args):
        self.lines.append(msg % args)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def rl():
    log, clock = FakeLogger(), Clock()
    return RejectLog(logger=log, clock=clock, quiet=5.0), log, clock


def test_first_rejection_is_logged_with_reason_source_and_detail(rl):
    rejects, log, _ = rl
    assert rejects.record(BadMagic("magic b'XXXX', expected b'NDRT'"), source="cam.out")
    assert log.lines == ["rejected a message from cam.out: bad_magic: magic b'XXXX', expected b'NDRT'"]
    assert rejects.total == 1 and rejects.counts == {"bad_magic": 1}


def test_the_rest_of_a_burst_is_only_counted(rl):
    rejects, log, clock = rl
    rejects.record("bad_magic", "a.out")
    for _ in range(10):
        clock.now += 1  # gaps under `quiet`: the same burst, however long it lasts
        assert not rejects.record(HeaderChecksum("x"), "a.out")
    assert len(log.lines) == 1
    assert rejects.total == 11 and rejects.pending == 10
    assert rejects.counts == {"bad_magic": 1, "header_checksum": 10}
    assert rejects.count("header_checksum") == 10 and rejects.count("truncated") == 0


def test_a_quiet_gap_ends_the_burst_with_a_summary(rl):
    rejects, log, clock = rl
    rejects.record("bad_magic", "a.out")
    clock.now += 1
    rejects.record("header_checksum", "a.out")
    clock.now += 1
    rejects.record("header_checksum", "b.out")
    clock.now += 1
    rejects.record("bad_magic", "a.out")
    clock.now += 5  # exactly `quiet`: a new burst
    assert rejects.record("truncated", "c.out", "message of 3 bytes")
    assert log.lines == [
        "rejected a message from a.out: bad_magic",
        "3 more rejected since the last report 8.0s ago (bad_magic 1, header_checksum 2)",
        "rejected a message from c.out: truncated: message of 3 bytes",
    ]
    assert rejects.pending == 0 and rejects.total == 5


def test_no_summary_when_nothing_went_unlogged(rl):
    rejects, log, clock = rl
    rejects.record("bad_magic", "a.out")
    clock.now += 60
    rejects.record("bad_magic", "a.out")
    assert log.lines == ["rejected a message from a.out: bad_magic"] * 2


def test_flush(rl):
    rejects, log, clock = rl
    assert rejects.flush() == 0 and log.lines == []
    rejects.record("bad_magic", "a.out")
    clock.now += 1
    rejects.record("bad_magic", "a.out")
    clock.now += 1
    assert rejects.flush() == 1
    assert log.lines[-1] == "1 more rejected since the last report 2.0s ago (bad_magic 1)"
    assert rejects.flush() == 0 and len(log.lines) == 2
    clock.now += 1  # still the same burst: counted, and summed up from the flush on
    rejects.record("bad_magic", "a.out")
    clock.now += 10
    rejects.record("bad_magic", "a.out")
    assert log.lines[2:] == [
        "1 more rejected since the last report 11.0s ago (bad_magic 1)",
        "rejected a message from a.out: bad_magic",
    ]


def test_quiet_zero_logs_every_rejection():
    log = FakeLogger()
    rejects = RejectLog(logger=log, clock=lambda: 0.0, quiet=0)
    for _ in range(3):
        assert rejects.record("bad_magic", "a.out")
    assert len(log.lines) == 3


def test_negative_quiet_is_refused():
    with pytest.raises(ValueError):
        RejectLog(quiet=-1)


def test_defaults_log_through_the_module_logger(caplog):
    caplog.set_level(logging.WARNING, logger="noded.dataplane.rejects")
    rejects = RejectLog()
    rejects.record(BadMagic("nope"), "x.out")
    rejects.record(BadMagic("nope"), "x.out")
    assert [r.getMessage() for r in caplog.records] == ["rejected a message from x.out: bad_magic: nope"]
    assert caplog.records[0].levelno == logging.WARNING


def test_counts_from_several_threads():
    rejects = RejectLog(logger=FakeLogger(), clock=lambda: 0.0)

    def work():
        for _ in range(2000):
            rejects.record("truncated", "t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rejects.total == 8000 and rejects.counts == {"truncated": 8000}
    assert rejects.pending == 7999
