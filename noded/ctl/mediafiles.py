"""Files in and out of a session, for `nodectl run` and `nodectl feed`.

Inputs by suffix: audio (``.wav``, ``.flac``, ``.ogg`` and the others of
``noded.wavfile.AUDIO_SUFFIXES``, read by libsndfile) is sent as float32 chunks of
``chunk_ms``, ``.npy`` is a tensor (one message), anything else UTF-8 text (one message
per non-empty line). Audio is sent as the file has it, unless the node consuming the
input asks for a rate and channel count (``AUDIO_INPUT`` of a built-in node class, such
as ``vad``'s 16 kHz mono): then ``conform`` downmixes and resamples it (soxr) first.
Outputs by suffix: ``.wav`` collects audio messages, ``.npy`` stacks tensors, anything
else (or ``-``, standard output) writes text lines. Every problem with an input file is
a ``MediaError`` raised before any session starts.
"""

from __future__ import annotations

import importlib
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from noded import wavfile
from noded.contract.wire import Kind
from noded.errors import NodedError
from noded.wavfile import pcm16, write_wav

if TYPE_CHECKING:
    from noded.api import Session


class MediaError(NodedError):
    code = "bad_input"


@dataclass(frozen=True)
class Chunk:
    value: Any  # ndarray or str
    kind: Kind
    fields: dict[str, int]
    duration: float = 0.0  # seconds of audio in it (for real-time pacing)


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: Kind
    chunks: tuple[Chunk, ...]
    audio: tuple[np.ndarray, int] | None = None  # (samples, rate) of an audio file
    chunk_ms: int = 20

    @property
    def duration(self) -> float:
        return sum(c.duration for c in self.chunks)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], shape (frames, channels), and the sample rate, from
    any audio file libsndfile reads."""
    try:
        return wavfile.read_audio(path)
    except wavfile.WavError as exc:
        raise MediaError(str(exc), hint=exc.hint) from exc


def audio_input(path: Path, samples: np.ndarray, rate: int, chunk_ms: int) -> InputFile:
    step = max(1, rate * chunk_ms // 1000)
    chunks = tuple(
        Chunk(
            np.ascontiguousarray(samples[i : i + step]),
            Kind.AUDIO,
            {"sample_rate": rate, "channels": samples.shape[1]},
            len(samples[i : i + step]) / rate,
        )
        for i in range(0, len(samples), step)
    )
    return InputFile(path, Kind.AUDIO, chunks, (samples, rate), chunk_ms)


def read_input(path: Path, chunk_ms: int = 20) -> InputFile:
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in wavfile.AUDIO_SUFFIXES:
        samples, rate = read_wav(path)
        return audio_input(path, samples, rate, chunk_ms)
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise MediaError(f"{path}: not a readable .npy array ({exc})") from exc
        return InputFile(path, Kind.TENSOR, (Chunk(array, Kind.TENSOR, {}),))
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"{path}: not readable UTF-8 text ({exc})",
            hint="inputs are audio files (WAV, FLAC, OGG), .npy tensors or UTF-8 text",
        ) from exc
    if not lines:
        raise MediaError(f"{path}: the file is empty")
    return InputFile(path, Kind.TEXT, tuple(Chunk(line, Kind.TEXT, {}) for line in lines))


HOLD_SECONDS = 120  # the most audio of one reply held back before it is written anyway


@dataclass(frozen=True)
class AudioFormat:
    """What a node's audio input takes: ``rate`` Hz, ``channels`` channels."""

    rate: int
    channels: int = 1

    def __str__(self) -> str:
        return f"{self.rate} Hz {'mono' if self.channels == 1 else f'{self.channels} channels'}"


def conform(data: InputFile, want: AudioFormat | None, who: str = "its consumer") -> InputFile:
    """``data`` as ``want`` asks: downmixed to mono (the mean of the channels) and
    resampled with soxr (the speech extra). Anything else than audio, or no ``want``,
    passes unchanged. Raises MediaError when it cannot be done."""
    if data.audio is None or want is None:
        return data
    samples, rate = data.audio
    if samples.shape[1] == want.channels and rate == want.rate:
        return data
    if samples.shape[1] != want.channels:
        if want.channels != 1:
            raise MediaError(
                f"{data.path}: {samples.shape[1]} channel(s), but {who} takes {want}",
                hint=f"give a file with {want.channels} channels",
            )
        samples = samples.mean(axis=1, keepdims=True, dtype=np.float32)
    if rate != want.rate:
        from noded.nodes.extras import speech_module

        soxr = speech_module("soxr", f"resampling {data.path} from {rate} Hz for {who}")
        samples = soxr.resample(samples, rate, want.rate, quality="HQ").astype(np.float32, copy=False)
        samples = samples.reshape(-1, want.channels)
        rate = want.rate
    return audio_input(data.path, np.ascontiguousarray(samples), rate, data.chunk_ms)


