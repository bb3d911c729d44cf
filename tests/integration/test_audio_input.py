"""nodectl run and feed with audio files libsndfile reads (FLAC, OGG, 24-bit and float WAV,
WAVE_FORMAT_EXTENSIBLE), made by sox; resampled and downmixed when the node consuming
the input asks (vad: 16 kHz mono)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from noded.contract.client import Client
from noded.ctl.mediafiles import read_wav

from .conftest import Sessions, nodectl, noded_units
from .test_dataplane import io_chain


def sox(path: Path, *encoding: str, rate: int = 16000, channels: int = 1) -> Path:
    tones = ["sine", "440", "sine", "660", "sine", "880"][: 2 * channels]
    cmd = ["sox", "-n", "-r", str(rate), "-c", str(channels), *encoding, str(path), "synth", "1", *tones, "gain", "-6"]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


@pytest.mark.parametrize(
    "name,encoding",
    [
        ("s24.wav", ("-b", "24")),
        ("f32.wav", ("-b", "32", "-e", "floating-point")),
        ("s16.flac", ("-b", "16")),
        ("tone.ogg", ()),
    ],
)
def test_run_streams_any_audio_file_through_the_pipeline(
    sessions: Sessions, tmp_path: Path, name: str, encoding: tuple[str, ...]
) -> None:
    pipeline = sessions.write(io_chain(2))
    src, dst = sox(tmp_path / name, *encoding), tmp_path / "out.wav"
    res = nodectl("run", str(pipeline), "--input", str(src), "--output", str(dst), "--fast")
    assert res.returncode == 0, res.stderr
    back, rate = read_wav(dst)
    want, want_rate = read_wav(src)
    assert rate == want_rate == 16000 and back.shape == want.shape
    assert np.max(np.abs(back - want)) <= 2 / 2**15  # written back as 16-bit PCM
    assert noded_units() == []


VAD_AND_COPY = """inputs = ["audio"]
outputs = ["copy.out"]
[[nodes]]
id = "vad"
class = "vad"
inputs = ["input.audio"]
[[nodes]]
id = "copy"
class = "passthrough"
inputs = ["input.audio"]
"""


def test_audio_is_resampled_and_downmixed_for_a_node_that_asks(sessions: Sessions, tmp_path: Path) -> None:
    """vad takes 16 kHz mono: a 44.1 kHz 3-channel 24-bit file (WAVE_FORMAT_EXTENSIBLE)
    reaches it, and the passthrough beside it, as 16 kHz mono."""
    pipeline = sessions.write(VAD_AND_COPY)
    src, dst = sox(tmp_path / "three.wav", "-b", "24", rate=44100, channels=3), tmp_path / "out.wav"
    assert src.read_bytes()[20:22] == b"\xfe\xff"  # EXTENSIBLE
    res = nodectl("run", str(pipeline), "--input", str(src), "--output", str(dst), "--fast")
    assert res.returncode == 0, res.stderr
    back, rate = read_wav(dst)
    assert rate == 16000 and back.shape[1] == 1 and abs(len(back) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(back[:, 0]))
    peaks = sorted(np.fft.rfftfreq(len(back), 1 / 16000)[np.argsort(spectrum)[-3:]].round())
    assert peaks == [440.0, 660.0, 880.0], peaks  # the mean of the three channels' tones


def test_feed_resamples_for_a_running_session(sessions: Sessions, tmp_path: Path) -> None:
    """vad counts a process() error for every chunk that is not 16 kHz: none may come."""
    path = sessions.write(VAD_AND_COPY.replace('outputs = ["copy.out"]\n', ""))
    res = nodectl("--json", "session", "create", str(path), "--wait")
    assert res.returncode == 0, res.stderr
    sid = json.loads(res.stdout)["sid"]
    sessions.created.append(sid)
    src = sox(tmp_path / "tone.flac", "-b", "16", rate=48000, channels=2)
    fed = nodectl("--json", "feed", sid, "audio", str(src), "--chunk-ms", "100")
    assert fed.returncode == 0, fed.stderr
    assert json.loads(fed.stdout)["messages"] == 10
    deadline = time.monotonic() + 30
    with Client(timeout=30) as c:
        while True:
            stats = {n["id"]: n for n in c.request("show", sid=sid)["stats"]["nodes"]}
            if (stats["vad"]["messages_in"] or 0) >= 10 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert stats["vad"]["messages_in"] >= 10 and stats["vad"]["errors"] == 0, stats["vad"]


def test_a_bad_audio_file_is_refused_naming_it(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(io_chain(1))
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC" + bytes(100))
    res = nodectl("run", str(pipeline), "--input", str(bad))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert str(bad) in res.stderr and "libsndfile" in res.stderr, res.stderr
    assert noded_units() == []
