"""The voice assistant's latency (examples/assistant.toml: Whisper tiny.en, the router and
SmolLM2-135M, Piper), streaming pipeline against the same models run one after another
in one process (SC-007), on the same input in the same run.

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/assistant_latency.py [--runs 2] [--json]

Input: examples/audio/questions.wav (two questions by Piper's voice, a command by
espeak-ng, 1 s of silence around each).

The modes take turns, one run each, so that both see the same spells of load on a shared
machine.

* "pipeline": `nodectl --json run` of examples/assistant.toml, every model its own unit
  and process from the models venv, the audio fed in 20 ms chunks at its real-time pace.
  End of speech -> first reply audio at the client, from nodectl's report.
  Each utterance's time is broken into stages (nodectl's report: the times the nodes
  stamp, ms after the end of speech): the VAD's endpoint and end event, the ASR's final
  decode (which may start at the VAD's pause, before the end), the LLM's first clause, the
  TTS's first chunk sent and the client's receipt.
* "sequential": one process of the models venv (``--sequential``, run by this script),
  with the same node params as assistant.toml (read from it):
  for each utterance, the VAD's endpoint wait (its min_silence_ms, charged as
  waited), then Whisper over the whole utterance, then the whole reply (router or
  SmolLM2, to its last token), then the whole speech (Piper, every sample), one after
  another: first audio out is when the whole speech is ready. Utterances are cut from
  the input by energy (20 ms frames over -40 dBFS), which finds the same three.
  Also the load time of each model, one after another (SC-002 compares it with the
  pipeline's concurrent loading: session create -> ready).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import loadavg, wait_quiet, warning  # noqa: E402

SAMPLE = REPO / "examples" / "audio" / "questions.wav"
ASSISTANT = REPO / "examples" / "assistant.toml"
STAGES = (
    "endpoint", "vad_end", "asr_decode_start", "asr_decode_end", "asr_sent", "llm_received",
    "llm_first_clause", "tts_first_chunk", "client",
)  # fmt: skip


def node_params() -> dict[str, dict[str, Any]]:
    """Each node's params in assistant.toml, by id."""
    import tomllib

    return {n["id"]: dict(n.get("params", {})) for n in tomllib.loads(ASSISTANT.read_text())["nodes"]}


def sequential(runs: int) -> dict[str, Any]:
    """Runs inside the models venv."""
    import numpy as np

    from noded.nodes.asr import Asr
    from noded.nodes.llm import Llm
    from noded.nodes.streams import LocalMessage
    from noded.nodes.tts import Tts
    from noded.testing import run_setup
    from noded.wavfile import read_wav

    params = node_params()
    endpoint_ms = params["vad"]["min_silence_ms"]
    loads = {}
    t0 = time.monotonic()
    asr, actx = run_setup(Asr, params["asr"])
    loads["asr"] = time.monotonic() - t0
    t0 = time.monotonic()
    llm, lctx = run_setup(Llm, params["llm"])
    loads["llm"] = time.monotonic() - t0
    t0 = time.monotonic()
    tts, tctx = run_setup(Tts, params["tts"])
    loads["tts"] = time.monotonic() - t0

    samples, rate = read_wav(SAMPLE)
    audio = np.asarray(samples[:, 0], np.float32)
    frame = rate // 50
    voiced = np.sqrt((audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)) > 0.01
    segments, start = [], None
    for i, v in enumerate(voiced):
        if v and start is None:
            start = i
        elif not v and start is not None and not voiced[i : i + 15].any():  # 300 ms of silence
            segments.append(audio[start * frame : i * frame])
            start = None
    latencies, heard, stages = [], [], []
    for _ in range(runs):
        for segment in segments:
            t0 = time.monotonic()
            actx.sent.clear()
            asr.process(LocalMessage({"event": "start", "utterance": 1}))
            asr.process(LocalMessage.audio(segment, rate))
            asr.process(LocalMessage({"event": "end", "utterance": 1, "speech_end_ns": 1}))
            text = actx.sent[-1][1]["text"] if actx.sent else ""
            t1 = time.monotonic()
            lctx.sent.clear()
            llm.process(LocalMessage({"text": text, "utterance": 1}))
            reply = " ".join(m[1]["text"] for m in lctx.sent if m[1]["text"])
            t2 = time.monotonic()
            tctx.sent.clear()
            tts.process(LocalMessage({"text": reply}))
            t3 = time.monotonic()
            latencies.append(endpoint_ms + 1000 * (t3 - t0))
            stages.append({"asr": 1000 * (t1 - t0), "llm": 1000 * (t2 - t1), "tts": 1000 * (t3 - t2)})
            heard.append(text)
    return {"loads_s": loads, "speech_end_to_first_audio_ms": latencies, "heard": heard, "stages_ms": stages}


