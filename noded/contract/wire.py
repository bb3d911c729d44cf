"""The data-plane wire format: one message is one iceoryx2 sample.

A sample is a fixed 128-byte header followed by the payload::

    offset 0    header (HEADER_SIZE = 128 bytes, little-endian, layout below)
    offset 128  payload (payload_len bytes): the array's bytes in C order, or UTF-8 text

The sample is exactly ``HEADER_SIZE + payload_len`` bytes long. The payload starts at
offset 128, so it keeps the 64-byte alignment of the sample start.

Header layout (``struct`` format ``<4sHBBBBBB6QIHHqQQIIQ`` + zero padding)::

    off size field         meaning
      0   4  magic         b"NDRT"
      4   2  version       VERSION (1)
      6   1  kind          Kind
      7   1  dtype         dtype code (DTYPE_CODES)
      8   1  ndim          number of dimensions, 0..MAX_NDIM
      9   1  flags         Flags
     10   1  pixel_format  PixelFormat (VIDEO; NONE otherwise)
     11   1  reserved      written 0, ignored on read
     12  48  shape         6 x u64: shape[0..ndim), then zeros
     60   4  sample_rate   u32, Hz (AUDIO; 0 when not applicable)
     64   2  channels      u16 (AUDIO; 0 when not applicable)
     66   2  reserved      written 0, ignored on read
     68   8  timestamp_ns  i64, sender-defined clock (0 = unset)
     76   8  seq           u64, sender's sequence number
     84   8  payload_len   u64, payload bytes after the header
     92   4  payload_crc   u32, zlib.crc32 of the payload (when Flags.PAYLOAD_CHECKSUM)
     96   4  header_crc    u32, zlib.crc32 of bytes 0..127 with bytes 96..99 zeroed
    100   8  sent_ns       u64, CLOCK_MONOTONIC ns when the producer sent it (0 = unknown)
    108  20  padding       written 0, ignored on read (still covered by header_crc)

``sent_ns`` lives in what version 1 called padding: a reader that predates it ignores it.

Receivers call ``unpack_header`` (validates everything but the payload bytes), then
optionally ``verify_payload``, then ``payload_array`` / ``payload_text`` / ``payload_view``
for read-only, zero-copy views. Every rejection is a ``WireError`` subclass carrying a
short ``reason``. The full specification, with the compatibility rules, is noded-wire(7)
(man/noded-wire.7); keep both in step.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

import numpy as np

HEADER_SIZE = 128
MAGIC = b"NDRT"
VERSION = 1
MAX_NDIM = 6

# The fields, in order; the 20 trailing pad bytes ("x") are written as zeros by pack_into.
_LAYOUT = struct.Struct("<4sHBBBBBB6QIHHqQQIIQ20x")
_HEADER_CRC = struct.Struct("<I")
HEADER_CRC_OFFSET = 96
PAYLOAD_CRC_OFFSET = 92
SENT_NS_OFFSET = 100
_FIELDS_END = 108  # end of the last field; bytes 108..127 are padding
assert _LAYOUT.size == HEADER_SIZE
assert struct.calcsize("<4sHBBBBBB6QIHHqQQ") == PAYLOAD_CRC_OFFSET
assert struct.calcsize("<4sHBBBBBB6QIHHqQQI") == HEADER_CRC_OFFSET
assert struct.calcsize("<4sHBBBBBB6QIHHqQQII") == SENT_NS_OFFSET
_ZERO_CRC = bytes(4)
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class Kind(IntEnum):
    AUDIO = 1
    VIDEO = 2
    TENSOR = 3
    TEXT = 4
    JSON = 5
    CONTROL = 6


class PixelFormat(IntEnum):
    NONE = 0
    GRAY8 = 1
    RGB24 = 2
    BGR24 = 3
    RGBA32 = 4
    YUV420P = 5
    NV12 = 6


class Flags(IntFlag):
    """Header flag bits. Bits 3..7 are unassigned: written 0, kept but ignored on read."""

    PAYLOAD_CHECKSUM = 1  # payload_crc holds zlib.crc32 of the payload
    END_OF_STREAM = 2  # the sender's last message on this stream
    FLUSH = 4  # on a CONTROL message: drop what is pending downstream (noded.contract.flush)


# Kinds whose payload is a byte string: dtype uint8, shape (payload_len,).
BYTE_KINDS = frozenset({Kind.TEXT, Kind.JSON, Kind.CONTROL})

# dtype code <-> numpy dtype (little-endian). Codes are part of the wire format: never
# renumber; new dtypes get new codes.
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype("bool"),
    2: np.dtype("<u1"),
    3: np.dtype("<i1"),
    4: np.dtype("<u2"),
    5: np.dtype("<i2"),
    6: np.dtype("<u4"),
    7: np.dtype("<i4"),
    8: np.dtype("<u8"),
    9: np.dtype("<i8"),
    10: np.dtype("<f2"),
    11: np.dtype("<f4"),
    12: np.dtype("<f8"),
    13: np.dtype("<c8"),
    14: np.dtype("<c16"),
}
# Keyed by dtype.str ("<f4", "|u1", "|b1"): cheap to compute and to hash, and a big-endian
# or structured dtype simply is not found.
_CODE_BY_STR = {dt.str: code for code, dt in DTYPE_CODES.items()}
# A dict keyed by the dtype objects is 4x faster to hit; misses (np.longlong, dtypes with
# metadata, ...) fall back to _CODE_BY_STR.
_CODE_BY_DTYPE = {dt: code for code, dt in DTYPE_CODES.items()}
_UINT8 = DTYPE_CODES[2]

# int -> enum member, so that decoding never calls an Enum constructor (slow, and raises
# ValueError rather than WireError on unknown values).
_KINDS: dict[int, Kind] = {int(k): k for k in Kind}
_PIXEL_FORMATS: dict[int, PixelFormat] = {int(p): p for p in PixelFormat}
_FLAGS: tuple[Flags, ...] = tuple(Flags(i) for i in range(256))


class WireError(ValueError):
    """A message (or a header being packed) violates the wire format.

    ``reason`` is a short, stable, machine-friendly name of the check that failed (used as
    the key of rejection counters); ``str(err)`` says what exactly was wrong.
    """

    reason = "wire"


class Truncated(WireError):
    reason = "truncated"


class BadMagic(WireError):
    reason = "bad_magic"


class UnsupportedVersion(WireError):
    reason = "unsupported_version"


class HeaderChecksum(WireError):
    reason = "header_checksum"


class BadField(WireError):
    reason = "bad_field"


class LengthMismatch(WireError):
    reason = "length_mismatch"


class PayloadChecksum(WireError):
    reason = "payload_checksum"


def dtype_code(dtype: Any) -> int:
    """The wire code of a numpy dtype; BadField if the format cannot carry it."""
    if not isinstance(dtype, np.dtype):
        try:
            dtype = np.dtype(dtype)
        except TypeError as e:
            raise BadField(f"not a dtype: {dtype!r}") from e
    return _code_of(dtype)


def _code_of(dt: np.dtype) -> int:
    code = _CODE_BY_DTYPE.get(dt)
    if code is None:
        code = _CODE_BY_STR.get(dt.str)
        if code is None:
            raise BadField(f"unsupported dtype {dt!r} (supported: {_supported_dtypes()})")
    return code


def dtype_from_code(code: int) -> np.dtype:
    dt = DTYPE_CODES.get(code)
    if dt is None:
        raise BadField(f"unknown dtype code {code}")
    return dt


def _supported_dtypes() -> str:
    return ", ".join(dt.name for dt in DTYPE_CODES.values())


@dataclass(frozen=True, slots=True)
class Header:
    """One message's header. Constructing one validates it (raising BadField), so a Header
    always describes a message that unpack_header accepts. Loose types are normalized:
    ints become the enums, "float32" or np.float32 the canonical np.dtype, lists tuples.

    For the byte kinds (TEXT, JSON, CONTROL) dtype is uint8 and shape is (payload_len,);
    ``Header.for_bytes`` builds those. For every kind, the product of shape times the
    dtype's itemsize equals payload_len (a 0-d array has shape () and one element).
    """

    kind: Kind
    dtype: np.dtype
    shape: tuple[int, ...]
    payload_len: int
    seq: int = 0
    timestamp_ns: int = 0
    sample_rate: int = 0
    channels: int = 0
    pixel_format: PixelFormat = PixelFormat.NONE
    flags: Flags = Flags(0)
    payload_crc: int = 0
    sent_ns: int = 0  # CLOCK_MONOTONIC ns of the send (Endpoint.send stamps it); 0 = unknown

    def __post_init__(self) -> None:
        # Coerce loose types (ints for enums, "float32", lists), each only when needed:
        # unpack_header passes exact types and pays for type checks only.
        kind = _KINDS.get(self.kind)
        if kind is None:
            raise BadField(f"unknown kind {self.kind!r}")
        if kind is not self.kind:
            object.__setattr__(self, "kind", kind)
        dt = self.dtype
        # Stored canonical (DTYPE_CODES' object), so that equal headers have equal dtypes.
        canonical = DTYPE_CODES[dtype_code(dt)]
        if canonical is not dt:
            object.__setattr__(self, "dtype", dt := canonical)
        shape = self.shape
        if type(shape) is not tuple:
            shape = _checked_shape(shape)
            object.__setattr__(self, "shape", shape)
        if len(shape) > MAX_NDIM:
            raise BadField(f"ndim {len(shape)} > {MAX_NDIM}")
        for d in shape:
            if type(d) is not int or d < 0 or d > _U64:
                shape = _checked_shape(shape)
                object.__setattr__(self, "shape", shape)
                break
        pf = _PIXEL_FORMATS.get(self.pixel_format)
        if pf is None:
            raise BadField(f"unknown pixel format {self.pixel_format!r}")
        if pf is not self.pixel_format:
            object.__setattr__(self, "pixel_format", pf)
        flags: int = self.flags
        if type(flags) is not Flags or flags > 255:
            flags = _checked_int(flags, "flags")
            if not 0 <= flags <= 255:
                raise BadField(f"flags {flags:#x} do not fit in 8 bits")
            object.__setattr__(self, "flags", _FLAGS[flags])
        if kind in BYTE_KINDS and (dt is not _UINT8 or len(shape) != 1):
            raise BadField(f"{kind.name} payloads are uint8 of shape (n,), got {dt} {shape}")
        if 0 in shape:
            _check_empty_shape(shape, dt)
        # math.prod(()) == 1: a 0-d array has one element.
        if math.prod(shape) * dt.itemsize != self.payload_len:
            raise BadField(
                f"shape {shape} of {dt} is {math.prod(shape) * dt.itemsize} bytes, payload_len says {self.payload_len}"
            )
        if not (
            0 <= self.seq <= _U64
            and _I64_MIN <= self.timestamp_ns <= _I64_MAX
            and 0 <= self.sample_rate <= _U32
            and 0 <= self.channels <= _U16
            and 0 <= self.payload_crc <= _U32
            and self.payload_len <= _U64
            and 0 <= self.sent_ns <= _U64
        ):
            raise BadField(f"a field does not fit its width: {self}")

    @classmethod
    def for_array(cls, kind: Kind, array: Any, **kw: Any) -> Header:
        """The header for sending ``array`` (any dtype in DTYPE_CODES; its bytes are sent in
        C order); ``kw`` sets the other fields (seq, timestamp_ns, sample_rate, ...)."""
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)
        return cls(kind, array.dtype, array.shape, array.nbytes, **kw)

    @classmethod
    def for_bytes(cls, kind: Kind, data: Any, **kw: Any) -> Header:
        """The header for a byte-string payload (TEXT/JSON UTF-8, CONTROL): bytes,
        bytearray, memoryview, or anything with the buffer protocol."""
        n = memoryview(data).nbytes
        return cls(kind, _UINT8, (n,), n, **kw)


def _check_empty_shape(shape: tuple[int, ...], dt: np.dtype) -> None:
    """An empty array's other dimensions still count for numpy: the product of the
    nonzero ones times the itemsize must fit in an intp, or no view of it can be made."""
    if math.prod(d for d in shape if d) * dt.itemsize > _I64_MAX:
        raise BadField(f"shape {shape} of {dt}: numpy cannot make an array of it (its nonzero dimensions are too big)")


def _checked_int(value: Any, what: str) -> int:
    try:
        return operator.index(value)  # ints, numpy integers; not floats
    except TypeError:
        raise BadField(f"{what}: {value!r} is not an integer") from None


def _checked_shape(shape: Any) -> tuple[int, ...]:
    try:
        dims = tuple(_checked_int(d, "shape") for d in shape)
    except TypeError:
        raise BadField(f"shape {shape!r} is not a sequence of integers") from None
    if any(d < 0 or d > _U64 for d in dims):
        raise BadField(f"shape {dims} has a dimension outside 0..2**64-1")
    return dims


def message_size(header: Header) -> int:
    """Bytes of the sample carrying this message (what the channel must loan)."""
    return HEADER_SIZE + header.payload_len


def pack_header_into(buf: Any, header: Header) -> None:
    """Write ``header`` at offset 0 of ``buf`` (a writable buffer of >= HEADER_SIZE bytes:
    a memoryview of the sample, a bytearray, a numpy uint8 array). Only the 128 header bytes
    are touched. Raises BadField if a field does not fit its width."""
    shape = header.shape
    ndim = len(shape)
    fields = (
        MAGIC, VERSION, header.kind, _code_of(header.dtype), ndim,
        header.flags, header.pixel_format, 0,
        *shape, *_ZERO_DIMS[ndim],
        header.sample_rate, header.channels, 0,
        header.timestamp_ns, header.seq, header.payload_len, header.payload_crc,
    )  # fmt: skip
    sent_ns = header.sent_ns
    try:
        # Packing twice (to bytes for the crc, then into buf) beats slicing buf for the crc.
        crc = zlib.crc32(_LAYOUT.pack(*fields, 0, sent_ns))
    except struct.error as e:
        raise BadField(f"a header field does not fit its width: {e}") from None
    _LAYOUT.pack_into(buf, 0, *fields, crc, sent_ns)


_ZERO_DIMS = tuple((0,) * (MAX_NDIM - n) for n in range(MAX_NDIM + 1))


def pack_header_patched_into(
    buf: Any, header: Header, seq: int, flags: int, payload_crc: int, sent_ns: int = 0
) -> None:
    """``pack_header_into(buf, dataclasses.replace(header, seq=seq, flags=flags,
    payload_crc=payload_crc, sent_ns=sent_ns))`` without building (and validating) a second
    Header: the same bytes. The four fields are range-checked by ``struct`` (seq u64,
    flags u8, payload_crc u32, sent_ns u64), which is all Header checks for them; BadField
    if one does not fit."""
    shape = header.shape
    ndim = len(shape)
    fields = (
        MAGIC, VERSION, header.kind, _code_of(header.dtype), ndim,
        flags, header.pixel_format, 0,
        *shape, *_ZERO_DIMS[ndim],
        header.sample_rate, header.channels, 0,
        header.timestamp_ns, seq, header.payload_len, payload_crc,
    )  # fmt: skip
    try:
        crc = zlib.crc32(_LAYOUT.pack(*fields, 0, sent_ns))
    except struct.error as e:
        raise BadField(f"a header field does not fit its width: {e}") from None
    _LAYOUT.pack_into(buf, 0, *fields, crc, sent_ns)


_TIMESTAMP_SEQ = struct.Struct("<qQ")
_CRC_SENT = struct.Struct("<IQ")  # header_crc, sent_ns: adjacent (offsets 96, 100)
TIMESTAMP_OFFSET = 68


def patch_template(template: bytes, timestamp_ns: int, seq: int, sent_ns: int = 0) -> bytes:
    """``template`` (``pack_header`` of a header with timestamp_ns, seq and sent_ns 0) with
    these three fields and its crc: the bytes ``pack_header`` makes of the header with them.
    BadField if one does not fit (timestamp_ns i64, seq u64, sent_ns u64)."""
    buf = bytearray(template)
    try:
        _TIMESTAMP_SEQ.pack_into(buf, TIMESTAMP_OFFSET, timestamp_ns, seq)
        _CRC_SENT.pack_into(buf, HEADER_CRC_OFFSET, 0, sent_ns)
    except struct.error as e:
        raise BadField(f"a header field does not fit its width: {e}") from None
    _HEADER_CRC.pack_into(buf, HEADER_CRC_OFFSET, zlib.crc32(buf))
    return bytes(buf)


def pack_header(header: Header) -> bytes:
    buf = bytearray(HEADER_SIZE)
    pack_header_into(buf, header)
    return bytes(buf)


def pack_message_into(buf: Any, header: Header, payload: Any) -> Header:
    """Write a whole message into ``buf`` (>= message_size(header) bytes): the payload (an
    ndarray, copied once, straight into ``buf``, or any bytes-like object), then the header.
    If header.flags has PAYLOAD_CHECKSUM, payload_crc is computed from the written bytes.
    Returns the header as written."""
    mv = memoryview(buf).cast("B")
    end = HEADER_SIZE + header.payload_len
    if mv.nbytes < end:
        raise Truncated(f"buffer of {mv.nbytes} bytes cannot hold a {end}-byte message")
    dst = mv[HEADER_SIZE:end]
    if isinstance(payload, np.ndarray):
        if payload.dtype.str != header.dtype.str or payload.shape != header.shape:
            raise BadField(f"payload is {payload.dtype} {payload.shape}, header says {header.dtype} {header.shape}")
        # np.copyto handles non-contiguous sources without an intermediate copy.
        np.copyto(np.frombuffer(dst, header.dtype).reshape(header.shape), payload, casting="no")
    else:
        src = memoryview(payload).cast("B")
        if src.nbytes != header.payload_len:
            raise BadField(f"payload is {src.nbytes} bytes, header says {header.payload_len}")
        dst[:] = src
    if header.flags & Flags.PAYLOAD_CHECKSUM:
        crc = zlib.crc32(dst)
        if crc != header.payload_crc:
            header = dataclasses.replace(header, payload_crc=crc)
    pack_header_into(buf, header)
    return header


def payload_checksum(buf_payload: Any) -> int:
    """zlib.crc32 of a payload (any C-contiguous buffer: memoryview, ndarray, bytes)."""
    return zlib.crc32(buf_payload)


def _bytes_view(buf: Any) -> memoryview:
    """``buf`` as a flat memoryview of bytes (no copy). Its format may be "<B" (ctypes
    arrays, e.g. iceoryx2's Slice.as_memory_view()): fine for slicing, zlib, struct and
    numpy, but not for slice assignment."""
    mv = buf if type(buf) is memoryview else memoryview(buf)
    if mv.itemsize != 1 or mv.ndim != 1:
        mv = mv.cast("B")  # TypeError for a non-contiguous buffer: a caller bug
    return mv


def unpack_header(buf: Any, total_len: int) -> Header:
    """Validate the header of the ``total_len``-byte message at the start of ``buf`` and
    return it. Checks, in this order, each failure raising its WireError subclass:

    Truncated (total_len < HEADER_SIZE, or buf shorter than total_len), BadMagic,
    UnsupportedVersion (version != VERSION), HeaderChecksum, BadField (unknown kind, dtype
    code or pixel format; ndim > MAX_NDIM; a nonzero shape entry past ndim; byte kinds
    that are not uint8 (n,); shape x itemsize != payload_len), LengthMismatch
    (HEADER_SIZE + payload_len != total_len).

    Reserved fields, padding and unassigned flag bits are not checked (forward
    compatibility). The payload bytes are not read: see verify_payload.
    """
    if total_len < HEADER_SIZE:
        raise Truncated(f"message of {total_len} bytes is shorter than the header ({HEADER_SIZE})")
    mv = buf if type(buf) is memoryview else memoryview(buf)
    if mv.nbytes < total_len:
        raise Truncated(f"buffer of {mv.nbytes} bytes is shorter than the message ({total_len})")
    if mv.itemsize != 1 or mv.ndim != 1:
        mv = mv.cast("B")
    return _unpack(mv, total_len)


def unpack_head(head: bytes, total_len: int) -> Header:
    """``unpack_header`` given only the first HEADER_SIZE bytes of a ``total_len``-byte
    message (a receiver copies them out of the sample in one call): the caller vouches
    that the message is ``total_len`` bytes long."""
    if total_len < HEADER_SIZE:
        raise Truncated(f"message of {total_len} bytes is shorter than the header ({HEADER_SIZE})")
    if len(head) != HEADER_SIZE:
        raise Truncated(f"{len(head)} header bytes, expected {HEADER_SIZE}")
    return _unpack(memoryview(head), total_len)


def _unpack(mv: memoryview, total_len: int) -> Header:
    f = _LAYOUT.unpack_from(mv)
    # f: 0 magic, 1 version, 2 kind, 3 dtype, 4 ndim, 5 flags, 6 pixel_format, 7 reserved,
    # 8..13 shape, 14 sample_rate, 15 channels, 16 reserved, 17 timestamp_ns, 18 seq,
    # 19 payload_len, 20 payload_crc, 21 header_crc, 22 sent_ns.
    if f[0] != MAGIC:
        raise BadMagic(f"magic {f[0]!r}, expected {MAGIC!r}")
    if f[1] != VERSION:
        raise UnsupportedVersion(f"wire version {f[1]}, this reader speaks {VERSION}")
    crc = zlib.crc32(mv[:HEADER_CRC_OFFSET])
    crc = zlib.crc32(_ZERO_CRC, crc)
    crc = zlib.crc32(mv[HEADER_CRC_OFFSET + 4 : HEADER_SIZE], crc)
    if crc != f[21]:
        raise HeaderChecksum(f"header crc {f[21]:#010x}, computed {crc:#010x}")
    # A producer sends one geometry over and over: the fields checked below (everything
    # but timestamp_ns, seq, payload_crc and sent_ns) are validated once per geometry and
    # message length, then looked up. Only geometries that passed every check are kept.
    key = (f[2:17], f[19], total_len)
    geometry = _GEOMETRIES.get(key)
    if geometry is None:
        geometry = _check_geometry(f, total_len)
        if len(_GEOMETRIES) >= _MAX_GEOMETRIES:
            _GEOMETRIES.clear()  # geometries that change every message: no cache
        _GEOMETRIES[key] = geometry
    kind, dtype, shape, payload_len, pf = geometry
    # Everything Header.__post_init__ would check is checked: build it 4x faster.
    header = _new_header(Header)
    _set_kind(header, kind)
    _set_dtype(header, dtype)
    _set_shape(header, shape)
    _set_payload_len(header, payload_len)
    _set_seq(header, f[18])
    _set_timestamp_ns(header, f[17])
    _set_sample_rate(header, f[14])
    _set_channels(header, f[15])
    _set_pixel_format(header, pf)
    _set_flags(header, _FLAGS[f[5]])
    _set_payload_crc(header, f[20])
    _set_sent_ns(header, f[22])
    return header


_GEOMETRIES: dict[Any, tuple[Kind, np.dtype, tuple[int, ...], int, PixelFormat]] = {}
_MAX_GEOMETRIES = 256


def _check_geometry(f: tuple[Any, ...], total_len: int) -> tuple[Kind, np.dtype, tuple[int, ...], int, PixelFormat]:
    """Validate the per-geometry fields of an unpacked header (see ``_unpack``)."""
    kind = _KINDS.get(f[2])
    if kind is None:
        raise BadField(f"unknown kind {f[2]}")
    dtype = DTYPE_CODES.get(f[3])
    if dtype is None:
        raise BadField(f"unknown dtype code {f[3]}")
    ndim = f[4]
    if ndim > MAX_NDIM:
        raise BadField(f"ndim {ndim} > {MAX_NDIM}")
    pf = _PIXEL_FORMATS.get(f[6])
    if pf is None:
        raise BadField(f"unknown pixel format {f[6]}")
    if any(f[8 + ndim : 14]):
        raise BadField(f"nonzero shape entries past ndim {ndim}: {f[8:14]}")
    shape = f[8 : 8 + ndim]
    payload_len = f[19]
    if kind in BYTE_KINDS and (dtype is not _UINT8 or ndim != 1):
        raise BadField(f"{kind.name} payloads are uint8 of shape (n,), got {dtype} {shape}")
    if 0 in shape:
        _check_empty_shape(shape, dtype)
    if math.prod(shape) * dtype.itemsize != payload_len:
        raise BadField(
            f"shape {shape} of {dtype} is {math.prod(shape) * dtype.itemsize} bytes, payload_len says {payload_len}"
        )
    if HEADER_SIZE + payload_len != total_len:
        raise LengthMismatch(f"payload_len {payload_len} + header {HEADER_SIZE} != message length {total_len}")
    return kind, dtype, shape, payload_len, pf


# Slot setters of Header, bypassing the frozen dataclass's __init__ (see unpack_header).
_new_header = object.__new__
(_set_kind, _set_dtype, _set_shape, _set_payload_len, _set_seq, _set_timestamp_ns,
 _set_sample_rate, _set_channels, _set_pixel_format, _set_flags, _set_payload_crc, _set_sent_ns) = (
    getattr(Header, name).__set__ for name in Header.__slots__
)  # fmt: skip
assert Header.__slots__ == (
    "kind",
    "dtype",
    "shape",
    "payload_len",
    "seq",
    "timestamp_ns",
    "sample_rate",
    "channels",
    "pixel_format",
    "flags",
    "payload_crc",
    "sent_ns",
)


def _payload_view(buf: Any, header: Header) -> memoryview:
    mv = _bytes_view(buf)
    end = HEADER_SIZE + header.payload_len
    if mv.nbytes < end:
        raise Truncated(f"buffer of {mv.nbytes} bytes is shorter than the message ({end})")
    return mv[HEADER_SIZE:end]


def verify_payload(buf: Any, header: Header) -> None:
    """If header.flags has PAYLOAD_CHECKSUM, check the payload's crc32 (PayloadChecksum);
    otherwise do nothing."""
    if header.flags & Flags.PAYLOAD_CHECKSUM:
        crc = zlib.crc32(_payload_view(buf, header))
        if crc != header.payload_crc:
            raise PayloadChecksum(f"payload crc {header.payload_crc:#010x}, computed {crc:#010x}")


def payload_view(buf: Any, header: Header) -> memoryview:
    """The payload bytes as a read-only memoryview into ``buf`` (no copy); e.g. for
    msgspec.json.decode of a JSON payload."""
    return _payload_view(buf, header).toreadonly()


def payload_array(buf: Any, header: Header) -> np.ndarray:
    """The payload as a read-only ndarray of header.dtype and header.shape viewing ``buf``
    (no copy). Valid only while the sample is held: copy it to keep it longer."""
    arr = np.frombuffer(_payload_view(buf, header).toreadonly(), header.dtype)
    return arr.reshape(header.shape)


def payload_text(buf: Any, header: Header) -> str:
    """The payload of a byte kind (TEXT, JSON, CONTROL) decoded as UTF-8; BadField if it is
    not valid UTF-8."""
    if header.kind not in BYTE_KINDS:
        raise ValueError(f"payload_text of a {header.kind.name} message")
    try:
        return str(_payload_view(buf, header), "utf-8")
    except UnicodeDecodeError as e:
        raise BadField(f"payload is not valid UTF-8: {e}") from None
