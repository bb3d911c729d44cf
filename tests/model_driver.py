"""Runs the assistant's model nodes in one process of the models venv, for
tests/unit/test_model_nodes.py: ``python -m tests.model_driver OUT_DIR`` writes
results.json there. Audio is made here, at test time, by Piper and espeak-ng."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from noded.errors import NodedError
from noded.nodes.asr import Asr
from noded.nodes.llm import Llm
from noded.nodes.streams import LocalMessage
from noded.nodes.tts import Tts
from noded.testing import run_setup
from noded.wavfile import write_wav

MDWE_CHILD = """
import ctypes, json
from noded.errors import NodedError
from noded.nodes.asr import Asr
from noded.testing import run_setup
if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print(json.dumps({"type": "unsupported", "message": "", "hint": ""}))
else:
    try:
        run_setup(Asr, {"backend": "whisper"}, node_id="ears")
        print(json.dumps({"type": "none", "message": "", "hint": ""}))
    except NodedError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": exc.message, "hint": exc.hint or ""}))
"""
QUESTIONS = ["what is the capital of france", "how many legs does a spider have", "turn off the kitchen lights"]


def to_16k(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=16000), np.float32)


def transcribe(asr: Asr, ctx: Any, audio: np.ndarray) -> list[dict[str, Any]]:
    ctx.sent.clear()
    asr.process(LocalMessage({"event": "start", "utterance": 1}))
    for start in range(0, len(audio), 1600):
        asr.process(LocalMessage.audio(audio[start : start + 1600], 16000))
    asr.process(LocalMessage({"event": "end", "utterance": 1, "speech_end_ns": 7}))
    return [value for _, value, _, _ in ctx.sent]


def speculate(audio: np.ndarray) -> dict[str, Any]:
    """asr with speculate: what it sends at a pause and at the end, when no speech came
    between them, and when some did (the second half of the question after the pause)."""
    asr, ctx = run_setup(Asr, {"backend": "whisper", "speculate": True})
    found: dict[str, Any] = {}
    half = len(audio) // 2
    for case, pause_at in (("no_speech_since", len(audio)), ("speech_since", half)):
        ctx.sent.clear()
        asr.process(LocalMessage({"event": "start", "utterance": 2}))
        for start in range(0, pause_at, 1600):
            asr.process(LocalMessage.audio(audio[start : min(start + 1600, pause_at)], 16000))
        asr.process(LocalMessage({"event": "pause", "utterance": 2, "speech_end_ns": 5, "endpoint_ns": 6}))
        at_pause = [value for _, value, _, _ in ctx.sent]
        for start in range(pause_at, len(audio), 1600):
            asr.process(LocalMessage.audio(audio[start : start + 1600], 16000))
        end_ns = 5 if case == "no_speech_since" else 8
        asr.process(LocalMessage({"event": "end", "utterance": 2, "speech_end_ns": end_ns, "endpoint_ns": 9}))
        found[case] = {"at_pause": at_pause, "at_end": [value for _, value, _, _ in ctx.sent][len(at_pause) :]}
    return found


def error_of(fn: Any) -> dict[str, str]:
    try:
        fn()
    except NodedError as exc:
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint or ""}
    return {"type": "none", "message": "", "hint": ""}


def main(out: Path) -> None:
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    tts, tctx = run_setup(Tts, {"backend": "piper", "chunk_ms": 40})
    results["tts_load_s"] = time.monotonic() - t0
    speech: dict[str, Any] = {}
    for index, question in enumerate(QUESTIONS):
        tctx.sent.clear()
        tts.process(LocalMessage({"text": question + "?"}, timestamp_ns=11))
        chunks = [np.asarray(v) for _, v, _, _ in tctx.sent]
        audio = np.concatenate(chunks)
        write_wav(out / f"piper{index}.wav", audio, tts.engine.rate)
        speech[question] = {
            "chunks": len(chunks),
            "largest_chunk": max(len(c) for c in chunks),
            "seconds": len(audio) / tts.engine.rate,
            "rms": float(np.sqrt(np.mean(audio**2))),
            "timestamps": sorted({f["timestamp_ns"] for _, _, _, f in tctx.sent}),
        }
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(out / f"espeak{index}.wav"), question], check=True)
    results["tts"] = speech
    results["rate"] = tts.engine.rate

    t0 = time.monotonic()
    asr, actx = run_setup(Asr, {"backend": "whisper", "interval_ms": 800, "window_s": 20})
    results["asr_load_s"] = time.monotonic() - t0
    heard: dict[str, Any] = {}
    for index, question in enumerate(QUESTIONS):
        for voice in ("piper", "espeak"):
            heard[f"{voice}:{question}"] = transcribe(asr, actx, to_16k(out / f"{voice}{index}.wav"))
    results["asr"] = heard
    results["asr_windowed"] = asr.engine.windowed
    results["speculative"] = speculate(to_16k(out / "piper0.wav"))

    t0 = time.monotonic()
    llm, lctx = run_setup(Llm, {})
    results["llm_load_s"] = time.monotonic() - t0
    replies: dict[str, Any] = {}
    for question in QUESTIONS + ["set a timer for two minutes"]:
        lctx.sent.clear()
        llm.process(LocalMessage({"text": question, "utterance": 3, "speech_end_ns": 9}, timestamp_ns=9))
        replies[question] = [value for _, value, _, _ in lctx.sent]
    results["llm"] = replies
    # A speculative transcript, then the final one of the same utterance: its turn is replaced.
    for text, extra in (("what is the capital of france", {"speculative": True}), ("what is the capital of italy", {})):
        lctx.sent.clear()
        llm.process(LocalMessage({"text": text, "utterance": 8, "speech_end_ns": 4, **extra}, timestamp_ns=4))
        results.setdefault("llm_speculative", []).append([value for _, value, _, _ in lctx.sent])
    results["llm_turns"] = [heard for heard, _ in llm.turns]
    # Barge-in: a flush waits from the model's third token on: it stops writing there.
    lctx.sent.clear()
    lctx.interrupt(after=2)
    llm.process(LocalMessage({"text": "tell me about the moon", "utterance": 4, "speech_end_ns": 9}, timestamp_ns=9))
    lctx.interrupt(False)
    results["llm_interrupted"] = [value for _, value, _, _ in lctx.sent]

    corrupt = out / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    bad_voice = out / "corrupt.onnx"
    bad_voice.write_bytes(b"\x08\x07not a model" * 100)
    bad_voice.with_name("corrupt.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    results["errors"] = {
        "llm_missing": error_of(lambda: run_setup(Llm, {"model": str(out / "missing.gguf")}, node_id="brain")),
        "llm_corrupt": error_of(lambda: run_setup(Llm, {"model": str(corrupt)}, node_id="brain")),
        "tts_missing": error_of(lambda: run_setup(Tts, {"backend": "piper", "model": str(out / "nope.onnx")})),
        "tts_corrupt": error_of(lambda: run_setup(Tts, {"backend": "piper", "model": str(bad_voice)}, node_id="voice")),
        "asr_missing": error_of(lambda: run_setup(Asr, {"backend": "whisper", "model": str(out / "nowhere")})),
    }
    # What a unit without jit = true does to Whisper: PR_SET_MDWE (as MemoryDenyWriteExecute=),
    # in a child process, since it cannot be undone.
    child = subprocess.run(
        [sys.executable, "-c", MDWE_CHILD], capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    results["errors"]["asr_no_jit"] = json.loads(child.stdout.strip().splitlines()[-1])
    (out / "results.json").write_text(json.dumps(results, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
