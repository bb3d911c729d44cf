"""Endpoints in one process (each its own iceoryx2 node): message lifetime, read-only views,
loans, credits, blocking, stop, rejects. Cross-process tests: test_dataplane_workers.py."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from noded.contract.wire import Flags, Header, Kind, PixelFormat
from noded.dataplane import endpoint as dataplane
from noded.dataplane.endpoint import Endpoint
from noded.errors import Stopped
from tests.unit.dataplane_support import Session, patch_header_packing, receive


def pair(session: Session, depth: int = 2, **kw: object) -> tuple[Endpoint, Endpoint]:
    planes = session.plan([("src.out", "sink")], depth=depth, **kw)  # type: ignore[arg-type]
    # Producer first: the sink subscribes and says hello in its constructor, as nobody
    # drives its inbox while this thread's first send waits for that hello.
    src = session.endpoint("src", planes["src"])
    sink = session.endpoint("sink", planes["sink"])
    return src, sink


def in_thread(fn: object) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


def test_a_view_keeps_the_sample_borrowed_until_its_last_reference(session: Session) -> None:
    src, sink = pair(session, depth=2)
    src.send("out", np.full(1000, 7, np.uint8))
    msg = receive(sink)
    view = msg.array[10:20]
    del msg
    gc.collect()
    assert src.in_flight("out") == [1]  # still borrowed through the view
    src.send("out", np.full(1000, 8, np.uint8))
    blocked = in_thread(lambda: src.send("out", np.full(1000, 9, np.uint8)))
    blocked.join(0.3)
    assert blocked.is_alive()  # depth 2: both messages are held
    assert (view == 7).all()  # not overwritten by the later sends
    second = receive(sink)
    assert second.array[0] == 8
    del second  # released: credit, so the blocked send goes out
    blocked.join(5)
    assert not blocked.is_alive()
    assert (view == 7).all()
    del view
    gc.collect()
    third = receive(sink)
    assert third.array[0] == 9
    del third
    src.wait(0.2)
    assert src.in_flight("out") == [0]


def test_received_arrays_are_read_only_and_stay_so(session: Session) -> None:
    src, sink = pair(session)
    src.send("out", np.arange(12, dtype=np.float32).reshape(3, 4))
    msg = receive(sink)
    arr = msg.array
    with pytest.raises(ValueError, match="read-only"):
        arr[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        arr.T[1] = 1
    with pytest.raises(ValueError):
        arr.flags.writeable = True
    with pytest.raises(TypeError):
        msg.data[0] = 1  # type: ignore[index]
    assert arr.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()


def test_kinds_and_header_fields_round_trip(session: Session) -> None:
    src, sink = pair(session, depth=4)
    audio = np.linspace(-1, 1, 960, dtype=np.float32).reshape(480, 2)
    src.send("out", audio, kind=Kind.AUDIO, sample_rate=48000, channels=2, timestamp_ns=123)
    src.send("out", "héllo wörld ✓ 你好 🎉")
    src.send("out", {"a": [1, 2.5, None], "ü": "x"})
    src.send("out", b"\x00\xffctl", flags=Flags.END_OF_STREAM)
    m = receive(sink)
    assert (m.kind, m.sample_rate, m.channels, m.timestamp_ns, m.seq) == (Kind.AUDIO, 48000, 2, 123, 0)
    assert m.source == "src.out" and m.array.dtype == np.float32 and np.array_equal(m.array, audio)
    assert receive(sink).text == "héllo wörld ✓ 你好 🎉"
    assert receive(sink).json == {"a": [1, 2.5, None], "ü": "x"}
    m = receive(sink)
    assert (m.kind, bytes(m.data), m.end_of_stream, m.seq) == (Kind.CONTROL, b"\x00\xffctl", True, 3)


def test_a_loan_is_sent_without_a_copy_and_then_frozen(session: Session) -> None:
    src, sink = pair(session, max_payload=1080 * 1920 * 3)
    out = src.loan("out", (1080, 1920, 3), np.uint8, kind=Kind.VIDEO, pixel_format=PixelFormat.RGB24, seq=41)
    assert out.flags.writeable and out.ctypes.data % 64 == 0
    out[...] = 3
    out[5, 6] = (1, 2, 3)
    src.send("out", out, timestamp_ns=99)
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="already sent"):
        src.send("out", out)
    m = receive(sink)
    assert (m.kind, m.pixel_format, m.seq, m.timestamp_ns) == (Kind.VIDEO, PixelFormat.RGB24, 41, 99)
    assert m.array.shape == (1080, 1920, 3) and m.array[5, 6].tolist() == [1, 2, 3] and m.array[0, 0, 0] == 3
    assert src.send("out", np.zeros(2)) is None and receive(sink).seq == 42  # seq continues


def test_copies_of_odd_arrays_are_bit_identical(session: Session) -> None:
    src, sink = pair(session, depth=4)
    rng = np.random.default_rng(5)
    sent = [
        rng.integers(-(2**62), 2**62, (3, 5, 7), dtype=np.int64),
        rng.standard_normal((1, 17, 3, 11)).astype(np.float16),
        rng.standard_normal((8, 9)).astype(np.float64)[:, ::2],  # not contiguous
        np.array(3.5),  # 0-d
        np.zeros((0, 4), np.int16),  # empty
    ]
    for i, arr in enumerate(sent):
        src.send("out", arr)
        m = receive(sink)
        assert m.array.dtype == arr.dtype and m.array.shape == arr.shape, i
        assert m.array.tobytes() == np.ascontiguousarray(arr).tobytes(), i


def test_a_producer_waits_for_its_consumer_to_say_hello(session: Session) -> None:
    planes = session.plan([("src.out", "sink")])
    src = session.endpoint("src", planes["src"])
    t = in_thread(lambda: src.send("out", "first"))
    t.join(0.3)
    assert t.is_alive()  # nobody subscribed yet: iceoryx2 would deliver it to nobody
    sink = session.endpoint("sink", planes["sink"])
    assert receive(sink).text == "first"
    t.join(5)
    assert not t.is_alive()


def test_stop_unblocks_a_blocked_send_and_it_releases_the_gil(session: Session) -> None:
    src, sink = pair(session, depth=1)
    src.send("out", "fills the window")
    ticks: list[float] = []
    done = threading.Event()

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    raised: list[BaseException] = []

    def blocked() -> None:
        try:
            src.send("out", "waits")
        except BaseException as e:
            raised.append(e)

    ticker, sender = in_thread(tick), in_thread(blocked)
    time.sleep(0.6)  # longer than DEAD_CHECK: the sender has been through its wait loop
    t0 = time.monotonic()
    src.stop()
    sender.join(2)
    done.set()
    ticker.join()
    assert not sender.is_alive() and time.monotonic() - t0 < 0.5
    assert len(raised) == 1 and isinstance(raised[0], Stopped)
    gaps = np.diff(ticks)
    assert len(ticks) > 100 and gaps.max() < 0.05, gaps.max()
    assert receive(sink).text == "fills the window"


def test_closing_an_endpoint_stops_a_send_blocked_in_another_thread(session: Session) -> None:
    src, sink = pair(session, depth=1)
    src.send("out", "fills the window")
    raised: list[BaseException] = []

    def blocked() -> None:
        try:
            src.send("out", "waits")
        except BaseException as e:
            raised.append(e)

    sender = in_thread(blocked)
    time.sleep(0.3)
    t0 = time.monotonic()
    src.close()
    sender.join(2)
    assert not sender.is_alive() and time.monotonic() - t0 < 1.0
    assert len(raised) == 1 and isinstance(raised[0], Stopped)
    with pytest.raises(Stopped):
        src.send("out", "after close")
    assert receive(sink).text == "fills the window"


def test_a_port_nobody_consumes_takes_anything(session: Session) -> None:
    src, _ = pair(session)
    arr = src.loan("nowhere", (4,), np.float32)
    arr[:] = 1
    src.send("nowhere", arr)
    src.send("nowhere", "text")
    assert src.stats["unconsumed"] == 2


@pytest.mark.parametrize(("corrupt", "reason"), [("magic", "bad_magic"), ("crc", "header_checksum")])
def test_malformed_messages_are_rejected_released_and_credited(
    session: Session, monkeypatch: pytest.MonkeyPatch, corrupt: str, reason: str
) -> None:
    src, sink = pair(session, depth=1)
    real = dataplane.pack_header_into

    def pack(buf: np.ndarray, header: Header) -> None:
        real(buf, header)
        if header.seq == 1:
            buf[0 if corrupt == "magic" else 20] ^= 0xFF

    patch_header_packing(monkeypatch, pack)
    for i in range(3):  # depth 1: each send needs the previous message's credit
        src.send("out", np.full(10, i, np.uint8))
        if i != 1:
            assert receive(sink).array[0] == i
        else:
            assert sink.receive() is None
    assert sink.stats["rejected"] == 1 and sink.rejects.count(reason) == 1


def test_payload_checksums_catch_corrupted_payloads(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    src, sink = pair(session, depth=2, verify=True)
    real = dataplane.pack_header_into

    def pack(buf: np.ndarray, header: Header) -> None:
        if header.seq == 0:
            header = dataplane._with(header, {"payload_crc": header.payload_crc ^ 1})
        real(buf, header)

    patch_header_packing(monkeypatch, pack)
    src.send("out", "corrupted")
    src.send("out", "fine")
    m = receive(sink)
    assert m.text == "fine" and m.flags & Flags.PAYLOAD_CHECKSUM
    assert sink.rejects.count("payload_checksum") == 1


def test_messages_dropped_in_another_thread_are_credited(session: Session) -> None:
    src, sink = pair(session, depth=1)
    src.send("out", "one")
    held = [receive(sink)]
    in_thread(lambda: (time.sleep(0.2), held.clear())).join()
    t0 = time.monotonic()
    src.send("out", "two")  # needs the credit of "one", dropped in the other thread
    assert time.monotonic() - t0 < 0.5
    assert receive(sink).text == "two"


def test_a_message_larger_than_max_payload_is_refused(session: Session) -> None:
    src, _ = pair(session, max_payload=1000)
    with pytest.raises(ValueError, match="exceeds its max"):
        src.send("out", np.zeros(1001, np.uint8))
    src.send("out", np.zeros(1000, np.uint8))
