import ctypes
import dataclasses
import math
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from noded.contract.wire import (
    BYTE_KINDS,
    DTYPE_CODES,
    HEADER_SIZE,
    MAGIC,
    MAX_NDIM,
    VERSION,
    BadField,
    BadMagic,
    Flags,
    Header,
    HeaderChecksum,
    Kind,
    LengthMismatch,
    PayloadChecksum,
    PixelFormat,
    Truncated,
    UnsupportedVersion,
    WireError,
    dtype_code,
    dtype_from_code,
    message_size,
    pack_header,
    pack_header_into,
    pack_message_into,
    payload_array,
    payload_checksum,
    payload_text,
    payload_view,
    unpack_head,
    unpack_header,
    verify_payload,
)

U16, U32, U64 = 2**16 - 1, 2**32 - 1, 2**64 - 1
ALL_DTYPES = list(DTYPE_CODES.values())
ARRAY_KINDS = [k for k in Kind if k not in BYTE_KINDS]
SHAPES = [(), (0,), (1,), (7,), (3, 5), (0, 4), (4, 0, 3), (2, 3, 5), (1, 1, 1, 1), (2, 3, 1, 5, 1, 3)]


def sample_array(dtype, shape):
    """Distinct, dtype-appropriate values (no NaNs, so == compares)."""
    n = math.prod(shape)
    if dtype == np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    values = np.arange(n) % 100
    if dtype.kind == "c":
        return (values + 1j * values[::-1]).astype(dtype).reshape(shape)
    return values.astype(dtype).reshape(shape)


def message(header, payload):
    buf = bytearray(message_size(header))
    written = pack_message_into(buf, header, payload)
    return buf, written


def raw_message(payload=b"", fix_crc=True, **fields):
    """A message built field by field (any values, valid or not) with, by default, a correct
    header crc; for the rejection tests."""
    f = dict(
        magic=MAGIC,
        version=VERSION,
        kind=Kind.TENSOR,
        dtype=2,
        ndim=1,
        flags=0,
        pixel_format=0,
        reserved0=0,
        shape=(len(payload),),
        sample_rate=0,
        channels=0,
        reserved1=0,
        timestamp_ns=0,
        seq=0,
        payload_len=len(payload),
        payload_crc=0,
        header_crc=0,
        sent_ns=0,
        padding=bytes(20),
    )
    f.update(fields)
    shape = tuple(f["shape"]) + (0,) * (MAX_NDIM - len(f["shape"]))
    head = bytearray(
        struct.pack(
            "<4sHBBBBBB6QIHHqQQIIQ",
            f["magic"],
            f["version"],
            f["kind"],
            f["dtype"],
            f["ndim"],
            f["flags"],
            f["pixel_format"],
            f["reserved0"],
            *shape,
            f["sample_rate"],
            f["channels"],
            f["reserved1"],
            f["timestamp_ns"],
            f["seq"],
            f["payload_len"],
            f["payload_crc"],
            f["header_crc"],
            f["sent_ns"],
        )
        + f["padding"]
    )
    if fix_crc:
        head[96:100] = bytes(4)
        head[96:100] = struct.pack("<I", zlib.crc32(head))
    return head + bytes(payload)


# ---------------------------------------------------------------------------- the layout


def test_constants():
    assert HEADER_SIZE == 128 and HEADER_SIZE % 64 == 0
    assert MAGIC == b"NDRT" and VERSION == 1 and MAX_NDIM == 6
    assert [(k.name, k.value) for k in Kind] == [
        ("AUDIO", 1),
        ("VIDEO", 2),
        ("TENSOR", 3),
        ("TEXT", 4),
        ("JSON", 5),
        ("CONTROL", 6),
    ]
    assert [(p.name, p.value) for p in PixelFormat] == [
        ("NONE", 0),
        ("GRAY8", 1),
        ("RGB24", 2),
        ("BGR24", 3),
        ("RGBA32", 4),
        ("YUV420P", 5),
        ("NV12", 6),
    ]
    assert Flags.PAYLOAD_CHECKSUM == 1 and Flags.END_OF_STREAM == 2


def test_dtype_codes_are_the_documented_table():
    # The codes are part of the wire format (and of noded-wire(7)): never renumber.
    assert {code: dt.str for code, dt in DTYPE_CODES.items()} == {
        1: "|b1",
        2: "|u1",
        3: "|i1",
        4: "<u2",
        5: "<i2",
        6: "<u4",
        7: "<i4",
        8: "<u8",
        9: "<i8",
        10: "<f2",
        11: "<f4",
        12: "<f8",
        13: "<c8",
        14: "<c16",
    }


