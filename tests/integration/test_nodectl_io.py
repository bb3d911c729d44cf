"""nodectl run and feed: files through a session's external ports."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from noded.ctl.mediafiles import read_wav, write_wav

from .conftest import Sessions, nodectl, noded_units
from .test_dataplane import io_chain


def test_run_streams_a_wav_through_the_pipeline_and_writes_it_back(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(io_chain(3))
    rate = 16000
    t = np.arange(rate) / rate  # one second
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(src, tone, rate)
    res = nodectl("run", str(pipeline), "--input", str(src), "--output", str(dst), "--chunk-ms", "20")
    assert res.returncode == 0, res.stderr
    assert "50 message(s)" in res.stderr and "first output after" in res.stderr
    back, back_rate = read_wav(dst)
    want, _ = read_wav(src)
    assert back_rate == rate and np.array_equal(back, want)  # 16-bit PCM in, the same PCM out
    assert noded_units() == []


def test_run_prints_text_outputs(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(io_chain(2))
    src = tmp_path / "lines.txt"
    src.write_text("hello\nwörld\n\n")
    res = nodectl("run", str(pipeline), "--input", str(src))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["hello", "wörld"]


def test_run_refuses_a_corrupt_wav_before_any_session_starts(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(io_chain(1))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    for path in (bad, empty, tmp_path / "missing.wav"):
        res = nodectl("run", str(pipeline), "--input", str(path))
        assert res.returncode != 0 and "Traceback" not in res.stderr
        assert str(path) in res.stderr
    assert noded_units() == []


def test_feed_sends_to_a_running_session(sessions: Sessions, tmp_path: Path) -> None:
    toml = io_chain(1, "slow_sink", "{ ms = 1.0 }").replace('outputs = ["n0.out"]\n', "")
    path = sessions.write(toml)
    res = nodectl("--json", "session", "create", str(path), "--wait")
    assert res.returncode == 0, res.stderr
    sid = json.loads(res.stdout)["sid"]
    sessions.created.append(sid)
    src = tmp_path / "t.npy"
    np.save(src, np.arange(12, dtype=np.int16).reshape(3, 4))
    res = nodectl("--json", "feed", sid, "data", str(src), "--no-end")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "sid": sid,
        "port": "data",
        "file": str(src),
        "messages": 1,
        "end_of_stream": False,
    }
    res = nodectl("feed", sid, "data", str(src))
    assert res.returncode == 0, res.stderr
    assert "fed 1 message(s)" in res.stdout
    res = nodectl("feed", sid, "data", str(src))  # after its END_OF_STREAM: at once, a clear error
    assert res.returncode == 2 and "input 'data'" in res.stderr and "has ended" in res.stderr, res.stderr
    res = nodectl("feed", sid, "nosuch", str(src))
    assert res.returncode == 2 and "no input 'nosuch'" in res.stderr
