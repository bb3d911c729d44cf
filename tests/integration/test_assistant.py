"""The voice assistant (examples/assistant.toml) end to end in real units: Whisper,
the router and SmolLM2, Piper, each in its own unit and run from the models venv; and
the create-time checks of a node's python."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from noded.contract.client import Client
from noded.ctl.mediafiles import read_wav

from .conftest import Sessions, nodectl, noded_units
from .test_isolation import Probe

REPO = Path(__file__).resolve().parents[2]
ASSISTANT = (REPO / "examples" / "assistant.toml").read_text()
MODELS_PYTHON = Path(sys.prefix).parent / "models-venv" / "bin" / "python"


def assistant() -> str:
    if not MODELS_PYTHON.exists():
        pytest.skip(f"no models venv at {MODELS_PYTHON.parent.parent}: packaging/models-env makes it")
    return ASSISTANT.replace("/opt/noded/models-venv/bin/python", str(MODELS_PYTHON))


def test_the_assistant_answers_spoken_questions_out_loud_and_is_interrupted_by_a_barge_in(
    sessions: Sessions, tmp_path: Path
) -> None:
    pipeline = sessions.write(assistant())
    reply = tmp_path / "reply.wav"
    # Four questions; the fourth comes 1.5 s after the third, while its reply is being made
    # or played (examples/audio/make-questions).
    sample = REPO / "examples" / "audio" / "questions.wav"
    res = nodectl("--json", "run", str(pipeline), "-i", str(sample), "-o", f"tts.out={reply}", timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    utterances = report["utterances"]
    heard = [u["heard"] for u in utterances]
    assert len(heard) == 4, report
    assert "capital of france" in heard[0] and "kitchen" in heard[1], heard
    assert "moon" in heard[2] and "spider" in heard[3], heard
    replies = [u["reply"] or "" for u in utterances]
    # The barge-in: the third reply is cut, the client says so and writes only what was played.
    assert utterances[2]["interrupted"], report
    assert utterances[2]["played_s"] is not None and utterances[2]["played_s"] < 1.6, report
    assert [2] in [f["interrupted"] for f in report["flushes"]], report["flushes"]
    (cut,) = [f for f in report["flushes"] if f["interrupted"] == [2]]
    assert cut["origin"] == "vad" and cut["reason"] == "barge-in"
    assert {"vad.events", "tts.out"} <= set(cut["ms_to_client_by_output"]), cut  # it reached the end
    # The others had 6 s of silence to be answered and played out: a busy machine may be
    # slower than that (then the next question interrupts them too, and says why).
    for i, expected in ((0, "paris"), (1, "turning off the kitchen lights.")):
        u = utterances[i]
        if u["interrupted"]:
            first = u["end_of_speech_to_first_audio_ms"]
            assert first is None or first + 1000 * u["reply_audio_s"] > 5500, u
        else:
            assert expected in replies[i].lower(), replies
            assert u["reply_audio_s"] > 0.5, u
    assert not utterances[3]["interrupted"] and replies[3] and utterances[3]["reply_audio_s"] > 0.5, report
    samples, rate = read_wav(reply)
    written = len(samples) / rate
    played = sum(u["played_s"] if u["interrupted"] else u["reply_audio_s"] for u in utterances)
    assert rate == 22050 and written > 1.0 and abs(written - played) < 0.05, (written, played, report)
    assert noded_units() == []


def test_a_python_without_noded_is_refused_at_create(sessions: Sessions, tmp_path: Path) -> None:
    text = '[[nodes]]\nid = "brain"\nclass = "passthrough"\npython = "/usr/bin/python3"\n'
    pipeline = sessions.write(text)
    res = nodectl("session", "create", str(pipeline))
    assert res.returncode == 4, (res.returncode, res.stderr)
    assert "node 'brain': field 'python'" in res.stderr and "noded is not installed" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "models-env" in res.stderr


def test_env_reaches_the_node_as_written_and_jit_lifts_wx_for_that_node_only(
    client: Client, sessions: Sessions
) -> None:
    extra = 'env = { OMP_NUM_THREADS = "3", ODD = "$HOME %n ${X} \\\\ \\"q\\"" }'
    plain, jit = Probe(client, sessions, extra), Probe(client, sessions, "jit = true")
    try:
        answer = plain.ask(env=["OMP_NUM_THREADS", "ODD", "OPENBLAS_NUM_THREADS"], wx=True)
        assert answer["env"] == {"OMP_NUM_THREADS": "3", "ODD": '$HOME %n ${X} \\ "q"', "OPENBLAS_NUM_THREADS": "1"}
        assert answer["wx"] == "EPERM"  # MemoryDenyWriteExecute=yes
        assert jit.ask(wx=True)["wx"] == "ok"
    finally:
        plain.close()
        jit.close()