def test_golden_bytes_at_the_documented_offsets():
    h = Header(
        Kind.VIDEO,
        np.dtype(np.uint8),
        (1080, 1920, 3),
        1080 * 1920 * 3,
        seq=0x0102030405060708,
        timestamp_ns=-2,
        sample_rate=48000,
        channels=2,
        pixel_format=PixelFormat.RGB24,
        flags=Flags.PAYLOAD_CHECKSUM | Flags.END_OF_STREAM,
        payload_crc=0xDEADBEEF,
    )
    b = pack_header(h)
    assert len(b) == 128
    assert b[0:4] == b"NDRT"
    assert b[4:6] == b"\x01\x00"  # version, little-endian
    assert b[6] == 2 and b[7] == 2 and b[8] == 3 and b[9] == 3 and b[10] == 2 and b[11] == 0
    assert struct.unpack_from("<6Q", b, 12) == (1080, 1920, 3, 0, 0, 0)
    assert struct.unpack_from("<IHH", b, 60) == (48000, 2, 0)
    assert struct.unpack_from("<q", b, 68) == (-2,)
    assert struct.unpack_from("<Q", b, 76) == (0x0102030405060708,)
    assert struct.unpack_from("<Q", b, 84) == (1080 * 1920 * 3,)
    assert struct.unpack_from("<I", b, 92) == (0xDEADBEEF,)
    assert b[100:128] == bytes(28)
    # header_crc: crc32 of the 128 bytes with bytes 96..99 zeroed.
    (crc,) = struct.unpack_from("<I", b, 96)
    assert crc == zlib.crc32(b[:96] + bytes(4) + b[100:])


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("code,dt", DTYPE_CODES.items())
def test_dtype_code_round_trip(code, dt):
    assert dtype_code(dt) == code and dtype_from_code(code) == dt
    assert dtype_code(dt.newbyteorder("=")) == code  # native order on this (LE) host
    assert dtype_code(dt.type) == code  # np.float32 as well as np.dtype("float32")


def test_dtype_aliases():
    assert dtype_code(np.dtype(np.longlong)) == dtype_code(np.dtype("<i8"))
    assert dtype_code("float32") == 11
    assert dtype_code(np.dtype("f4", metadata={"unit": "m"})) == 11


@pytest.mark.parametrize(
    "dt",
    [
        ">f4",
        ">i2",
        ">c8",
        "O",
        "U3",
        "S4",
        "M8[ns]",
        "m8[s]",
        "V8",
        [("a", "<f4"), ("b", "<i4")],
        ("<f4", (2,)),
        "f16",
        "longdouble",
    ],
)
def test_unsupported_dtypes(dt):
    with pytest.raises(BadField):
        dtype_code(np.dtype(dt))


@pytest.mark.parametrize("code", [0, 15, 255, -1])
def test_unknown_dtype_code(code):
    with pytest.raises(BadField):
        dtype_from_code(code)


def test_dtype_code_of_garbage_is_bad_field():
    with pytest.raises(BadField):
        dtype_code("no such dtype")


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ARRAY_KINDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_array_round_trip(kind, dtype, shape):
    a = sample_array(dtype, shape)
    h = Header.for_array(kind, a, seq=42, timestamp_ns=123, flags=Flags.PAYLOAD_CHECKSUM)
    assert h.dtype == dtype and h.shape == shape and h.payload_len == a.nbytes
    buf, written = message(h, a)
    got = unpack_header(buf, len(buf))
    assert got == written and got.payload_crc == zlib.crc32(a.tobytes())
    verify_payload(buf, got)
    view = payload_array(buf, got)
    assert view.dtype == dtype and view.shape == shape
    np.testing.assert_array_equal(view, a)


@pytest.mark.parametrize("kind", sorted(BYTE_KINDS))
@pytest.mark.parametrize("text", ["", "hello", "ünïcødé ✓ 😀", "x" * 100_001, '{"a": [1, 2]}'])
def test_text_round_trip(kind, text):
    data = text.encode()
    h = Header.for_bytes(kind, data, seq=1)
    assert h.dtype == np.uint8 and h.shape == (len(data),) and h.payload_len == len(data)
    buf, _ = message(h, data)
    got = unpack_header(buf, len(buf))
    assert got == h
    assert payload_text(buf, got) == text
    assert bytes(payload_view(buf, got)) == data
    assert payload_array(buf, got).tobytes() == data


def test_every_field_round_trips():
    h = Header(
        Kind.AUDIO,
        "int16",
        [480, 2],
        1920,
        seq=U64,
        timestamp_ns=-(2**63),
        sample_rate=U32,
        channels=U16,
        pixel_format=PixelFormat.NV12,
        flags=0xFF,
        payload_crc=U32,
    )
    buf = bytearray(message_size(h))
    pack_header_into(buf, h)
    got = unpack_header(buf, len(buf))
    assert got == h
    assert got.flags == 0xFF and Flags.END_OF_STREAM in got.flags  # unknown bits are kept
    assert got.timestamp_ns == -(2**63) and got.seq == U64


