"""WAV files in and out (the standard library's ``wave``; PCM 8, 16 or 32 bit)."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np

_PCM: dict[int, type[np.integer[Any]]] = {1: np.uint8, 2: np.int16, 4: np.int32}


class WavError(ValueError):
    """A file that is not a usable WAV file; ``hint`` says what would be."""

    def __init__(self, message: str, hint: str = "give a PCM WAV file (8, 16 or 32 bit)") -> None:
        super().__init__(message)
        self.hint = hint


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], shape (frames, channels), and the sample rate."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate, frames = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        detail = str(exc) or "it ends too early"
        if Path(path).stat().st_size == 0:
            detail = "the file is empty"
        raise WavError(f"{path}: not a readable WAV file ({detail})") from exc
    if width not in _PCM:
        raise WavError(f"{path}: {8 * width}-bit samples are not supported", hint="use 8, 16 or 32-bit PCM")
    if frames == 0 or not raw:
        raise WavError(f"{path}: the WAV file holds no audio", hint="give a WAV file with at least one sample")
    if len(raw) != frames * width * channels:
        raise WavError(f"{path}: the WAV file is truncated ({len(raw)} of {frames * width * channels} bytes)")
    data = np.frombuffer(raw, dtype=_PCM[width]).reshape(-1, channels)
    if width == 1:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    else:
        samples = data.astype(np.float32) / float(np.iinfo(_PCM[width]).max)
    return samples, rate


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] as little-endian 16-bit PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")


def write_wav(path: Path | str, samples: np.ndarray, rate: int) -> None:
    """float audio in [-1, 1] (frames, channels) or (frames,) as 16-bit PCM."""
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = pcm16(samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
