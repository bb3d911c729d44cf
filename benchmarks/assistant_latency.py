"""The voice assistant (examples/assistant.toml: Whisper tiny.en, the router and
SmolLM2-135M, Piper) against the seed's success criteria, on the same input in the same
run. ``benchmarks/speech_latency.py --assistant`` runs it (and this file alone does too).

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/speech_latency.py --assistant \
        [--runs 2] [--sessions 2] [--json]

Input: examples/audio/questions.wav (three questions by Piper's voice, a command by
espeak-ng; the fourth question comes 1.5 s after the third, a barge-in).

* SC-007, "pipeline": `nodectl --json run` of examples/assistant.toml with ``barge_in``
  off (so that both modes answer every question), every model its own unit and process
  from the models venv, the audio fed in 20 ms chunks at its real-time pace. End of
  speech -> first reply audio at the client, from nodectl's report; the target is the
  pipeline >= 50% lower than the sequential process at p50 and p95, and <= 800 ms p50.
* SC-007, "sequential": one process of the models venv (``--sequential``, run by this
  script): for each utterance, the VAD's endpoint wait (its min_silence_ms, 300 ms,
  charged as waited), then Whisper over the whole utterance, then the whole reply (router
  or SmolLM2, to its last token), then the whole speech (Piper, every sample), one after
  another: first audio out is when the whole speech is ready. Utterances are cut from
  the input by energy (20 ms frames over -40 dBFS), which finds the same four. Also the
  load time of each model, one after another.
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

SAMPLE = REPO / "examples" / "audio" / "questions.wav"
ASSISTANT = REPO / "examples" / "assistant.toml"
ENDPOINT_MS = 300  # assistant.toml's vad min_silence_ms


def sequential(runs: int) -> dict[str, Any]:
    """Runs inside the models venv."""
    import numpy as np

    from noded.nodes.asr import Asr
    from noded.nodes.llm import Llm
    from noded.nodes.streams import LocalMessage
    from noded.nodes.tts import Tts
    from noded.testing import run_setup
    from noded.wavfile import read_wav

    loads = {}
    t0 = time.monotonic()
    asr, actx = run_setup(Asr, {"backend": "whisper"})
    loads["asr"] = time.monotonic() - t0
    t0 = time.monotonic()
    llm, lctx = run_setup(Llm, {"max_tokens": 48, "max_sentences": 2})
    loads["llm"] = time.monotonic() - t0
    t0 = time.monotonic()
    tts, tctx = run_setup(Tts, {"backend": "piper"})
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
    latencies, heard = [], []
    for _ in range(runs):
        for segment in segments:
            t0 = time.monotonic()
            actx.sent.clear()
            asr.process(LocalMessage({"event": "start", "utterance": 1}))
            asr.process(LocalMessage.audio(segment, rate))
            asr.process(LocalMessage({"event": "end", "utterance": 1, "speech_end_ns": 1}))
            text = actx.sent[-1][1]["text"] if actx.sent else ""
            lctx.sent.clear()
            llm.process(LocalMessage({"text": text, "utterance": 1}))
            reply = " ".join(m[1]["text"] for m in lctx.sent if m[1]["text"])
            tctx.sent.clear()
            tts.process(LocalMessage({"text": reply}))
            latencies.append(ENDPOINT_MS + 1000 * (time.monotonic() - t0))
            heard.append(text)
    return {"loads_s": loads, "speech_end_to_first_audio_ms": latencies, "heard": heard}


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
    from conditions import loadavg

    models_python = models_venv / "bin" / "python"
    before = loadavg()
    seq = json.loads(
        subprocess.run(
            [str(models_python), __file__, "--sequential", "--runs", str(runs)],
            capture_output=True, text=True, check=True, cwd=REPO, timeout=900,
        ).stdout
    )  # fmt: skip
    result = {
        "sequential": seq,
        "pipeline": pipeline(models_python, runs),
        "ready": ready(models_python),
        "concurrent": concurrent(models_python, sessions) if sessions > 1 else None,
        "barge_in": barge_in(models_python),
    }
    result["load_average"] = {"before": before, "after": loadavg()}
    return result


def show(result: dict[str, Any]) -> None:
    from conditions import warning

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
    load = result["load_average"]
    print(f"load average: {load['before'][0]} before, {load['after'][0]} after")
    line = warning(load["before"], load["after"])
    if line:
        print(line)


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
    args = ap.parse_args()
    if args.sequential:
        print(json.dumps(sequential(args.runs)))
        return
    if args.wait_quiet is not None:
        from conditions import wait_quiet

        if not wait_quiet(timeout=args.wait_quiet):
            print(f"the machine did not get quiet in {args.wait_quiet:g} s: running anyway", file=sys.stderr)
    result = measure(Path(args.models_venv), args.runs, args.sessions)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        show(result)


if __name__ == "__main__":
    main()