def test_big_video_frame_and_audio():
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    h = Header.for_array(Kind.VIDEO, frame, pixel_format=PixelFormat.BGR24, flags=Flags.PAYLOAD_CHECKSUM)
    buf, written = message(h, frame)
    got = unpack_header(buf, len(buf))
    verify_payload(buf, got)
    assert got.pixel_format is PixelFormat.BGR24
    assert np.array_equal(payload_array(buf, got), frame)

    audio = np.sin(np.arange(48000 * 2, dtype=np.float32)).reshape(48000, 2)
    h = Header.for_array(Kind.AUDIO, audio, sample_rate=48000, channels=2)
    buf, _ = message(h, audio)
    got = unpack_header(buf, len(buf))
    assert (got.sample_rate, got.channels) == (48000, 2)
    assert np.array_equal(payload_array(buf, got), audio)


def test_zero_d_array():
    a = np.array(3.5, dtype=np.float64)
    h = Header.for_array(Kind.TENSOR, a)
    assert h.shape == () and h.payload_len == 8
    buf, _ = message(h, a)
    view = payload_array(buf, unpack_header(buf, len(buf)))
    assert view.shape == () and view[()] == 3.5


def test_non_contiguous_source_is_sent_in_c_order():
    a = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2].T  # neither C- nor F-contiguous
    h = Header.for_array(Kind.TENSOR, a)
    buf, _ = message(h, a)
    assert np.array_equal(payload_array(buf, unpack_header(buf, len(buf))), a)
    assert bytes(buf[HEADER_SIZE:]) == np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(
    "make",
    [
        lambda n: bytearray(n),
        lambda n: memoryview(bytearray(n)),
        lambda n: np.zeros(n, np.uint8),
        lambda n: memoryview((ctypes.c_uint8 * n)()),  # iceoryx2's Slice.as_memory_view()
    ],
    ids=["bytearray", "memoryview", "ndarray", "ctypes"],
)
def test_sample_buffer_types(make):
    a = np.arange(10, dtype=np.float32)
    h = Header.for_array(Kind.TENSOR, a, flags=Flags.PAYLOAD_CHECKSUM)
    buf = make(message_size(h))
    written = pack_message_into(buf, h, a)
    got = unpack_header(buf, message_size(h))
    assert got == written
    verify_payload(buf, got)
    view = payload_array(buf, got)
    assert np.array_equal(view, a)
    assert np.shares_memory(view, np.frombuffer(buf, np.uint8))
    text = "héllo".encode()
    h = Header.for_bytes(Kind.TEXT, text)
    buf = make(message_size(h))
    pack_message_into(buf, h, text)
    assert payload_text(buf, unpack_header(buf, message_size(h))) == "héllo"


def test_buffer_may_be_longer_than_the_message():
    a = np.arange(4, dtype=np.uint16)
    h = Header.for_array(Kind.TENSOR, a)
    buf = bytearray(message_size(h) + 100)
    pack_message_into(buf, h, a)
    got = unpack_header(buf, message_size(h))
    assert np.array_equal(payload_array(buf, got), a)


def test_pack_header_into_writes_only_the_header():
    buf = bytearray(b"\xaa" * 200)
    h = Header(Kind.TENSOR, np.uint8, (72,), 72)
    pack_header_into(buf, h)
    assert buf[128:] == b"\xaa" * 72
    assert unpack_header(buf, 200) == h


# ---------------------------------------------------------------------------- views


def test_payload_array_is_a_zero_copy_view():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    buf, h = message(Header.for_array(Kind.TENSOR, a), a)
    view = payload_array(buf, unpack_header(buf, len(buf)))
    whole = np.frombuffer(buf, np.uint8)
    assert np.shares_memory(view, whole)
    assert view.__array_interface__["data"][0] == whole.__array_interface__["data"][0] + HEADER_SIZE
    buf[HEADER_SIZE : HEADER_SIZE + 4] = np.float32(99).tobytes()  # the sender's memory changes...
    assert view[0, 0] == 99  # ...and the view sees it: no copy was made


def test_payload_array_is_read_only():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    buf, _ = message(Header.for_array(Kind.TENSOR, a), a)
    view = payload_array(buf, unpack_header(buf, len(buf)))
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1
    with pytest.raises(ValueError):
        view += 1
    with pytest.raises(ValueError):
        view.flags.writeable = True  # cannot be turned back on either
    pv = payload_view(buf, unpack_header(buf, len(buf)))
    assert pv.readonly
    with pytest.raises(TypeError):
        pv[0] = 1


def test_payload_text_rejects_invalid_utf8():
    buf = raw_message(b"ok \xff\xfe", kind=Kind.TEXT)
    h = unpack_header(buf, len(buf))
    with pytest.raises(BadField):
        payload_text(buf, h)


def test_payload_text_of_an_array_kind_is_a_caller_error():
    a = np.arange(3, dtype=np.uint8)
    buf, h = message(Header.for_array(Kind.TENSOR, a), a)
    with pytest.raises(ValueError):
        payload_text(buf, h)


def test_payload_checksum_reads_buffers_in_place():
    a = np.arange(1000, dtype=np.float64)
    assert payload_checksum(a) == zlib.crc32(a.tobytes())
    assert payload_checksum(memoryview(a.tobytes())) == zlib.crc32(a.tobytes())


