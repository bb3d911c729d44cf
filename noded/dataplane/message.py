"""What a node receives (``Message``) and what it fills to send (a loan).

Receiving. A ``Message`` wraps one iceoryx2 sample: ``msg.array`` is a read-only numpy
view of the payload in shared memory (no copy). Received memory is mapped read-only and
writing it SIGSEGVs, so the view is marked read-only and a write raises instead
(docs/dataplane.md, "Received memory is read-only"). ``msg.text`` / ``msg.json`` decode
byte kinds, ``msg.header`` is the validated ``wire.Header`` and ``msg.source`` says where
it came from ("node.port" or "input.name"). The sample stays borrowed exactly as long as
the Message *or any array/view taken from it* is referenced: every view's numpy ``base``
chain ends in a ``_Mapping`` that holds the ``Lease``, which holds the sample (a plain view
does not keep a sample alive, and reads a reused buffer once it is released:
docs/dataplane.md, "Views do not keep samples alive"). When the last reference goes, the
lease releases the sample and reports it, and the endpoint credits the producer. Keep a
copy (``msg.array.copy()``) to hold data longer than a few messages: a node holding
``depth`` messages of one input stalls its producer.

Sending. ``Loan`` is a loaned sample with a *writable* array at offset HEADER_SIZE; the
endpoint writes the header in place at send time and sends the sample itself (no copy).
``outgoing()`` turns a value handed to ``send`` (array, str, dict, bytes, Message) into
a header and the payload to copy once into a fresh loan.
"""

from __future__ import annotations

import ctypes
import math
import weakref
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from noded.contract.wire import (
    BYTE_KINDS,
    HEADER_SIZE,
    Flags,
    Header,
    Kind,
    PixelFormat,
    dtype_code,
    payload_text,
    payload_view,
)  # fmt: skip

_U1 = np.dtype("u1")


class _Mapping:
    """Shows numpy ``length`` bytes of a sample at ``ptr`` (``__array_interface__``) and
    keeps ``owner`` (the Lease or Loan) alive for as long as any array uses it."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, owner: object, ptr: int, shape: tuple[int, ...], dtype: np.dtype, readonly: bool) -> None:
        self.owner = owner
        typestr = _TYPESTR.get(dtype)
        if typestr is None:  # numpy builds dtype.str anew on every access (~0.5 us): once per dtype
            typestr = _TYPESTR[dtype] = dtype.str
        self.__array_interface__ = {"data": (ptr, readonly), "shape": shape, "typestr": typestr, "version": 3}


_TYPESTR: dict[np.dtype, str] = {}  # the wire's dtypes (noded.contract.wire.DTYPE_CODES), and uint8


def map_array(owner: object, ptr: int, shape: tuple[int, ...], dtype: np.dtype, *, readonly: bool) -> np.ndarray:
    """A numpy array over memory at ``ptr`` whose base keeps ``owner`` alive. Read-only
    arrays cannot be made writeable again (numpy refuses: the base exports no buffer)."""
    return np.asarray(_Mapping(owner, ptr, shape, dtype, readonly))


def owner_of(array: np.ndarray) -> object | None:
    """The Lease or Loan whose memory ``array`` (or the array it views) maps, if any."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.owner if isinstance(base, _Mapping) else None


class Lease:
    """Holds one received sample. When its last reference goes it hands the sample to
    ``on_release(input_index, sample)``, which releases it and credits the producer:
    the finalizer itself makes no iceoryx2 call, since it may run inside one (a garbage
    collection triggered by an allocation in the binding)."""

    __slots__ = ("_sample", "_on_release", "index", "ptr", "length")

    def __init__(self, sample: Any, length: int, index: int, on_release: Callable[[int, Any], None]) -> None:
        self._sample = sample
        self._on_release = on_release
        self.index = index
        self.ptr: int = sample.payload_ptr
        self.length = length

    def head(self) -> bytes:
        """A copy of the sample's first HEADER_SIZE bytes (fewer if it is shorter)."""
        return ctypes.string_at(self.ptr, min(self.length, HEADER_SIZE))

    def bytes(self) -> np.ndarray:
        """The whole sample (header and payload) as a read-only uint8 array."""
        return map_array(self, self.ptr, (self.length,), _U1, readonly=True)

    def __del__(self) -> None:
        sample, self._sample = self._sample, None
        if sample is not None:
            self._on_release(self.index, sample)


