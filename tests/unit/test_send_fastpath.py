"""The send fast paths of ``Endpoint.send``: headers patched without a second Header
(the same bytes as ``pack_header_into``), loans recognised without ``owner_of`` +
``covers`` (the same loans), credits already pending applied without a WaitSet cycle."""

from __future__ import annotations

import dataclasses
import random
import threading

import numpy as np
import pytest

from noded.contract.wire import (
    DTYPE_CODES,
    MAX_NDIM,
    BadField,
    Flags,
    Header,
    HeaderChecksum,
    Kind,
    LengthMismatch,
    PixelFormat,
    Truncated,
    pack_header,
    pack_header_into,
    pack_header_patched_into,
    patch_template,
    unpack_head,
    unpack_header,
)  # fmt: skip
from noded.dataplane import endpoint as dataplane
from tests.unit.dataplane_support import Session, receive

U64, U32 = (1 << 64) - 1, (1 << 32) - 1


def random_header(rng: random.Random) -> Header:
    kind = rng.choice(list(Kind))
    if kind in (Kind.TEXT, Kind.JSON, Kind.CONTROL):
        dt, shape = np.dtype("u1"), (rng.randrange(0, 5000),)
    else:
        dt = rng.choice(list(DTYPE_CODES.values()))
        shape = tuple(rng.randrange(0, 7) for _ in range(rng.randrange(0, MAX_NDIM + 1)))
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    return Header(
        kind, dt, shape, n,
        seq=rng.choice([0, 1, rng.randrange(U64 + 1), U64]),
        timestamp_ns=rng.randrange(-(1 << 63), 1 << 63),
        sample_rate=rng.randrange(U32 + 1), channels=rng.randrange(1 << 16),
        pixel_format=rng.choice(list(PixelFormat)), flags=Flags(rng.randrange(256)),
        payload_crc=rng.randrange(U32 + 1), sent_ns=rng.choice([0, rng.randrange(U64 + 1), U64]),
    )  # fmt: skip


def test_patched_headers_are_the_bytes_pack_header_into_writes() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        h = random_header(rng)
        seq = rng.choice([0, rng.randrange(U64 + 1), U64, h.seq])
        flags = rng.choice([h.flags, h.flags | Flags.PAYLOAD_CHECKSUM, Flags(rng.randrange(256))])
        crc = rng.choice([0, rng.randrange(U32 + 1), U32, h.payload_crc])
        sent = rng.choice([0, rng.randrange(U64 + 1), U64, h.sent_ns])
        want = np.full(200, 0xAB, np.uint8)
        got = want.copy()
        pack_header_into(want, dataclasses.replace(h, seq=seq, flags=flags, payload_crc=crc, sent_ns=sent))
        pack_header_patched_into(got, h, seq, flags, crc, sent)
        assert bytes(got) == bytes(want), h
        assert unpack_header(bytes(got[:128]) + bytes(h.payload_len), 128 + h.payload_len) == dataclasses.replace(
            h, seq=seq, flags=flags, payload_crc=crc, sent_ns=sent
        )


@pytest.mark.parametrize(("seq", "flags", "crc", "sent"), [
    (U64 + 1, 0, 0, 0), (-1, 0, 0, 0), (0, 256, 0, 0), (0, 0, U32 + 1, 0), (0, 0, 0, U64 + 1), (0, 0, 0, -1),
])  # fmt: skip
def test_patched_fields_out_of_range_raise_badfield_as_a_header_does(seq: int, flags: int, crc: int, sent: int) -> None:
    h = Header(Kind.TENSOR, np.dtype("f4"), (2,), 8)
    with pytest.raises(BadField):
        dataclasses.replace(h, seq=seq, flags=flags, payload_crc=crc, sent_ns=sent)
    buf = np.zeros(128, np.uint8)
    with pytest.raises(BadField):
        pack_header_patched_into(buf, h, seq, flags, crc, sent)
    assert not buf.any()