def test_views_of_a_buffer_shorter_than_the_header_says():
    a = np.arange(8, dtype=np.uint8)
    buf, h = message(Header.for_array(Kind.TENSOR, a), a)
    with pytest.raises(Truncated):
        payload_array(buf[:-1], h)


# ---------------------------------------------------------------------------- Header()


def test_header_normalizes_loose_types():
    h = Header(3, "float32", [2, np.int64(3)], 24, pixel_format=0, flags=1)
    assert h.kind is Kind.TENSOR and h.dtype is DTYPE_CODES[11] and h.shape == (2, 3)
    assert type(h.shape[1]) is int and h.pixel_format is PixelFormat.NONE
    assert h.flags is Flags.PAYLOAD_CHECKSUM
    assert h == Header(Kind.TENSOR, np.dtype("<f4"), (2, 3), 24, flags=Flags.PAYLOAD_CHECKSUM)
    assert hash(h) == hash(Header(Kind.TENSOR, np.dtype("<f4"), (2, 3), 24, flags=Flags.PAYLOAD_CHECKSUM))


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind=0),
        dict(kind=7),
        dict(dtype=">f4"),
        dict(dtype="O"),
        dict(dtype="nonsense"),
        dict(shape=(1,) * 7, payload_len=4),
        dict(shape=(2, 2), payload_len=15),
        dict(shape=(-1, -4), payload_len=16),
        dict(shape=(2.0,), payload_len=8),
        dict(shape=(2**64,), payload_len=2**66),
        dict(pixel_format=7),
        dict(flags=256),
        dict(flags=-1),
        dict(seq=-1),
        dict(seq=2**64),
        dict(timestamp_ns=2**63),
        dict(sample_rate=2**32),
        dict(channels=2**16),
        dict(payload_crc=2**32),
        dict(kind=Kind.TEXT),
        dict(kind=Kind.JSON, dtype="u1", shape=(2, 2), payload_len=4),
        dict(kind=Kind.CONTROL, dtype="u1", shape=(), payload_len=1),
    ],
)
def test_invalid_headers_cannot_be_built(kw):
    base = dict(kind=Kind.TENSOR, dtype="f4", shape=(2,), payload_len=8)
    with pytest.raises(BadField):
        Header(**(base | kw))


def test_for_array_and_for_bytes():
    assert Header.for_array(Kind.TENSOR, [[1, 2], [3, 4]]).shape == (2, 2)
    h = Header.for_array(Kind.AUDIO, np.zeros((10, 2), np.int16), sample_rate=16000, channels=2)
    assert (h.payload_len, h.sample_rate, h.channels) == (40, 16000, 2)
    with pytest.raises(BadField):
        Header.for_array(Kind.TENSOR, np.zeros(3, ">f4"))
    h = Header.for_bytes(Kind.JSON, memoryview(b'{"a":1}'))
    assert h.shape == (7,) and h.dtype == np.uint8


def test_pack_message_into_checks_its_payload():
    a = np.zeros(4, np.float32)
    h = Header.for_array(Kind.TENSOR, a)
    with pytest.raises(Truncated):
        pack_message_into(bytearray(message_size(h) - 1), h, a)
    with pytest.raises(BadField):
        pack_message_into(bytearray(message_size(h)), h, np.zeros(4, np.int32))
    with pytest.raises(BadField):
        pack_message_into(bytearray(message_size(h)), h, np.zeros((2, 2), np.float32))
    with pytest.raises(BadField):
        pack_message_into(bytearray(message_size(h)), h, bytes(15))
    # Raw bytes of the right length are fine for an array kind.
    buf = bytearray(message_size(h))
    pack_message_into(buf, h, np.arange(4, dtype=np.float32).tobytes())
    assert payload_array(buf, unpack_header(buf, len(buf)))[3] == 3


def test_pack_message_into_without_checksum_leaves_payload_crc_alone():
    a = np.ones(3, np.uint8)
    h = Header.for_array(Kind.TENSOR, a)
    buf, written = message(h, a)
    assert written is h and unpack_header(buf, len(buf)).payload_crc == 0


# ---------------------------------------------------------------------------- rejections


def reject(buf, total_len=None):
    with pytest.raises(WireError) as info:
        unpack_header(buf, len(buf) if total_len is None else total_len)
    return info.value


@pytest.mark.parametrize("n", [0, 1, 64, 127])
def test_truncated(n):
    buf = raw_message(b"")
    err = reject(buf[:n])
    assert type(err) is Truncated and err.reason == "truncated"


def test_truncated_when_the_buffer_is_shorter_than_total_len():
    buf = raw_message(b"abcd")
    assert type(reject(buf, len(buf) + 1)) is Truncated
    assert type(reject(buf, -5)) is Truncated


