"""Speech-to-speech latency and throughput: noded's streaming pipeline against the same
nodes run one after another in one process (SC-007).

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/speech_latency.py [--runs 2] [--json]
    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/speech_latency.py --assistant [--sessions 2]

With ``--assistant``: the voice assistant's real models (Whisper, SmolLM2, Piper) against
SC-007, the 800 ms target, SC-002, US2, SC-004 and a barge-in (benchmarks/assistant_latency.py
has the details). Without it, the grammar pipeline (examples/commands.toml):

Input: UTTERANCES spoken by espeak-ng (22.05 kHz, as espeak-ng writes it), 1.2 s of
silence around each, made by this script. Every mode uses examples/commands.toml's nodes
and params (resample, silero VAD, pocketsphinx with the command grammar, responder,
espeak-ng TTS), with these differences:

* "pipeline as shipped": `nodectl --json run examples/commands.toml` (every node its own
  unit and process, iceoryx2 between them), the audio fed in 20 ms chunks at its
  real-time pace. An utterance ends after 300 ms of silence, or earlier, 128 ms into a
  silence, when the words the ASR has decoded so far make a whole command of its
  grammar (vad ``pause_ms``, asr ``early_endpoint``): possible only because the ASR
  runs while the audio streams in. Times come from nodectl's report (CLOCK_MONOTONIC):
  from the feed of the chunk holding the last voiced sample (end of speech), or of the
  chunk that ended the utterance (endpoint), to the client receiving the first reply
  audio. Throughput: runs with --fast (fed as fast as the pipeline takes it) in 100 ms
  and 1 s chunks, utterances / (first chunk fed -> last output received).
* "pipeline, VAD endpoint only": the same without pause_ms/early_endpoint.
* "sequential": noded.nodes.chain.LocalChain, all five nodes in one process, VAD
  endpoint only (300 ms). An utterance is processed once it has fully arrived, i.e. at
  its endpoint (found by an untimed pre-pass with the same VAD settings): the audio since
  the previous endpoint goes through resample, VAD, ASR, responder and TTS, each stage
  over the whole segment before the next. First audio out = the TTS stage's first chunk
  (measured inside the run: the mode is not charged for the rest of the synthesis).
  Latency from the end of speech adds the endpointing wait (from the VAD's own events).
  Throughput: utterances / the summed processing time (no waiting for the audio).
* "sequential, 128 ms VAD endpoint": the same with min_silence_ms = 128: what a
  sequential system gets by cutting at every 128 ms pause, words or no words (this input
  has no pauses inside sentences; real speech does).
Needs systemd as PID 1 and noded.service for the pipeline mode (`--sequential-only`
runs the other mode anywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.append(str(Path(__file__).resolve().parent.parent))

from noded.contract.wire import Kind
from noded.nodes.chain import LocalChain
from noded.nodes.streams import LocalMessage
from noded.wavfile import read_wav, write_wav

REPO = Path(__file__).resolve().parent.parent
VOICE = REPO / "examples" / "commands.toml"
UTTERANCES = [
    "turn on the kitchen light",
    "computer tell me a joke",
    "turn off the bedroom lights",
    "how is the weather",
    "thank you",
    "good morning",
]
RATE = 22050
GAP = 1.2
CHUNK_MS = 20
FAST_CHUNKS_MS = (100, 1000)  # chunk sizes of the as-fast-as-possible runs (throughput)
TARGET = 0.5  # the pipeline's latency at least 50% below the sequential one


def make_input(path: Path, sentences: list[str]) -> float:
    parts = [np.zeros(int(GAP * RATE), np.float32)]
    with tempfile.TemporaryDirectory() as d:
        for i, s in enumerate(sentences):
            wav = Path(d) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), s], check=True)
            samples, rate = read_wav(wav)
            assert rate == RATE, rate
            parts += [samples[:, 0], np.zeros(int(GAP * RATE), np.float32)]
    audio = np.concatenate(parts)
    write_wav(path, audio, RATE)
    return len(audio) / RATE


# The shipped pipeline ends an utterance early when the ASR already has a whole command
# 128 ms into a silence (vad pause_ms, asr early_endpoint); "vad endpoint only" turns that
# off, so that only the VAD's 300 ms of silence ends an utterance.
VAD_ONLY = {"vad": {"pause_ms": 0}, "asr": {"early_endpoint": False}}
SHORT_VAD = {"vad": {"pause_ms": 0, "min_silence_ms": 128}, "asr": {"early_endpoint": False}}
TOML_SWITCHES = {"pause_ms = 128": "pause_ms = 0", "params.early_endpoint = true": "params.early_endpoint = false"}


def vad_only_toml(path: Path) -> Path:
    text = VOICE.read_text()
    for old, new in TOML_SWITCHES.items():
        assert old in text, f"examples/commands.toml no longer has {old!r}: update the benchmark"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def nodectl_run(pipeline: Path, wav: Path, reply: Path, fast_chunk_ms: int = 0) -> dict[str, Any]:
    """nodectl run in real time (20 ms chunks), or as fast as possible in chunks of ``fast_chunk_ms``."""
    fast = ["--fast", "--chunk-ms", str(fast_chunk_ms)] if fast_chunk_ms else ["--chunk-ms", str(CHUNK_MS)]
    cmd = [
        sys.executable,
        "-c",
        "from noded.ctl.main import main; main()",
        "--json",
        "run",
        str(pipeline),
        "-i",
        str(wav),
        "-o",
        f"tts.out={reply}",
        *fast,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise SystemExit(f"nodectl run failed ({res.returncode}): {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def pipeline_mode(pipeline: Path, wav: Path, runs: int, throughput: bool) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    first_chunk: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(runs):
            report = nodectl_run(pipeline, wav, Path(d) / "reply.wav")
            rows += report["utterances"]
            first_chunk.append(report["first_chunk_after_ready"]["by_node"])
        fast = (
            {ms: nodectl_run(pipeline, wav, Path(d) / "reply.wav", ms) for ms in FAST_CHUNKS_MS} if throughput else {}
        )
    return {
        "heard": [u["heard"] for u in rows],
        "speech_end_to_first_audio_ms": [u["end_of_speech_to_first_audio_ms"] for u in rows],
        "endpoint_to_first_audio_ms": [u["endpoint_to_first_audio_ms"] for u in rows],
        "speech_end_to_transcript_ms": [u["end_of_speech_to_transcript_ms"] for u in rows],
        "ready_to_first_chunk_processing_ms": first_chunk,
        "throughput": {ms: len(r["utterances"]) / r["stream_seconds"] for ms, r in fast.items()},
    }


def chunks(samples: np.ndarray, rate: int) -> list[LocalMessage]:
    step = rate * CHUNK_MS // 1000
    return [LocalMessage.audio(samples[i : i + step], rate) for i in range(0, len(samples), step)] + [
        LocalMessage.end()
    ]


def voice_nodes(overrides: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    spec = tomllib.loads(VOICE.read_text())
    return [(n["id"], n["class"], {**n.get("params", {}), **overrides.get(n["id"], {})}) for n in spec["nodes"]]


def sequential_mode(wav: Path, runs: int, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    audio, rate = read_wav(wav)
    audio = audio[:, 0]
    nodes = voice_nodes(overrides)
    # Pre-pass (untimed): where each utterance ends (its speech, and the VAD's endpoint).
    vad = LocalChain(nodes[:2])
    vad.run(chunks(audio, rate))
    ends = [
        m.json for m in vad["vad"].sent if m.kind is Kind.JSON and m.source == "vad.out" and m.json["event"] == "end"
    ]
    chain = LocalChain(nodes)
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "heard",
            "speech_end_to_first_audio_ms",
            "endpoint_to_first_audio_ms",
            "speech_end_to_transcript_ms",
            "processing_s",
        )
    }
    for _ in range(runs):
        cut = 0
        for end in ends:
            stop = int(round(end["endpoint_s"] * rate))
            segment = chunks(audio[cut:stop], rate)
            cut = stop
            t0 = time.perf_counter()
            chain.run(segment)
            total = time.perf_counter() - t0
            audio_at = chain.first_sent("tts", kind=Kind.AUDIO)
            text_at = chain.first_sent("asr")
            wait_ms = 1000 * (end["endpoint_s"] - end["speech_end_s"])
            heard = [m.json["text"] for m in chain["asr"].sent if m.kind is Kind.JSON]
            out["heard"].append(heard[0] if heard else None)
            out["processing_s"].append(total)
            for stage in chain.stages:
                out.setdefault(f"stage_ms.{stage.node_id}", []).append(1000 * stage.seconds)
            out["endpoint_to_first_audio_ms"].append(None if audio_at is None else 1000 * (audio_at - t0))
            out["speech_end_to_first_audio_ms"].append(None if audio_at is None else wait_ms + 1000 * (audio_at - t0))
            out["speech_end_to_transcript_ms"].append(None if text_at is None else wait_ms + 1000 * (text_at - t0))
    chain.close()
    n_per_run = len(ends)
    return {**out, "throughput": n_per_run * runs / sum(out["processing_s"]), "endpoints": ends}


def pct(values: list[float | None], q: float) -> float:
    got = sorted(v for v in values if v is not None)
    return float(np.percentile(got, q)) if got else float("nan")


def table(head: list[str], body: list[list[str]]) -> str:
    rows = [head, ["---"] * len(head), *body]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


MODES = ("sequential", "sequential, 128 ms VAD endpoint", "pipeline, VAD endpoint only", "pipeline as shipped")


def main() -> None:
    if "--assistant" in sys.argv:  # the voice assistant's models: benchmarks/assistant_latency.py
        sys.argv.remove("--assistant")
        import assistant_latency

        assistant_latency.main()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assistant", action="store_true", help="the voice assistant (see assistant_latency.py)")
    ap.add_argument("--runs", type=int, default=2, help="passes over the input per mode (latency)")
    ap.add_argument("--utterances", type=int, default=len(UTTERANCES), help=f"at most {len(UTTERANCES)}")
    ap.add_argument("--sequential-only", action="store_true", help="no noded needed")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sentences = UTTERANCES[: args.utterances]
    modes: dict[str, dict[str, Any] | None] = dict.fromkeys(MODES)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        wav = Path(d) / "utterances.wav"
        seconds = make_input(wav, sentences)
        modes[MODES[0]] = sequential_mode(wav, args.runs, VAD_ONLY)
        modes[MODES[1]] = sequential_mode(wav, args.runs, SHORT_VAD)
        if not args.sequential_only:
            modes[MODES[2]] = pipeline_mode(vad_only_toml(Path(d) / "vad_only.toml"), wav, args.runs, False)
            modes[MODES[3]] = pipeline_mode(VOICE, wav, args.runs, True)
    result: dict[str, Any] = {
        "input": {"utterances": sentences, "seconds": round(seconds, 2)},
        "modes": modes,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"input: {len(sentences)} utterances, {seconds:.1f} s of audio; {args.runs} run(s) per mode; "
        f"{os.cpu_count()} CPUs"
    )
    ran = {name: data for name, data in modes.items() if data is not None}
    for name, data in ran.items():
        right = sum(h == s for h, s in zip(data["heard"], sentences * args.runs))
        print(f"{name}: {right}/{len(data['heard'])} transcripts exactly right")
    base, best = ran[MODES[0]], ran.get(MODES[3])
    rows = []
    for label, key in (
        ("end of speech -> first audio out", "speech_end_to_first_audio_ms"),
        ("end of speech -> transcript", "speech_end_to_transcript_ms"),
        ("endpoint -> first audio out", "endpoint_to_first_audio_ms"),
    ):
        cells = [f"{pct(d[key], 50):.0f} / {pct(d[key], 95):.0f}" for d in ran.values()]
        cut = 1 - pct(best[key], 50) / pct(base[key], 50) if best else float("nan")
        verdict = ("ok" if cut >= TARGET else "missed") if label.endswith("first audio out") and best else ""
        rows.append([label, *cells, f"{100 * cut:.0f}%" if best else "-", verdict])
    tp = ["-"] * len(ran)
    tp[0] = f"{base['throughput']:.1f}"
    if best:
        tp[-1] = " / ".join(f"{best['throughput'][ms]:.1f}" for ms in FAST_CHUNKS_MS)
    rows.append([f"throughput, utterances/s (pipeline: {' / '.join(map(str, FAST_CHUNKS_MS))} ms chunks)", *tp, "", ""])
    print(table(["ms, p50 / p95", *ran, "shipped vs sequential", "target >= 50%"], rows))
    if best:
        fc = best["ready_to_first_chunk_processing_ms"]  # per run: {node: ms}
        first = [min(run.values()) for run in fc]
        in_vad = [run.get("vad", float("nan")) for run in fc]
        verdict = "ok" if max(first) <= 50 else "missed"
        print(
            f"READY -> the first chunk's processing begins (first node): {', '.join(f'{v:.1f}' for v in first)} ms "
            f"(target <= 50 ms: {verdict}); in the VAD: {', '.join(f'{v:.1f}' for v in in_vad)} ms"
        )
    stages = ", ".join(
        f"{k.split('.', 1)[1]} {statistics.median(v):.1f}" for k, v in base.items() if k.startswith("stage_ms.")
    )
    print(f"sequential, time per stage and utterance (median ms): {stages}")
    for name in MODES[:2]:
        waits = [1000 * (e["endpoint_s"] - e["speech_end_s"]) for e in ran[name]["endpoints"]]
        print(f"{name}: endpointing wait {statistics.median(waits):.0f} ms median")


if __name__ == "__main__":
    main()
