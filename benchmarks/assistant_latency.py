"""The voice assistant (examples/assistant.toml: Whisper tiny.en, the router and
SmolLM2-135M, Piper) against the seed's success criteria, on the same input in the same
run. ``benchmarks/speech_latency.py --assistant`` runs it (and this file alone does too).

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/speech_latency.py --assistant \
        [--runs 2] [--sessions 2] [--json]

Input: examples/audio/questions.wav (three questions by Piper's voice, a command by
espeak-ng; the fourth question comes 1.5 s after the third, a barge-in).

The modes take turns, one run each, so that both see the same spells of load on a shared
machine.

* SC-007, "pipeline": `nodectl --json run` of examples/assistant.toml with ``barge_in``
  off (so that both modes answer every question), every model its own unit and process
  from the models venv, the audio fed in 20 ms chunks at its real-time pace. End of
  speech -> first reply audio at the client, from nodectl's report; the target is the
  pipeline >= 50% lower than the sequential process at p50 and p95, and <= 800 ms p50.
  Each utterance's time is broken into stages (nodectl's report: the times the nodes
  stamp, ms after the end of speech): the VAD's endpoint and end event, the ASR's final
  decode (which may start at the VAD's pause, before the end), the LLM's first clause, the
  TTS's first chunk sent and the client's receipt.
* SC-007, "sequential": one process of the models venv (``--sequential``, run by this
  script), with the same node params as assistant.toml (read from it): for each utterance,
  the VAD's endpoint wait (its min_silence_ms, charged as waited), then Whisper over the
  whole utterance, then the whole reply (router or SmolLM2, to its last token), then the
  whole speech (Piper, every sample), one after another: first audio out is when the whole
  speech is ready. Utterances are cut from the input by energy (20 ms frames over -40
  dBFS), which finds the same four. Also the load time of each model, one after another.
* SC-002: a session of the pipeline created through ``noded.connect()``: create -> ready
  (every model loading at once, each in its unit) against the sum of the sequential
  loads, and the longest wait between two status events the client got meanwhile
  (target <= 2 s).
* US2: READY -> the first chunk's processing begins (target <= 50 ms), from the reports.
* SC-004: ``--sessions`` sessions of the pipeline at once, each fed the input by its own
  `nodectl run`, each reporting its latency.
* Barge-in: one run as shipped (``barge_in`` on): which replies were interrupted, and how
  long the flush took from the chunk that held the new speech to each output.
"""

from __future__ import annotations

import argparse
import json
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


def assistant_toml(folder: Path, models_python: Path, barge_in: bool, name: str = "assistant.toml") -> Path:
    text = ASSISTANT.read_text().replace("/opt/noded/models-venv/bin/python", str(models_python))
    if not barge_in:
        text = text.replace("barge_in = true", "barge_in = false")
    toml = folder / name
    toml.write_text(text)
    folder.chmod(0o755)
    return toml