def test_bad_magic():
    err = reject(raw_message(magic=b"NDRt"))
    assert type(err) is BadMagic and err.reason == "bad_magic"
    assert type(reject(bytes(200))) is BadMagic


@pytest.mark.parametrize("version", [0, 2, 256, U16])
def test_unsupported_version(version):
    # Checked before the crc: another version may place (or compute) the crc differently.
    for fix_crc in (True, False):
        err = reject(raw_message(version=version, fix_crc=fix_crc))
        assert type(err) is UnsupportedVersion and err.reason == "unsupported_version"


def test_header_checksum():
    buf = bytearray(raw_message(b"abc", seq=5))
    buf[76] ^= 0x10  # seq
    err = reject(buf)
    assert type(err) is HeaderChecksum and err.reason == "header_checksum"
    assert type(reject(raw_message(b"abc", fix_crc=False, header_crc=1234))) is HeaderChecksum


@pytest.mark.parametrize(
    "fields",
    [
        dict(kind=0),
        dict(kind=7),
        dict(kind=255),
        dict(dtype=0),
        dict(dtype=15),
        dict(dtype=255),
        dict(ndim=7, shape=(1,) * 6, sample_rate=4),
        dict(ndim=255),  # (7 dims would take in sample_rate)
        dict(pixel_format=7),
        dict(pixel_format=255),
        dict(ndim=1, shape=(4, 1)),  # a nonzero shape entry past ndim
        dict(ndim=0, shape=(0, 0, 0, 0, 0, 9), payload_len=1),
        dict(shape=(5,)),  # 5 x u1 != payload_len 4
        dict(dtype=11),  # 4 x f4 != 4
        dict(ndim=2, shape=(2, 2), kind=Kind.TEXT),  # byte kinds are 1-D...
        dict(dtype=3, kind=Kind.JSON),  # ...of uint8
        dict(ndim=0, shape=(), payload_len=1, kind=Kind.CONTROL),
        dict(ndim=1, shape=(2**62,), dtype=14, payload_len=0),  # the product overflows u64
    ],
)
def test_bad_field(fields):
    payload = b"abcd"[: fields.get("payload_len", 4)]
    err = reject(raw_message(payload, **fields))
    assert type(err) is BadField and err.reason == "bad_field"


@pytest.mark.parametrize("delta", [-1, 1, 4096])
def test_length_mismatch(delta):
    buf = raw_message(b"abcd") + bytes(max(delta, 0))
    err = reject(buf, HEADER_SIZE + 4 + delta)
    assert type(err) is LengthMismatch and err.reason == "length_mismatch"


def test_length_mismatch_on_a_huge_payload_len():
    buf = raw_message(b"", shape=(U64,), payload_len=U64)
    assert type(reject(buf)) is LengthMismatch


def test_padding_reserved_fields_and_unknown_flags_are_accepted():
    # Forward compatibility: a newer writer may use them (covered by header_crc all the same).
    buf = raw_message(b"ab", reserved0=0xFF, reserved1=0xBEEF, padding=b"\x5a" * 20, flags=0xF0)
    h = unpack_header(buf, len(buf))
    assert h.flags == 0xF0 and not h.flags & Flags.PAYLOAD_CHECKSUM
    assert bytes(payload_view(buf, h)) == b"ab"


def test_sent_ns_is_the_u64_at_offset_100_and_round_trips():
    h = Header.for_bytes(Kind.TEXT, b"hi", seq=3, sent_ns=0x0102030405060708)
    buf = bytearray(message_size(h))
    pack_message_into(buf, h, b"hi")
    assert bytes(buf[100:108]) == bytes.fromhex("0807060504030201") and not any(buf[108:HEADER_SIZE])
    assert unpack_header(buf, len(buf)).sent_ns == 0x0102030405060708
    assert unpack_head(bytes(buf[:HEADER_SIZE]), len(buf)).sent_ns == 0x0102030405060708
    buf[104] ^= 1  # covered by header_crc
    with pytest.raises(HeaderChecksum):
        unpack_header(buf, len(buf))


def test_a_message_without_sent_ns_reads_as_unknown():
    # What a writer that predates sent_ns wrote: zero padding from offset 100.
    buf = raw_message(b"ab")
    assert unpack_header(buf, len(buf)).sent_ns == 0
    buf = raw_message(b"ab", sent_ns=U64)
    assert unpack_header(buf, len(buf)).sent_ns == U64


@pytest.mark.parametrize("sent_ns", [-1, U64 + 1])
def test_sent_ns_out_of_range_is_a_bad_field(sent_ns):
    with pytest.raises(BadField):
        Header.for_bytes(Kind.TEXT, b"x", sent_ns=sent_ns)


def test_payload_checksum():
    a = np.arange(100, dtype=np.uint8)
    buf, h = message(Header.for_array(Kind.TENSOR, a, flags=Flags.PAYLOAD_CHECKSUM), a)
    verify_payload(buf, unpack_header(buf, len(buf)))
    buf[HEADER_SIZE + 50] ^= 1
    h = unpack_header(buf, len(buf))  # the header is still fine...
    with pytest.raises(PayloadChecksum) as info:
        verify_payload(buf, h)  # ...the payload is not
    assert info.value.reason == "payload_checksum"