class Message:
    """One received message. Attributes: ``source`` and ``header`` (a ``wire.Header``);
    shortcuts for its fields: ``kind``, ``seq``, ``timestamp_ns``, ``sample_rate``,
    ``channels``, ``pixel_format``, ``flags``, ``end_of_stream``, ``flush``."""

    __slots__ = ("source", "header", "_lease", "_array")

    def __init__(self, source: str, header: Header, lease: Lease) -> None:
        self.source = source
        self.header = header
        self._lease = lease
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The payload as a read-only array of the header's dtype and shape (uint8 (n,)
        for TEXT/JSON/CONTROL), viewing shared memory; it keeps the sample borrowed."""
        if self._array is None:
            h, lease = self.header, self._lease
            self._array = map_array(lease, lease.ptr + HEADER_SIZE, h.shape, h.dtype, readonly=True)
        return self._array

    @property
    def data(self) -> memoryview:
        """The payload bytes, read-only (keeps the sample borrowed while referenced)."""
        return payload_view(self._lease.bytes(), self.header)

    @property
    def text(self) -> str:
        """A TEXT/JSON/CONTROL payload decoded from UTF-8 (a copy)."""
        return payload_text(self._lease.bytes(), self.header)

    @property
    def json(self) -> Any:
        """A JSON payload, parsed (a copy)."""
        if self.header.kind is not Kind.JSON:
            raise ValueError(f"json of a {self.header.kind.name} message")
        return msgspec.json.decode(self.data)

    kind = property(lambda self: self.header.kind)
    seq = property(lambda self: self.header.seq)
    timestamp_ns = property(lambda self: self.header.timestamp_ns)
    sample_rate = property(lambda self: self.header.sample_rate)
    channels = property(lambda self: self.header.channels)
    pixel_format = property(lambda self: self.header.pixel_format)
    flags = property(lambda self: self.header.flags)
    end_of_stream = property(lambda self: bool(self.header.flags & Flags.END_OF_STREAM))
    # A flush (noded.contract.flush): a CONTROL message with Flags.FLUSH; its payload,
    # decoded by ``noded.contract.flush.decode_flush(msg.data)``, says who raised it.
    flush = property(lambda self: self.header.kind is Kind.CONTROL and bool(self.header.flags & Flags.FLUSH))

    def __repr__(self) -> str:
        h = self.header
        return f"<Message from {self.source} {h.kind.name} {h.dtype} {h.shape} seq={h.seq}>"


class Loan:
    """A loaned sample of ``port`` and the header it will be sent with. ``array`` (made
    by ``map_array``, writable) is where the payload goes; ``sample`` is None once sent."""

    __slots__ = (
        "port",
        "sample",
        "header",
        "seq_given",
        "ptr",
        "_array_ref",
        "template",
        "timestamp_ns",
        "seq",
        "__weakref__",
    )

    def __init__(self, port: str, sample: Any, header: Header, seq_given: bool) -> None:
        self.port = port
        self.sample = sample
        self.header = header
        self.seq_given = seq_given
        self.ptr: int = sample.payload_ptr
        self._array_ref: weakref.ref[np.ndarray] | None = None  # the last array() made
        # Set by Endpoint.loan when ``header`` is a cached template (timestamp_ns and seq
        # 0): its packed bytes, and this message's timestamp_ns and seq.
        self.template: bytes | None = None
        self.timestamp_ns = 0
        self.seq = 0

    def array(self) -> np.ndarray:
        h = self.header
        arr = map_array(self, self.ptr + HEADER_SIZE, h.shape, h.dtype, readonly=False)
        self._array_ref = weakref.ref(arr)  # weak: the array keeps this loan alive, not back
        return arr

    def write_header(self, header: bytes) -> None:
        """Copy packed header bytes to the start of the sample."""
        ctypes.memmove(self.ptr, header, HEADER_SIZE)

    def header_bytes(self) -> np.ndarray:
        return map_array(self, self.ptr, (HEADER_SIZE,), _U1, readonly=False)

    def payload_bytes(self) -> np.ndarray:
        return map_array(self, self.ptr + HEADER_SIZE, (self.header.payload_len,), _U1, readonly=False)

    def made(self, array: np.ndarray) -> bool:
        """A cheap ``covers``: True if ``array`` is the very array ``array()`` returned
        last and still has the payload's shape and dtype, C-contiguous (shape, dtype and
        strides of an ndarray can be set in place; its data pointer cannot). False says
        nothing: ``covers`` may still be True (a view of the same bytes and geometry)."""
        ref = self._array_ref
        if ref is None or ref() is not array:
            return False
        h = self.header
        return array.shape == h.shape and array.dtype == h.dtype and array.flags.c_contiguous

    def covers(self, array: np.ndarray) -> bool:
        """True if ``array`` is this loan's whole payload (then sending it needs no copy)."""
        h = self.header
        return (
            array.__array_interface__["data"][0] == self.ptr + HEADER_SIZE
            and array.shape == h.shape and array.dtype == h.dtype and array.flags.c_contiguous
        )  # fmt: skip


