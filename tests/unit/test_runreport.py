"""nodectl run's speech report and media files, without a session."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from noded.ctl.mediafiles import MediaError, OutputWriter, read_input, read_wav, write_wav
from noded.ctl.runreport import RunReport
from noded.nodes.streams import LocalMessage

MS = 1_000_000


def test_report_matches_transcripts_replies_and_audio_by_end_of_speech() -> None:
    text = io.StringIO()
    report = RunReport(Console(file=text, width=200), ready_ns=1000 * MS)
    report.handle(LocalMessage({"event": "first_audio", "node": "vad", "received_ns": 1012 * MS, "fed_ns": 1}))
    report.handle(LocalMessage({"event": "first_audio", "node": "resample", "received_ns": 1003 * MS, "fed_ns": 1}))
    end = {"speech_end_ns": 2000 * MS, "endpoint_ns": 2300 * MS}
    assert report.handle(LocalMessage({"event": "end", "utterance": 0, **end}, timestamp_ns=2000 * MS))
    assert report.handle(LocalMessage({"utterance": 0, "text": "turn on the light", "asr_ms": 3.0, **end}))
    assert report.handle(LocalMessage({"utterance": 0, "heard": "turn on the light", "text": "Turning on.", **end}))
    audio = LocalMessage.audio(np.zeros(2205, np.float32), 22050, timestamp_ns=2000 * MS)
    assert not report.handle(audio)  # audio is still written to its file
    assert not report.handle(LocalMessage({"other": 1}))  # not speech JSON: written as usual
    (u,) = report.utterances.values()
    assert (u.heard, u.reply, u.index, round(u.audio_seconds, 3)) == ("turn on the light", "Turning on.", 0, 0.1)
    assert u.first_audio_ns is not None and u.first_audio_ns >= u.transcript_ns
    data = report.as_dict()
    assert data["first_chunk_after_ready"]["processing_ms"] == 3.0  # the first node that began
    assert data["first_chunk_after_ready"]["by_node"] == {"resample": 3.0, "vad": 12.0}
    assert data["utterances"][0]["endpoint_to_first_audio_ms"] == (u.first_audio_ns - 2300 * MS) / MS
    report.summary()
    out = text.getvalue()
    assert "[0] heard: 'turn on the light'" in out and "[0] reply: 'Turning on.'" in out
    assert (
        "its processing began after ready in resample 3.0 ms, vad 12.0 ms" in out
        and "latency over 1 utterance(s)" in out
    )


def test_report_on_silence_says_so() -> None:
    text = io.StringIO()
    report = RunReport(Console(file=text), ready_ns=1)
    report.handle(LocalMessage({"event": "first_audio", "received_ns": 2, "fed_ns": 1}))
    report.summary()
    assert "no speech detected: no reply" in text.getvalue()


def test_corrupt_empty_and_missing_wavs_are_media_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros((0, 1), np.float32), 16000)  # a header, no frames
    for path, what in (
        (bad, "not audio that libsndfile can read"),
        (empty, "holds no audio"),
        (tmp_path / "no.wav", "no such file"),
    ):
        with pytest.raises(MediaError, match=what) as info:
            read_input(path)
        assert str(path) in info.value.message


def test_wav_output_is_written_as_it_comes_one_reply_behind(tmp_path: Path) -> None:
    # A reply (a run of chunks with one timestamp_ns) is held until the next begins, so
    # that a barge-in can still cut what was not played (OutputWriter.cut).
    target = tmp_path / "out.wav"
    w = OutputWriter(str(target))
    w.add(LocalMessage.audio(np.full(800, 0.5, np.float32), 8000, timestamp_ns=1))
    w.add(LocalMessage({"not": "audio"}))
    assert not target.exists()
    w.add(LocalMessage.audio(np.full(800, -0.5, np.float32), 8000, timestamp_ns=2))
    assert target.exists()  # the first reply is written once the next began
    w.close()
    samples, rate = read_wav(target)
    assert rate == 8000 and samples.shape == (1600, 1) and w.count == 2
    assert np.allclose(samples[:800], 0.5, atol=1e-4) and np.allclose(samples[800:], -0.5, atol=1e-4)


def _sent(msg: LocalMessage, sent_ms: int) -> LocalMessage:
    msg.header = SimpleNamespace(sent_ns=sent_ms * MS)  # type: ignore[attr-defined]  # as a received Message has
    return msg


def test_report_breaks_the_latency_into_stages_and_drops_overtaken_speculation() -> None:
    report = RunReport(Console(file=io.StringIO()), ready_ns=1)
    # Heard at a pause, but the speaker went on: never ended, never answered out loud.
    report.handle(LocalMessage({"utterance": 0, "text": "what is", "asr_ms": 1.0, "speculative": True,
                                "speech_end_ns": 1500 * MS}))  # fmt: skip
    end = {"speech_end_ns": 2000 * MS, "endpoint_ns": 2300 * MS}
    transcript = {"utterance": 0, "text": "what is the time", "asr_ms": 0.1, "speech_end_ns": 2000 * MS,
                  "speculative": True, "decode_start_ns": 2130 * MS, "decode_end_ns": 2250 * MS}  # fmt: skip
    report.handle(_sent(LocalMessage(transcript), 2251))
    clause = {"utterance": 0, "heard": "what is the time", "final": False, "received_ns": 2252 * MS, **end}
    report.handle(_sent(LocalMessage({**clause, "text": "It is noon."}), 2400))
    report.handle(_sent(LocalMessage({"event": "end", "utterance": 0, **end}, timestamp_ns=2000 * MS), 2305))
    report.handle(_sent(LocalMessage.audio(np.zeros(2205, np.float32), 22050, timestamp_ns=2000 * MS), 2450))
    (row,) = report.as_dict()["utterances"]
    stages = row["stages_ms"]
    assert list(stages) == [
        "endpoint", "vad_end", "asr_decode_start", "asr_decode_end", "asr_sent", "llm_received",
        "llm_first_clause", "tts_first_chunk", "client",
    ]  # fmt: skip
    assert [stages[s] for s in list(stages)[:-1]] == [300, 305, 130, 250, 251, 252, 400, 450]
    assert stages["client"] >= 450
