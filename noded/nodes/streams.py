"""What the media nodes share: audio out of a message, audio and end markers into a port,
and ``LocalMessage``, a received message built in memory (for running nodes in one
process: unit tests and the sequential mode of ``benchmarks/speech_latency.py``).

Conventions of the speech nodes (``vad``, ``asr``, ``responder``, ``tts``):

* audio is Kind.AUDIO, float32 in [-1, 1], shape (frames,) or (frames, channels), with
  ``sample_rate`` and ``channels`` in the header;
* an utterance's messages carry, in the header's ``timestamp_ns``, the CLOCK_MONOTONIC
  time at which its end of speech was fed into the pipeline (the chunk that held the last
  voiced sample), so that any consumer can compute "end of speech -> now";
* a stream ends with END_OF_STREAM (a bare CONTROL message with the flag): every node
  flushes what it holds, then sends its own end marker on each output.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec
import numpy as np

from noded.contract.wire import Flags, Kind
from noded.node import Context, Node


def audio_samples(msg: Any) -> np.ndarray:
    """A mono float32 copy of an AUDIO message's samples (channels averaged; int16 and
    int32 PCM scaled to [-1, 1]). ValueError for another kind."""
    if msg.kind is not Kind.AUDIO:
        raise ValueError(f"expected AUDIO, got a {msg.kind.name} message")
    data = np.asarray(msg.array)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    data = data.astype(np.float32, copy=True)
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()
    return data.reshape(-1)


def send_audio(ctx: Context, port: str, samples: np.ndarray, rate: int, timestamp_ns: int = 0) -> None:
    """Send mono float32 ``samples`` at ``rate`` Hz as one AUDIO message."""
    ctx.send(
        port,
        np.ascontiguousarray(samples, np.float32),
        kind=Kind.AUDIO,
        sample_rate=int(rate),
        channels=1,
        timestamp_ns=int(timestamp_ns),
    )


def send_end(ctx: Context, port: str = "out") -> None:
    """Tell the consumers of ``port`` that the stream has ended."""
    ctx.send(port, b"", kind=Kind.CONTROL, flags=Flags.END_OF_STREAM)


def is_end(msg: Any) -> bool:
    return bool(msg.flags & Flags.END_OF_STREAM)


class StreamNode(Node):
    """A node of a stream: ``handle(msg)`` gets each message of the ``kinds`` it takes
    (others are ignored); at END_OF_STREAM ``on_end()`` flushes what the node holds, then
    an end marker goes out on each of ``end_ports``. ``setup`` keeps ``self.ctx``.

    With ``reports_first``, the node tells when it began on a stream's first message:
    JSON ``{"event": "first_audio", "node", "received_ns", "fed_ns"}`` on port "events"
    (CLOCK_MONOTONIC; fed_ns is the message's timestamp), before handling it; "events"
    ends with the stream too."""

    kinds: frozenset[Kind] = frozenset()
    end_ports: tuple[str, ...] = ("out",)
    reports_first = False
    _first_seen = False

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, msg: Any) -> None:
        if msg.kind in self.kinds:  # a data message may carry END_OF_STREAM too
            if self.reports_first and not self._first_seen:
                self._first_seen = True
                self.ctx.send(
                    "events",
                    {
                        "event": "first_audio",
                        "node": self.node_id,
                        "received_ns": time.monotonic_ns(),
                        "fed_ns": msg.timestamp_ns,
                    },
                )
            self.handle(msg)
        if is_end(msg):
            self.on_end()
            self._first_seen = False
            events = ("events",) if self.reports_first and "events" not in self.end_ports else ()
            for port in self.end_ports + events:
                send_end(self.ctx, port)

    def handle(self, msg: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement handle()")

    def on_end(self) -> None:
        """Send what is held before the stream's end marker."""


class LocalMessage:
    """A received message made in memory, with the attributes the built-in nodes read:
    ``source``, ``kind``, ``array``, ``text``, ``json``, ``sample_rate``, ``channels``,
    ``pixel_format``, ``timestamp_ns``, ``flags``, ``end_of_stream``."""

    def __init__(
        self,
        value: Any,
        kind: Kind | int | None = None,
        *,
        source: str = "input.test",
        sample_rate: int = 0,
        channels: int = 0,
        timestamp_ns: int = 0,
        flags: int = 0,
        pixel_format: int = 0,
        **_: Any,
    ) -> None:
        if isinstance(value, str):
            kind, payload = (Kind.TEXT if kind is None else kind), np.frombuffer(value.encode(), np.uint8)
        elif isinstance(value, (dict, list)):
            kind, payload = (Kind.JSON if kind is None else kind), np.frombuffer(msgspec.json.encode(value), np.uint8)
        elif isinstance(value, (bytes, bytearray)):
            kind, payload = (Kind.CONTROL if kind is None else kind), np.frombuffer(bytes(value), np.uint8)
        else:
            kind, payload = (Kind.TENSOR if kind is None else kind), np.asarray(value)
        self.source, self.kind, self.array = source, Kind(kind), payload
        self.array.flags.writeable = False
        self.sample_rate, self.channels, self.timestamp_ns, self.flags = sample_rate, channels, timestamp_ns, flags
        self.pixel_format = pixel_format

    @property
    def text(self) -> str:
        return self.array.tobytes().decode()

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.array.tobytes())

    @property
    def end_of_stream(self) -> bool:
        return bool(self.flags & Flags.END_OF_STREAM)

    @property
    def flush(self) -> bool:
        return self.kind is Kind.CONTROL and bool(self.flags & Flags.FLUSH)

    @property
    def data(self) -> memoryview:
        return memoryview(self.array.tobytes())

    @classmethod
    def end(cls, source: str = "input.test") -> LocalMessage:
        return cls(b"", Kind.CONTROL, source=source, flags=Flags.END_OF_STREAM)

    @classmethod
    def audio(cls, samples: np.ndarray, rate: int, timestamp_ns: int = 0, source: str = "input.test") -> LocalMessage:
        samples = np.asarray(samples, np.float32)
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        return cls(samples, Kind.AUDIO, source=source, sample_rate=rate, channels=channels, timestamp_ns=timestamp_ns)


def as_messages(sent: Iterable[tuple[str, Any, int | None, dict[str, Any]]], node_id: str) -> list[LocalMessage]:
    """What a node sent into a ``testing.FakeContext`` (its ``sent`` list), as the messages
    its consumers would receive (``source`` "node_id.port")."""
    return [LocalMessage(value, kind, source=f"{node_id}.{port}", **fields) for port, value, kind, fields in sent]
