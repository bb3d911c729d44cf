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


def test_the_assistant_answers_spoken_questions_out_loud(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(assistant())
    reply = tmp_path / "reply.wav"
    sample = REPO / "examples" / "audio" / "questions.wav"
    res = nodectl("--json", "run", str(pipeline), "-i", str(sample), "-o", f"tts.out={reply}", timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    heard = [u["heard"] for u in report["utterances"]]
    assert len(heard) == 3, report
    assert "capital of france" in heard[0] and "kitchen" in heard[1] and "spider" in heard[2], heard
    replies = [u["reply"] or "" for u in report["utterances"]]
    assert "paris" in replies[0].lower(), replies
    assert replies[1] == "Turning off the kitchen lights.", replies
    assert all(u["reply_audio_s"] > 0.5 for u in report["utterances"]), report
    samples, rate = read_wav(reply)
    assert rate == 22050 and len(samples) / rate > 3.0
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