def test_payload_checksum_is_only_checked_when_flagged():
    buf = raw_message(b"abcd", payload_crc=12345)
    verify_payload(buf, unpack_header(buf, len(buf)))


def test_check_order_is_the_documented_one():
    # Several things wrong at once: the first check in the documented order wins.
    assert type(reject(raw_message(magic=b"XXXX", version=9), 10)) is Truncated
    assert type(reject(raw_message(magic=b"XXXX", version=9))) is BadMagic
    assert type(reject(raw_message(version=9, fix_crc=False))) is UnsupportedVersion
    assert type(reject(raw_message(kind=99, fix_crc=False, header_crc=1))) is HeaderChecksum
    assert type(reject(raw_message(b"abcd", kind=99), 7000)) is Truncated
    buf = raw_message(b"abcd", kind=99) + bytes(10)
    assert type(reject(buf)) is BadField


def test_reasons_are_distinct():
    classes = [Truncated, BadMagic, UnsupportedVersion, HeaderChecksum, BadField, LengthMismatch, PayloadChecksum]
    assert all(issubclass(c, WireError) and issubclass(c, ValueError) for c in classes)
    assert len({c.reason for c in classes}) == len(classes)


# ---------------------------------------------------------------------------- properties


@st.composite
def headers(draw):
    kind = draw(st.sampled_from(Kind))
    if kind in BYTE_KINDS:
        dtype = np.dtype(np.uint8)
        shape = (draw(st.integers(0, 300)),)
    else:
        dtype = draw(st.sampled_from(ALL_DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 9), max_size=MAX_NDIM)))
        if draw(st.booleans()) and shape and 0 in shape:
            # Big dimensions, with a zero elsewhere so that the payload stays empty.
            i = draw(st.integers(0, len(shape) - 1))
            if shape[i] != 0 or shape.count(0) > 1:
                shape = shape[:i] + (draw(st.integers(0, 2**60)),) + shape[i + 1 :]
                # numpy's own limit (wire rejects shapes beyond it: see the test below)
                assume(math.prod(d for d in shape if d) * dtype.itemsize < 2**63)
    return Header(
        kind,
        dtype,
        shape,
        math.prod(shape) * dtype.itemsize,
        seq=draw(st.integers(0, U64)),
        timestamp_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        sample_rate=draw(st.integers(0, U32)),
        channels=draw(st.integers(0, U16)),
        pixel_format=draw(st.sampled_from(PixelFormat)),
        flags=draw(st.integers(0, 255)),
        payload_crc=draw(st.integers(0, U32)),
        sent_ns=draw(st.integers(0, U64) | st.just(0)),
    )


@given(headers())
def test_property_round_trip(h):
    buf = bytearray(message_size(h))
    pack_header_into(buf, h)
    got = unpack_header(buf, len(buf))
    assert got == h
    assert dataclasses.replace(got) == got  # what unpack returns passes Header's own checks
    assert pack_header(got) == bytes(buf[:HEADER_SIZE])
    view = payload_array(buf, got)
    assert view.shape == h.shape and view.dtype == h.dtype and view.nbytes == h.payload_len


@settings(max_examples=40)
@given(headers(), st.data())
def test_property_any_single_bit_flip_in_the_header_is_rejected(h, data):
    buf = bytearray(message_size(h))
    pack_header_into(buf, h)
    for bit in range(HEADER_SIZE * 8):  # every bit, not a sample of them
        buf[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((HeaderChecksum, BadMagic, UnsupportedVersion)):
            unpack_header(buf, len(buf))
        buf[bit // 8] ^= 1 << (bit % 8)
    # Any other value of any single byte, too.
    pos = data.draw(st.integers(0, HEADER_SIZE - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != buf[pos]))
    buf[pos] = value
    with pytest.raises((HeaderChecksum, BadMagic, UnsupportedVersion)):
        unpack_header(buf, len(buf))


def consume(buf, total_len):
    """What a receiver does with a message; only WireError may escape."""
    try:
        h = unpack_header(buf, total_len)
        verify_payload(buf, h)
        payload_array(buf, h)
        payload_view(buf, h)
        if h.kind in BYTE_KINDS:
            payload_text(buf, h)
    except WireError as e:
        event(e.reason)  # pytest --hypothesis-show-statistics shows which checks were reached
        return None
    event("accepted")
    return h


@given(
    st.binary(max_size=HEADER_SIZE) | st.binary(min_size=HEADER_SIZE, max_size=400), st.none() | st.integers(-10, 500)
)
def test_property_arbitrary_bytes_raise_only_wire_errors(data, total_len):
    consume(data, len(data) if total_len is None else total_len)


@given(st.binary(min_size=HEADER_SIZE - 6, max_size=400))
def test_property_arbitrary_bytes_after_magic_and_version_raise_only_wire_errors(data):
    framed = MAGIC + b"\x01\x00" + data
    consume(framed, len(framed))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        dict(
            kind=st.integers(0, 255) | st.sampled_from(Kind),
            dtype=st.integers(0, 255) | st.integers(1, 14),
            ndim=st.integers(0, 255) | st.integers(0, 6),
            flags=st.integers(0, 255),
            pixel_format=st.integers(0, 255),
            reserved0=st.integers(0, 255),
            shape=st.lists(st.integers(0, U64) | st.integers(0, 40), min_size=6, max_size=6),
            sample_rate=st.integers(0, U32),
            channels=st.integers(0, U16),
            reserved1=st.integers(0, U16),
            timestamp_ns=st.integers(-(2**63), 2**63 - 1),
            seq=st.integers(0, U64),
            payload_len=st.integers(0, U64) | st.integers(0, 300),
            payload_crc=st.integers(0, U32),
            sent_ns=st.integers(0, U64),
            padding=st.binary(min_size=20, max_size=20),
        )
    ),
    st.binary(max_size=300),
)
def test_property_any_checksummed_header_raises_only_wire_errors(fields, payload):
    # Valid header crc, arbitrary fields: reaches every field check.
    buf = raw_message(payload, **fields)
    h = consume(buf, len(buf))
    if h is not None:
        assert HEADER_SIZE + h.payload_len == len(buf)
        assert math.prod(h.shape) * h.dtype.itemsize == h.payload_len
        assert dataclasses.replace(h) == h


