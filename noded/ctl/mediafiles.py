"""Files in and out of a session, for `nodectl run` and `nodectl feed`.

Inputs by suffix: ``.wav`` is audio (sent as float32 chunks of ``chunk_ms``), ``.npy`` a
tensor (one message), anything else UTF-8 text (one message per non-empty line).
Outputs by suffix: ``.wav`` collects audio messages, ``.npy`` stacks tensors, anything
else (or ``-``, standard output) writes text lines. Every problem with an input file is
a ``MediaError`` raised before any session starts.
"""

from __future__ import annotations

import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from noded import wavfile
from noded.contract.wire import Kind
from noded.errors import NodedError
from noded.wavfile import pcm16, write_wav


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

    @property
    def duration(self) -> float:
        return sum(c.duration for c in self.chunks)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], shape (frames, channels), and the sample rate."""
    try:
        return wavfile.read_wav(path)
    except wavfile.WavError as exc:
        raise MediaError(str(exc), hint=exc.hint) from exc


def read_input(path: Path, chunk_ms: int = 20) -> InputFile:
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".wav":
        samples, rate = read_wav(path)
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
        return InputFile(path, Kind.AUDIO, chunks)
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
            f"{path}: not readable UTF-8 text ({exc})", hint="inputs are .wav audio, .npy tensors or UTF-8 text"
        ) from exc
    if not lines:
        raise MediaError(f"{path}: the file is empty")
    return InputFile(path, Kind.TEXT, tuple(Chunk(line, Kind.TEXT, {}) for line in lines))


HOLD_SECONDS = 120  # the most audio of one reply held back before it is written anyway


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