def make_header(kind: Kind | int, dtype: Any, shape: Any, fields: dict[str, Any]) -> tuple[Header, bool]:
    """A validated header (BadField/TypeError on bad input) and whether seq was given."""
    dt = np.dtype(dtype)
    dtype_code(dt)  # BadField for a dtype the wire cannot carry
    dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    header = Header(Kind(kind), dt, dims, math.prod(dims) * dt.itemsize, **fields)
    return header, "seq" in fields


def outgoing(value: Any, kind: Kind | int | None, fields: dict[str, Any]) -> tuple[Header, bool, np.ndarray]:
    """What ``send(port, value, kind=..., **fields)`` sends when ``value`` is not a loan:
    the header, whether seq was given, and the payload as an array to copy once.

    * ``np.ndarray`` (or anything np.asarray takes): kind TENSOR unless given;
    * ``str``: UTF-8, kind TEXT; ``dict``/``list``: JSON; bytes-likes: CONTROL;
    * a received ``Message``: forwarded as it is (its kind and header fields, which
      ``fields`` override), payload copied.
    """
    if isinstance(value, Message):
        h = value.header
        base = {
            "seq": h.seq, "timestamp_ns": h.timestamp_ns, "sample_rate": h.sample_rate,
            "channels": h.channels, "pixel_format": h.pixel_format, "flags": h.flags & Flags.END_OF_STREAM,
        }  # fmt: skip
        header, _ = make_header(h.kind if kind is None else kind, h.dtype, h.shape, {**base, **fields})
        return header, True, value.array
    if isinstance(value, str):
        payload = np.frombuffer(value.encode(), _U1)
        kind = Kind.TEXT if kind is None else kind
    elif isinstance(value, (dict, list)):
        payload = np.frombuffer(msgspec.json.encode(value), _U1)
        kind = Kind.JSON if kind is None else kind
    elif isinstance(value, (bytes, bytearray, memoryview)):
        payload = np.frombuffer(value, _U1)
        kind = Kind.CONTROL if kind is None else kind
    else:
        payload = np.asarray(value)
        kind = Kind.TENSOR if kind is None else kind
        if Kind(kind) in BYTE_KINDS and payload.dtype != _U1:
            payload = payload.reshape(-1).view(_U1)
    header, seq_given = make_header(kind, payload.dtype, payload.shape, fields)
    return header, seq_given, payload


__all__ = ["Flags", "Kind", "Lease", "Loan", "Message", "PixelFormat", "map_array", "outgoing", "owner_of"]