RAW_FIELDS = dict(
    kind=st.integers(0, 255),
    dtype=st.integers(0, 255),
    ndim=st.integers(0, 255),
    flags=st.integers(0, 255),
    pixel_format=st.integers(0, 255),
    reserved0=st.integers(0, 255),
    shape=st.lists(st.integers(0, U64) | st.integers(0, 10), min_size=0, max_size=6),
    sample_rate=st.integers(0, U32),
    channels=st.integers(0, U16),
    reserved1=st.integers(0, U16),
    timestamp_ns=st.integers(-(2**63), 2**63 - 1),
    seq=st.integers(0, U64),
    payload_len=st.integers(0, U64) | st.integers(0, 300),
    payload_crc=st.integers(0, U32),
    sent_ns=st.integers(0, U64),
    padding=st.binary(min_size=20, max_size=20),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.data())
def test_property_mutated_valid_headers_raise_only_wire_errors(h, data):
    # A valid message with up to three raw fields replaced by any value (crc kept valid):
    # reaches the accepting path as well as every field check.
    assume(h.payload_len <= 4096)
    fields = dict(
        kind=h.kind,
        dtype=dtype_code(h.dtype),
        ndim=len(h.shape),
        flags=h.flags,
        pixel_format=h.pixel_format,
        shape=h.shape,
        sample_rate=h.sample_rate,
        channels=h.channels,
        timestamp_ns=h.timestamp_ns,
        seq=h.seq,
        payload_len=h.payload_len,
        payload_crc=h.payload_crc,
        sent_ns=h.sent_ns,
    )
    for name in data.draw(st.sets(st.sampled_from(sorted(RAW_FIELDS)), max_size=3)):
        fields[name] = data.draw(RAW_FIELDS[name], label=name)
    payload = data.draw(st.binary(min_size=h.payload_len, max_size=h.payload_len), label="payload")
    buf = raw_message(payload, **fields)
    slack = data.draw(st.integers(-2, 2), label="slack")
    consume(buf + bytes(max(slack, 0)), len(buf) + slack)