@pytest.mark.parametrize("verify", [False, True])
def test_sent_header_bytes_match_pack_header_into(
    session: Session, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    planes = session.plan([("src.out", "sink")], depth=4, verify=verify)
    src = session.endpoint("src", planes["src"])
    sink = session.endpoint("sink", planes["sink"])
    packed: list[tuple[bytes, Header]] = []
    real = dataplane.pack_header_patched_into

    def spy(buf: np.ndarray, header: Header, seq: int, flags: int, crc: int, sent: int) -> None:
        real(buf, header, seq, flags, crc, sent)
        packed.append(
            (bytes(buf[:128]), dataclasses.replace(header, seq=seq, flags=flags, payload_crc=crc, sent_ns=sent))
        )

    monkeypatch.setattr(dataplane, "pack_header_patched_into", spy)
    arr = src.loan("out", (3, 5), np.int16, kind=Kind.TENSOR, timestamp_ns=-7, flags=Flags.END_OF_STREAM)
    arr[...] = np.arange(15).reshape(3, 5)
    src.send("out", arr)  # fast path: no fields given at send
    src.send("out", np.arange(7, dtype=np.float64), timestamp_ns=5)  # copied: fast path too
    src.send("out", "text")
    loaned = src.loan("out", 4, np.uint8, seq=100)
    loaned[:] = 9
    src.send("out", loaned, channels=2)  # fields at send: the general path
    assert len(packed) == 3
    for raw, header in packed:
        want = np.zeros(128, np.uint8)
        pack_header_into(want, header)
        assert raw == bytes(want)
    msgs = [receive(sink) for _ in range(4)]
    assert [m.seq for m in msgs] == [0, 1, 2, 100]
    assert msgs[0].array.tolist() == np.arange(15).reshape(3, 5).tolist() and msgs[0].timestamp_ns == -7
    assert msgs[0].end_of_stream and msgs[1].timestamp_ns == 5 and msgs[2].text == "text"
    assert msgs[3].channels == 2 and msgs[3].array.tolist() == [9] * 4
    assert all(bool(m.flags & Flags.PAYLOAD_CHECKSUM) == verify for m in msgs)
    assert all(h.sent_ns > 0 for _, h in packed)
    del msgs


def test_which_arrays_are_sent_as_their_loan(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=8)
    src = session.endpoint("src", planes["src"])
    sink = session.endpoint("sink", planes["sink"])
    # the loaned array itself, and a view of the same bytes and geometry: no copy
    for make in (lambda a: a, lambda a: a[:], lambda a: a.view()):
        arr = src.loan("out", (4, 2), np.float32)
        arr[...] = 1
        view = make(arr)
        src.send("out", view)
        assert not view.flags.writeable
        with pytest.raises(ValueError, match="already sent"):
            src.send("out", arr)
        assert receive(sink).array.shape == (4, 2)
    # a slice, a reshaped view, an array reshaped in place: copied (the loan stays open)
    arr = src.loan("out", (4, 2), np.float32)
    arr[...] = 2
    for view in (arr[1:], arr.reshape(8), arr.T):
        src.send("out", view)
        assert view.flags.writeable
        m = receive(sink)
        assert m.array.shape == view.shape and (m.array == 2).all()
        del m
    arr.shape = (2, 4)
    src.send("out", arr)
    assert arr.flags.writeable and receive(sink).array.shape == (2, 4)
    arr.shape = (4, 2)
    src.send("out", arr)  # back to the loan's geometry: the loan itself
    assert not arr.flags.writeable and receive(sink).array.shape == (4, 2)
    # another port's loan is copied
    assert sink.receive() is None


def test_pending_credits_are_applied_without_a_waitset_cycle(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=1)
    src = session.endpoint("src", planes["src"])
    sink = session.endpoint("sink", planes["sink"])
    src.send("out", "one")
    assert receive(sink).text == "one"  # dropped at once: the credit is in src's inbox
    pumps = []
    real = src._pump
    src._pump = lambda timeout: (pumps.append(timeout), real(timeout))[1]  # type: ignore[method-assign]
    src.send("out", "two", timeout=5)
    assert pumps == [] and receive(sink).text == "two"


def test_patched_templates_are_the_bytes_pack_header_writes() -> None:
    rng = random.Random(99)
    for _ in range(3000):
        h = dataclasses.replace(random_header(rng), seq=0, timestamp_ns=0, sent_ns=0)
        ts, seq = rng.choice([0, 1, (1 << 63) - 1, rng.randrange(1 << 63)]), rng.randrange(U64 + 1)
        sent = rng.choice([0, 1, U64, rng.randrange(U64 + 1)])
        assert patch_template(pack_header(h), ts, seq, sent) == pack_header(
            dataclasses.replace(h, timestamp_ns=ts, seq=seq, sent_ns=sent)
        )
    with pytest.raises(BadField):
        patch_template(pack_header(h), 0, U64 + 1)
    with pytest.raises(BadField):
        patch_template(pack_header(h), 0, 0, U64 + 1)


def test_loans_from_templates_send_the_header_they_stand_for(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=8)
    src = session.endpoint("src", planes["src"])
    sink = session.endpoint("sink", planes["sink"])
    sent = [
        dict(shape=(2, 3), dtype=np.float32, kind=Kind.AUDIO, timestamp_ns=123),
        dict(shape=(2, 3), dtype="float32", kind=Kind.AUDIO, timestamp_ns=124, seq=50),  # seq given
        dict(shape=[4], dtype=np.uint8),  # a list: not hashable, no template
        dict(shape=5, dtype=np.int64, timestamp_ns=-5),  # negative: validated by a Header
        dict(shape=(2, 3), dtype=np.float32, kind=Kind.AUDIO),  # the cached template again
    ]
    for i, fields in enumerate(sent):
        fields = dict(fields)
        arr = src.loan("out", fields.pop("shape"), fields.pop("dtype"), **fields)
        arr[...] = i
        src.send("out", arr)
        assert not arr.flags.writeable
    msgs = [receive(sink) for _ in sent]
    assert [m.seq for m in msgs] == [0, 50, 51, 52, 53]
    assert [m.timestamp_ns for m in msgs] == [123, 124, 0, -5, 0]
    assert [m.kind for m in msgs] == [Kind.AUDIO, Kind.AUDIO, Kind.TENSOR, Kind.TENSOR, Kind.AUDIO]
    assert [m.array.shape for m in msgs] == [(2, 3), (2, 3), (4,), (5,), (2, 3)]
    assert [int(m.array.flat[0]) for m in msgs] == [0, 1, 2, 3, 4]
    assert len(src._templates) == 2  # (AUDIO, np.float32, (2, 3)) and (AUDIO, "float32", (2, 3))
    assert all(m.header.sent_ns > 0 for m in msgs)  # stamped on the template path too
    del msgs


def test_templates_are_bounded(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=4)
    src = session.endpoint("src", planes["src"])
    for n in range(dataplane.MAX_TEMPLATES * 2 + 1):
        arr = src.loan("out", (n + 1,), np.uint8)
        del arr  # unsent: back to the pool
        assert len(src._templates) <= dataplane.MAX_TEMPLATES


def test_a_stop_event_makes_sends_raise_stopped_without_asking_should_stop(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=4)
    asked = []
    stop = threading.Event()
    src = session.endpoint("src", planes["src"], should_stop=lambda: asked.append(1) or False, stop_event=stop)
    sink = session.endpoint("sink", planes["sink"])
    src.send("out", "one")  # not blocked: should_stop is not asked
    assert asked == [] and receive(sink).text == "one"
    stop.set()
    with pytest.raises(dataplane.Stopped):
        src.send("out", "two")


def test_unpack_head_reads_what_unpack_header_reads() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        h = random_header(rng)
        msg = pack_header(h) + bytes(h.payload_len)
        assert unpack_head(msg[:128], len(msg)) == unpack_header(msg, len(msg)) == h
        with pytest.raises(LengthMismatch):
            unpack_head(msg[:128], len(msg) + 1)
    with pytest.raises(Truncated):
        unpack_head(msg[:100], len(msg))
    with pytest.raises(Truncated):
        unpack_head(msg[:128], 127)
    with pytest.raises(HeaderChecksum):
        unpack_head(msg[:60] + bytes([msg[60] ^ 0xFF]) + msg[61:128], len(msg))  # sample_rate; crc as it was