def pipeline(models_python: Path, runs: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    first_chunk = []
    ready_s = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        toml = Path(d) / "assistant.toml"
        toml.write_text(ASSISTANT.read_text().replace("/opt/noded/models-venv/bin/python", str(models_python)))
        Path(d).chmod(0o755)
        for _ in range(runs):
            t0 = time.monotonic()
            res = subprocess.run(
                [sys.executable, "-c", "from noded.ctl.main import main; main()", "--json", "run", str(toml),
                 "-i", str(SAMPLE), "-o", f"tts.out={Path(d) / 'reply.wav'}"],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if res.returncode != 0:
                raise SystemExit(f"nodectl run failed ({res.returncode}): {res.stderr[-2000:]}")
            report = json.loads(res.stdout)
            rows += report["utterances"]
            first_chunk.append(report["first_chunk_after_ready"]["processing_ms"])
            # create -> ready: the wall time less the stream (the sample's length at real-time pace)
            ready_s.append(time.monotonic() - t0 - report["stream_seconds"])
    return {
        "heard": [u["heard"] for u in rows],
        "replies": [u["reply"] for u in rows],
        "speech_end_to_first_audio_ms": [u["end_of_speech_to_first_audio_ms"] for u in rows],
        "stages_ms": [u.get("stages_ms", {}) for u in rows],
        "first_chunk_processing_after_ready_ms": first_chunk,
        "create_to_ready_upper_bound_s": ready_s,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v is not None)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--models-venv", default=str(Path(sys.prefix).parent / "models-venv"))
    ap.add_argument("--sequential", action="store_true", help="the sequential mode only (in the models venv)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--wait-quiet", action="store_true", help="wait (<= 10 min) for a quiet machine first")
    ap.add_argument("--save", help="also write the results (JSON) to this file")
    ap.add_argument("--report", help="print the table of a run saved with --save, and exit")
    args = ap.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    if args.sequential:
        print(json.dumps(sequential(args.runs)))
        return
    if args.wait_quiet:
        wait_quiet()
    before = loadavg()
    models_python = Path(args.models_venv) / "bin" / "python"
    # One run of each mode in turn, so that both see the same spells of a shared machine's load.
    seqs, pipes = [], []
    for _ in range(args.runs):
        seqs.append(json.loads(
            subprocess.run(
                [str(models_python), __file__, "--sequential", "--runs", "1"],
                capture_output=True, text=True, check=True, cwd=REPO, timeout=900,
            ).stdout
        ))  # fmt: skip
        pipes.append(pipeline(models_python, 1))
    seq = {k: [v for s in seqs for v in s[k]] for k in ("speech_end_to_first_audio_ms", "heard", "stages_ms")}
    seq["loads_s"] = seqs[-1]["loads_s"]
    pipe = {k: [v for p in pipes for v in p[k]] for k in pipes[0]}
    after = loadavg()
    result: dict[str, Any] = {"sequential": seq, "pipeline": pipe, "loadavg": {"before": before, "after": after}}
    if args.save:
        Path(args.save).write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    report(result)


def report(result: dict[str, Any]) -> None:
    """The table of a run (``--report FILE`` prints it again from ``--save FILE``)."""
    seq, pipe = result["sequential"], result["pipeline"]
    before, after = result["loadavg"]["before"], result["loadavg"]["after"]
    for name, mode in (("sequential", seq), ("pipeline", pipe)):
        lat = mode["speech_end_to_first_audio_ms"]
        print(
            f"{name}: end of speech -> first audio out p50 {statistics.median(lat):.0f} ms, p95 {pct(lat, 0.95):.0f} ms"
        )
    s, p = seq["speech_end_to_first_audio_ms"], pipe["speech_end_to_first_audio_ms"]
    for q in (0.5, 0.95):
        print(f"SC-007 p{int(q * 100)}: pipeline {100 * (1 - pct(p, q) / pct(s, q)):.0f}% lower than sequential")
    print(f"sequential model loads {seq['loads_s']} (sum {sum(seq['loads_s'].values()):.2f} s)")
    print(f"pipeline create -> ready (upper bound): {pipe['create_to_ready_upper_bound_s']}")
    print(f"first chunk processed after ready: {pipe['first_chunk_processing_after_ready_ms']} ms")
    print(f"heard: {pipe['heard']}\nreplies: {pipe['replies']}")
    print(
        "sequential stages, ms (asr, whole reply, whole speech), per utterance: "
        + "; ".join(" ".join(f"{v:.0f}" for v in s.values()) for s in seq["stages_ms"])
    )
    print_stages(pipe)
    print(f"load average (1, 5, 15 min) before {' '.join(before)}, after {' '.join(after)}")
    if line := warning(before, after):
        print(line)


def print_stages(pipe: dict[str, Any]) -> None:
    """The pipeline's end of speech -> first audio, stage by stage (ms after the end of
    speech, when each stage was reached), one column per utterance, and the median."""
    stages = pipe["stages_ms"]
    print("pipeline stages, ms after the end of speech (per utterance; median):")
    for stage in STAGES:
        got = [s.get(stage) for s in stages]
        cells = " ".join("     -" if v is None else f"{v:6.0f}" for v in got)
        values = [v for v in got if v is not None]
        print(f"  {stage:17} {cells}   | {statistics.median(values) if values else float('nan'):6.0f}")


if __name__ == "__main__":
    main()