def test_accepted_flipped_payload_bytes_are_caught_by_the_payload_crc():
    a = np.arange(64, dtype=np.uint8)
    buf, _ = message(Header.for_array(Kind.TENSOR, a, flags=Flags.PAYLOAD_CHECKSUM), a)
    for bit in range(64 * 8):
        buf[HEADER_SIZE + bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(PayloadChecksum):
            verify_payload(buf, unpack_header(buf, len(buf)))
        buf[HEADER_SIZE + bit // 8] ^= 1 << (bit % 8)


def test_module_never_loops_over_payload_bytes_in_python():
    # A 32 MB message goes through the receive path in well under a second.
    a = np.zeros(32 * 2**20, np.uint8)
    buf, _ = message(Header.for_array(Kind.TENSOR, a, flags=Flags.PAYLOAD_CHECKSUM), a)
    t0 = time.perf_counter()
    h = unpack_header(buf, len(buf))
    verify_payload(buf, h)
    payload_array(buf, h)
    assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------------------- the man page

MAN_PAGE = Path(__file__).resolve().parents[2] / "man" / "noded-wire.7"


def test_man_page_layout_table_matches_the_struct():
    rows = re.findall(r"^(\d+)\t(\d+)\t[^\t]+\t(\w+)\t", MAN_PAGE.read_text(), re.M)
    fields = [(int(off), int(size), name) for off, size, name in rows]
    assert [name for _, _, name in fields] == [
        "magic",
        "version",
        "kind",
        "dtype",
        "ndim",
        "flags",
        "pixel_format",
        "reserved",
        "shape",
        "sample_rate",
        "channels",
        "reserved",
        "timestamp_ns",
        "seq",
        "payload_len",
        "payload_crc",
        "header_crc",
        "sent_ns",
        "padding",
    ]
    # Contiguous, and adding up to the header.
    assert all(off == prev_off + prev_size for (prev_off, prev_size, _), (off, _, _) in zip(fields, fields[1:]))
    assert fields[-1][0] + fields[-1][1] == HEADER_SIZE
    sizes = [struct.calcsize("<" + c) for c in "4s H B B B B B B 6Q I H H q Q Q I I Q".split()]
    assert [size for _, size, _ in fields[:-1]] == sizes


def test_man_page_example_is_what_the_code_writes():
    text = MAN_PAGE.read_text()
    dump = text[text.index(".ft CR\n") + 7 : text.index("\n.ft\n")]
    example = bytes.fromhex("".join(line.split(":")[1] for line in dump.splitlines()))
    h = Header.for_bytes(Kind.TEXT, b"hi", seq=7, flags=Flags.PAYLOAD_CHECKSUM)
    buf = bytearray(message_size(h))
    pack_message_into(buf, h, b"hi")
    assert bytes(buf) == example
    h = unpack_header(example, len(example))
    assert f"payload_crc {h.payload_crc:#010x}" in text
    assert f"header_crc {struct.unpack_from('<I', example, 96)[0]:#010x}" in text


@pytest.mark.parametrize("shape", [(1_024_819_115_206_086_201, 0, 9), (2**40, 2**30, 0), (2**62, 0, 4)])
def test_empty_shapes_numpy_cannot_view_are_rejected(shape):
    with pytest.raises(BadField, match="numpy cannot"):
        Header(Kind.TENSOR, np.dtype("u1"), shape, 0)
    ok = Header(Kind.TENSOR, np.dtype("u1"), (0,), 0)
    buf = bytearray(pack_header(ok))
    struct.pack_into("<3Q", buf, 12, *shape)  # forge the shape, then fix ndim and the crc
    buf[8] = len(shape)
    struct.pack_into("<I", buf, 96, 0)
    struct.pack_into("<I", buf, 96, zlib.crc32(buf))
    with pytest.raises(BadField, match="numpy cannot"):
        unpack_header(bytes(buf), len(buf))
    assert payload_array(bytes(pack_header(ok)), ok).shape == (0,)


def test_a_geometry_seen_before_is_still_checked_per_message() -> None:
    """unpack_head validates each geometry once (a cache): the per-message checks (length,
    header crc) and the fields left out of the cache still apply to every message."""
    from noded.contract import wire

    h = Header(Kind.TENSOR, np.dtype("f4"), (3, 5), 60, seq=1, timestamp_ns=-7, sent_ns=11, payload_crc=9)
    good = pack_header(h)
    wire._GEOMETRIES.clear()
    assert unpack_head(good, HEADER_SIZE + 60) == h
    assert len(wire._GEOMETRIES) == 1
    for seq, ts, sent in [(2, 0, 12), (U64, -(2**63), U64), (0, 2**63 - 1, 0)]:
        other = dataclasses.replace(h, seq=seq, timestamp_ns=ts, sent_ns=sent, flags=Flags.END_OF_STREAM)
        assert unpack_head(pack_header(other), HEADER_SIZE + 60) == other
    with pytest.raises(LengthMismatch):
        unpack_head(good, HEADER_SIZE + 61)
    corrupt = bytearray(good)
    corrupt[76] ^= 1  # seq: a per-message field, covered by the header crc
    with pytest.raises(HeaderChecksum):
        unpack_head(bytes(corrupt), HEADER_SIZE + 60)
    # A geometry that fails is never cached: it fails every time.
    bad = bytearray(good)
    struct.pack_into("<Q", bad, 84, 64)  # payload_len disagrees with the shape
    struct.pack_into("<I", bad, 96, 0)
    struct.pack_into("<I", bad, 96, zlib.crc32(bytes(bad[:96]) + bytes(4) + bytes(bad[100:])))
    for _ in range(2):
        with pytest.raises(BadField):
            unpack_head(bytes(bad), HEADER_SIZE + 64)
    assert len(wire._GEOMETRIES) == 2  # h's, and h's with END_OF_STREAM (flags are in the key)


def test_the_geometry_cache_is_bounded() -> None:
    from noded.contract import wire

    wire._GEOMETRIES.clear()
    for n in range(1, wire._MAX_GEOMETRIES * 2 + 1):
        h = Header(Kind.TENSOR, np.dtype("u1"), (n,), n)
        assert unpack_head(pack_header(h), HEADER_SIZE + n) == h
    assert len(wire._GEOMETRIES) <= wire._MAX_GEOMETRIES