def start_run(toml: Path, reply: Path) -> subprocess.Popen[str]:
    """`nodectl --json run` of ``toml`` on the sample, started."""
    return subprocess.Popen(
        [sys.executable, "-c", "from noded.ctl.main import main; main()", "--json", "run", str(toml),
         "-i", str(SAMPLE), "-o", f"tts.out={reply}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish_run(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"nodectl run failed ({proc.returncode}): {err[-2000:]}")
    report: dict[str, Any] = json.loads(out)
    return report


def pipeline(models_python: Path, runs: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    first_chunk = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        toml = assistant_toml(Path(d), models_python, barge_in=False)
        for _ in range(runs):
            report = finish_run(start_run(toml, Path(d) / "reply.wav"))
            rows += report["utterances"]
            first_chunk.append(report["first_chunk_after_ready"]["processing_ms"])
    return {
        "heard": [u["heard"] for u in rows],
        "replies": [u["reply"] for u in rows],
        "speech_end_to_first_audio_ms": [u["end_of_speech_to_first_audio_ms"] for u in rows],
        "stages_ms": [u.get("stages_ms", {}) for u in rows],
        "first_chunk_processing_after_ready_ms": first_chunk,
    }


def ready(models_python: Path) -> dict[str, Any]:
    """SC-002: create -> ready through noded.connect(), and the longest wait between two
    of the status events the client got meanwhile."""
    import noded

    times: list[float] = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        toml = assistant_toml(Path(d), models_python, barge_in=False)
        with noded.connect() as nd:
            t0 = time.monotonic()
            with nd.create(toml, on_progress=lambda _: times.append(time.monotonic()), timeout=300):
                t1 = time.monotonic()
    marks = [t0, *times, t1]
    return {
        "create_to_ready_s": round(t1 - t0, 3),
        "status_events": len(times),
        "longest_status_gap_s": round(max(b - a for a, b in zip(marks, marks[1:])), 3),
    }


def concurrent(models_python: Path, sessions: int) -> dict[str, Any]:
    """SC-004: ``sessions`` sessions at once, each with its own client."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        folder = Path(d)
        procs = [
            start_run(assistant_toml(folder, models_python, False, f"a{i}.toml"), folder / f"reply{i}.wav")
            for i in range(sessions)
        ]
        reports = [finish_run(p) for p in procs]
    return {
        "sessions": [
            {
                "heard": [u["heard"] for u in r["utterances"]],
                "speech_end_to_first_audio_ms": [u["end_of_speech_to_first_audio_ms"] for u in r["utterances"]],
            }
            for r in reports
        ]
    }


def barge_in(models_python: Path) -> dict[str, Any]:
    """One run as shipped: the interruptions and how long each flush took to each output."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        report = finish_run(start_run(assistant_toml(Path(d), models_python, True), Path(d) / "reply.wav"))
    return {
        "interrupted": [u["index"] for u in report["utterances"] if u["interrupted"]],
        "played_s": [u["played_s"] for u in report["utterances"] if u["interrupted"]],
        "flushes": [f for f in report["flushes"] if f["interrupted"]],
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v is not None)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(models_venv: Path, runs: int, sessions: int) -> dict[str, Any]:
    """Every figure above, in one run (run as root beside noded.service)."""
    models_python = models_venv / "bin" / "python"
    before = loadavg()
    # One run of each mode in turn, so that both see the same spells of a shared machine's load.
    seqs, pipes = [], []
    for _ in range(runs):
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
    result = {
        "sequential": seq,
        "pipeline": pipe,
        "ready": ready(models_python),
        "concurrent": concurrent(models_python, sessions) if sessions > 1 else None,
        "barge_in": barge_in(models_python),
    }
    result["load_average"] = {"before": before, "after": loadavg()}
    return result


def show(result: dict[str, Any]) -> None:
    """The table of a run (``--report FILE`` prints it again from ``--save FILE``)."""
    seq, pipe = result["sequential"], result["pipeline"]
    for name, mode in (("sequential", seq), ("pipeline", pipe)):
        lat = [v for v in mode["speech_end_to_first_audio_ms"] if v is not None]
        print(f"{name}: end of speech -> first audio out p50 {pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms")
    s, p = seq["speech_end_to_first_audio_ms"], pipe["speech_end_to_first_audio_ms"]
    for q in (0.5, 0.95):
        cut = 100 * (1 - pct(p, q) / pct(s, q))
        print(f"SC-007 p{int(q * 100)}: pipeline {cut:.0f}% lower than sequential (target >= 50%)")
    print(f"absolute: pipeline p50 {pct(p, 0.5):.0f} ms (target <= 800 ms)")
    loads, ready_ = seq["loads_s"], result["ready"]
    print(
        f"SC-002: create -> ready {ready_['create_to_ready_s']:.2f} s (models loading at once) against "
        f"{sum(loads.values()):.2f} s of loads one after another "
        f"({', '.join(f'{k} {v:.2f}' for k, v in loads.items())}); "
        f"{ready_['status_events']} status events, longest wait between two {ready_['longest_status_gap_s']:.2f} s "
        "(target <= 2 s)"
    )
    print(f"US2: first chunk processed after ready: {pipe['first_chunk_processing_after_ready_ms']} ms (target <= 50)")
    if result["concurrent"]:
        for i, session in enumerate(result["concurrent"]["sessions"]):
            lat = [v for v in session["speech_end_to_first_audio_ms"] if v is not None]
            print(
                f"SC-004 session {i + 1} of {len(result['concurrent']['sessions'])} at once: end of speech -> "
                f"first audio out p50 {pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms; heard {session['heard']}"
            )
    b = result["barge_in"]
    print(f"barge-in: replies interrupted {b['interrupted']} (played {b['played_s']} s)")
    for f in b["flushes"]:
        took = ", ".join(f"{port} {ms:.0f} ms" for port, ms in f["ms_to_client_by_output"].items() if ms is not None)
        print(f"  flush from the chunk that held the new speech to the client: {took}")
    print(f"heard: {pipe['heard']}\nreplies: {pipe['replies']}")
    print(
        "sequential stages, ms (asr, whole reply, whole speech), per utterance: "
        + "; ".join(" ".join(f"{v:.0f}" for v in s.values()) for s in seq["stages_ms"])
    )
    print_stages(pipe)
    load = result["load_average"]
    print(f"load average (1, 5, 15 min) before {' '.join(load['before'])}, after {' '.join(load['after'])}")
    line = warning(load["before"], load["after"])
    if line:
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
        print(f"  {stage:17} {cells}   | {pct(values, 0.5) if values else float('nan'):6.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=2, help="SC-004: sessions at once (1: skip)")
    ap.add_argument("--models-venv", default=str(Path(sys.prefix).parent / "models-venv"))
    ap.add_argument("--sequential", action="store_true", help="the sequential mode only (in the models venv)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--wait-quiet", type=float, nargs="?", const=600.0, default=None, metavar="S",
        help="first wait up to S seconds (default 600) for a quiet machine",
    )  # fmt: skip
    ap.add_argument("--save", help="also write the results (JSON) to this file")
    ap.add_argument("--report", help="print the table of a run saved with --save, and exit")
    args = ap.parse_args()
    if args.report:
        show(json.loads(Path(args.report).read_text()))
        return
    if args.sequential:
        print(json.dumps(sequential(args.runs)))
        return
    if args.wait_quiet is not None and not wait_quiet(timeout=args.wait_quiet):
        print(f"the machine did not get quiet in {args.wait_quiet:g} s: running anyway", file=sys.stderr)
    result = measure(Path(args.models_venv), args.runs, args.sessions)
    if args.save:
        Path(args.save).write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        show(result)


if __name__ == "__main__":
    main()
