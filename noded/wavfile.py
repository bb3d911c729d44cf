"""Audio files in and WAV files out.

Reading goes through libsndfile (the ``soundfile`` package): WAV in every PCM width (8,
16, 24, 32 bit), IEEE float, WAVE_FORMAT_EXTENSIBLE (what ffmpeg and sox write for 24-bit
and for more than 2 channels), FLAC, OGG/Vorbis and the other formats libsndfile knows.
Writing stays 16-bit PCM WAV (the standard library's ``wave``), which every player reads.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

#: File name suffixes read as audio (``nodectl run`` and ``feed``, ``wav_source``).
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_HINT = "give an audio file libsndfile reads: WAV (PCM of any width, float or EXTENSIBLE), FLAC or OGG"


class WavError(ValueError):
    """A file that is not usable audio; ``hint`` says what would be."""

    def __init__(self, message: str, hint: str = _HINT) -> None:
        super().__init__(message)
        self.hint = hint


def read_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], shape (frames, channels), and the sample rate.
    Raises WavError naming the file and what is wrong with it."""
    import soundfile  # libsndfile: imported by the commands and nodes that read audio

    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise WavError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise WavError(f"{path}: the file is empty")
    errors = (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError)
    try:
        f = soundfile.SoundFile(str(path))
    except errors as exc:
        raise WavError(f"{path}: not audio that libsndfile can read ({_detail(exc, path)})") from exc
    with f:
        rate, declared = f.samplerate, f.frames
        # libsndfile reads a WAV whose data chunk is cut short without a word; its log says so.
        cut = _SHORT_DATA.search(f.extra_info)
        if cut is not None and int(cut[2]) < int(cut[1]):
            raise WavError(f"{path}: the file is truncated ({cut[2]} of {cut[1]} bytes of audio data)")
        try:
            samples = f.read(dtype="float32", always_2d=True)
        except errors as exc:
            raise WavError(f"{path}: the file is damaged or truncated ({_detail(exc, path)})") from exc
    if declared <= 0 or samples.shape[0] == 0:
        raise WavError(f"{path}: the file holds no audio", hint="give an audio file with at least one sample")
    if samples.shape[0] < declared:
        raise WavError(f"{path}: the file is truncated ({samples.shape[0]} of {declared} frames)")
    if rate <= 0:
        raise WavError(f"{path}: the file gives no sample rate")
    return np.ascontiguousarray(samples), rate


def _detail(exc: BaseException, path: Path | str) -> str:
    text = str(exc).removeprefix(f"Error opening {str(path)!r}: ").removeprefix("Error : ").strip()
    return text or type(exc).__name__


# The name nodes, tests and benchmarks call it by (it reads more than WAV now).
read_wav = read_audio


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] as little-endian 16-bit PCM, scaled as libsndfile reads it
    (by 32768), so that 16-bit PCM read and written back is the same PCM."""
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")


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
