"""The speech-to-speech pipeline (examples/commands.toml) end to end, with its real models,
each node in its own unit: nodectl run on spoken commands, on silence, on bad files.

ASR mode: commands.toml's JSGF command grammar (pocketsphinx). Free-form recognition of
espeak-ng's synthetic voice with the wheel's general language model is poor (it hears
"turn on the kitchen light" as "do not look you are you"), so the grammar is what the
pipeline ships and what is tested here.
"""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np

from noded.contract.client import Client
from noded.ctl.mediafiles import read_wav, write_wav

from .conftest import Sessions, nodectl, noded_units

VOICE = (Path(__file__).resolve().parents[2] / "examples" / "commands.toml").read_text()


def _speak(tmp_path: Path, *sentences: str) -> Path:
    """The sentences spoken by espeak-ng, one second of silence around each, as one WAV."""
    parts = [np.zeros(16000, np.float32)]
    for i, sentence in enumerate(sentences):
        path = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), sentence], check=True)
        samples, rate = read_wav(path)
        assert rate == 22050
        parts += [samples[:, 0], np.zeros(22050, np.float32)]
    out = tmp_path / "in.wav"
    write_wav(out, np.concatenate(parts), 22050)  # the resample node takes it to 16 kHz
    return out


def _session_count() -> int:
    with Client(timeout=30) as c:
        return len(c.request("list"))


def test_spoken_commands_are_transcribed_answered_and_spoken(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(VOICE)
    src, reply = _speak(tmp_path, "turn on the kitchen light", "computer tell me a joke"), tmp_path / "reply.wav"
    res = nodectl("--json", "run", str(pipeline), "-i", str(src), "-o", f"tts.out={reply}", timeout=150)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    heard = [u["heard"] for u in report["utterances"]]
    assert heard == ["turn on the kitchen light", "computer tell me a joke"], report
    replies = [u["reply"] for u in report["utterances"]]
    assert replies == ["Turning on the kitchen light.", "Why did the robot go on holiday? It needed to recharge."]
    for u in report["utterances"]:  # every latency was measured (their size is the benchmark's business)
        assert u["end_of_speech_to_transcript_ms"] > 0 and u["end_of_speech_to_first_audio_ms"] > 0
        assert u["endpoint_to_first_audio_ms"] is not None
    assert report["first_chunk_after_ready"]["processing_ms"] is not None
    samples, rate = read_wav(reply)
    seconds = len(samples) / rate
    # espeak-ng at 160 wpm: about 1.7 s and 3.2 s for the two replies
    assert rate == 22050 and 3.0 < seconds < 8.0, seconds
    assert abs(sum(u["reply_audio_s"] for u in report["utterances"]) - seconds) < 0.01
    frames = samples[: len(samples) // 441 * 441, 0].reshape(-1, 441)  # 20 ms frames: mostly voiced
    loud = np.sqrt((frames**2).mean(axis=1)) > 0.01
    assert loud.mean() > 0.5 and np.abs(samples).max() > 0.2
    assert noded_units() == []


def test_the_bundled_sample_in_human_form(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(VOICE)
    sample = Path(__file__).resolve().parents[2] / "examples" / "audio" / "hello.wav"
    reply = tmp_path / "reply.wav"
    res = nodectl("run", str(pipeline), "-i", str(sample), "-o", str(reply), "--fast", timeout=150)  # tts.out: first
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "[1] heard: 'turn on the kitchen light'" in " ".join(lines), res.stdout
    assert "[1] reply: 'Turning on the kitchen light.'" in lines
    assert any(line.startswith("latency over 3 utterance(s)") for line in lines), res.stdout
    assert any(line.startswith("first chunk: fed") for line in lines)
    assert "asr: ready" in res.stderr  # per-node load progress (plain lines: not a terminal)
    assert "tts.out: " in res.stderr and read_wav(reply)[1] == 22050


def test_silence_gives_no_reply_and_no_error(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(VOICE)
    src, reply = tmp_path / "quiet.wav", tmp_path / "reply.wav"
    noise = np.random.default_rng(0).normal(0, 0.002, 2 * 16000).astype(np.float32)
    write_wav(src, noise, 16000)
    res = nodectl("run", str(pipeline), "-i", str(src), "-o", f"tts.out={reply}", "--fast", timeout=150)
    assert res.returncode == 0, res.stderr
    assert "no speech detected: no reply" in res.stdout and "heard" not in res.stdout
    with wave.open(str(reply)) as w:
        assert w.getnframes() == 0
    assert noded_units() == []


def test_a_corrupt_or_empty_wav_is_refused_before_any_session_starts(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(VOICE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    before = _session_count()
    for path, what in (
        (corrupt, "not audio that libsndfile can read ("),
        (empty, "the file is empty"),
    ):
        res = nodectl("run", str(pipeline), "-i", str(path), "-o", f"tts.out={tmp_path / 'r.wav'}")
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.startswith(f"nodectl: {path}: {what}"), res.stderr
        assert "hint:" in res.stderr
        assert not (tmp_path / "r.wav").exists()
    assert _session_count() == before  # no session was even created
    assert noded_units() == []


def test_the_video_example_turns_1080p_frames_into_grayscale(sessions: Sessions, tmp_path: Path) -> None:
    video = (Path(__file__).resolve().parents[2] / "examples" / "video.toml").read_text()
    assert "frames = 60, fps = 30.0" in video
    pipeline = sessions.write(video.replace("frames = 60, fps = 30.0", "frames = 8, fps = 0.0"))
    out = tmp_path / "frames.npy"
    res = nodectl("run", str(pipeline), "-o", f"gray.out={out}", timeout=120)
    assert res.returncode == 0, res.stderr
    frames = np.load(out)
    assert frames.shape == (8, 540, 960) and frames.dtype == np.uint8
    # frame i of video_source: R = a ramp across + 4i, G = a ramp down, B = 8i
    ramp_x = np.linspace(0, 255, 1920, dtype=np.float32).astype(np.uint8)[::2].astype(np.int64)
    ramp_y = np.linspace(0, 255, 1080, dtype=np.float32).astype(np.uint8)[::2].astype(np.int64)
    for i in (0, 7):
        r, g, b = (ramp_x + 4 * i) % 256, ramp_y[:, None], 8 * i
        assert np.array_equal(frames[i], (77 * r + 150 * g + 29 * b) >> 8)
    assert noded_units() == []
