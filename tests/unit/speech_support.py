"""Spoken test audio made with espeak-ng (a Debian package that packaging/dev-env installs)."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from noded.nodes.audio import Resampler
from noded.nodes.streams import LocalMessage
from noded.wavfile import read_wav

VOICE_TOML = Path(__file__).resolve().parents[2] / "examples" / "commands.toml"


@functools.cache
def spoken(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng (en-us, 150 wpm), mono float32 at ``rate``."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        samples, src_rate = read_wav(path)
    out = Resampler(rate)(samples[:, 0], src_rate, last=True)
    out.flags.writeable = False
    return out


def with_silence(*parts: np.ndarray, gap: float = 0.8, rate: int = 16000) -> np.ndarray:
    silence = np.zeros(int(gap * rate), np.float32)
    pieces = [silence]
    for p in parts:
        pieces += [p, silence]
    return np.concatenate(pieces)


def chunks(samples: np.ndarray, rate: int = 16000, ms: int = 20, end: bool = True) -> list[LocalMessage]:
    """``samples`` as the AUDIO messages nodectl run sends (timestamp_ns = sample offset)."""
    step = rate * ms // 1000
    msgs = [LocalMessage.audio(samples[i : i + step], rate, timestamp_ns=i + 1) for i in range(0, len(samples), step)]
    return msgs + ([LocalMessage.end()] if end else [])


def voice_nodes() -> list[tuple[str, str, dict]]:
    import tomllib

    spec = tomllib.loads(VOICE_TOML.read_text())
    return [(n["id"], n["class"], n.get("params", {})) for n in spec["nodes"]]