def wanted_format(classes: list[tuple[str, str]]) -> tuple[AudioFormat | None, str]:
    """What the nodes consuming an input ask for: ``classes`` are (node id, class as
    written) of those consumers; built-in node classes say it with ``AUDIO_INPUT``
    (rate, channels). Returns the format (None: no one asks) and who asks."""
    from noded.contract.registry import BUILTINS

    asks: list[tuple[AudioFormat, str]] = []
    for node, cls in classes:
        resolved = BUILTINS.get(cls)
        if resolved is None:  # the user's own class: it takes the file as it is
            continue
        module, _, name = resolved.partition(":")
        try:
            declared = getattr(getattr(importlib.import_module(module), name), "AUDIO_INPUT", None)
        except (ImportError, AttributeError):
            continue
        if declared is not None:
            asks.append((AudioFormat(*declared), f"node {node} ({cls})"))
    if not asks:
        return None, ""
    first, who = asks[0]
    for other, other_who in asks[1:]:
        if other != first:
            raise MediaError(
                f"the nodes consuming one input ask for different audio: {who} {first}, {other_who} {other}",
                hint="put a resample node in front of them",
            )
    return first, who


def for_port(session: Session, port: str, data: InputFile) -> InputFile:
    """``data`` as the nodes consuming external input ``port`` of ``session`` ask for it."""
    consumers = next((o.consumers for o in session.dataplane.outputs if o.port == port), [])
    classes = {n.id: n.cls for n in session.info.nodes}
    want, who = wanted_format([(node, classes[node]) for node in consumers if node in classes])
    return conform(data, want, who)


class OutputWriter:
    """Collects one external output's messages and writes them to a file."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.suffix = Path(target).suffix.lower() if target != "-" else ""
        self.count = 0
        self._parts: list[np.ndarray] = []
        self._text: TextIO | None = None
        self._wav: wave.Wave_write | None = None
        # Audio is written one run of equal timestamp_ns (one spoken reply) behind, so that
        # an interrupted reply can be cut (``cut``) before it reaches the file.
        self._held: list[np.ndarray] = []
        self._held_key: int | None = None
        self._held_rate = 16000
        self._cut: set[int] = set()

    def add(self, msg: Any) -> None:
        if self.suffix == ".wav":
            if msg.kind is Kind.AUDIO:
                self._add_audio(np.asarray(msg.array), msg.sample_rate or 16000, msg.timestamp_ns)
            return
        self.count += 1
        if self.suffix == ".npy":
            self._parts.append(np.array(msg.array))  # a copy: the message goes back to its producer
            return
        text = msg.text if msg.kind in (Kind.TEXT, Kind.JSON) else repr(msg)
        if self._text is None:
            self._text = sys.stdout if self.target == "-" else open(self.target, "w")
        self._text.write(text + "\n")
        self._text.flush()

    def _add_audio(self, samples: np.ndarray, rate: int, key: int) -> None:
        if key and key in self._cut:
            return  # the rest of an interrupted reply
        if key != self._held_key or sum(len(p) for p in self._held) > rate * HOLD_SECONDS:
            self._write_held()
            self._held_key, self._held_rate = key, rate
        # A copy: the message's view would keep its sample (and the producer's credit).
        self._held.append((samples[:, None] if samples.ndim == 1 else samples).copy())
        self.count += 1

    def cut(self, key: int, keep_seconds: float) -> None:
        """The audio of timestamp ``key`` (one reply) was interrupted after ``keep_seconds``:
        write no more of it than that."""
        self._cut.add(key)
        if key != self._held_key:
            return
        keep = int(round(keep_seconds * self._held_rate))
        parts, self._held = self._held, []
        for part in parts:
            if keep <= 0:
                break
            self._held.append(part[:keep])
            keep -= len(part)

    def _write_held(self) -> None:
        parts, self._held, self._held_key = self._held, [], None
        if parts:
            self._write_audio(np.concatenate(parts), self._held_rate)

    def _write_audio(self, samples: np.ndarray, rate: int) -> None:
        if samples.ndim == 1:
            samples = samples[:, None]
        if self._wav is None:
            self._wav = wave.open(self.target, "wb")
            self._wav.setnchannels(samples.shape[1])
            self._wav.setsampwidth(2)
            self._wav.setframerate(rate)
        self._wav.writeframes(pcm16(samples).tobytes())

    def close(self) -> None:
        if self.suffix == ".wav":
            self._write_held()
            if self._wav is None:
                write_wav(Path(self.target), np.zeros((0, 1), np.float32), 16000)
            else:
                self._wav.close()
        elif self.suffix == ".npy":
            np.save(self.target, np.stack(self._parts) if len(self._parts) != 1 else self._parts[0])
        elif self._text is not None and self._text is not sys.stdout:
            self._text.close()


def paced(chunks: tuple[Chunk, ...], realtime: bool) -> Iterator[Chunk]:
    """The chunks, each no earlier than its place in time when ``realtime``."""
    start = time.monotonic()
    at = 0.0
    for chunk in chunks:
        if realtime:
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield chunk
        at += chunk.duration
