"""noded.connect(): the Python API against the real daemon, from pipeline text to data
back from a node process, and the session gone when its block ends."""

from __future__ import annotations

import numpy as np
import pytest

import noded
from noded.api import SessionFailed
from noded.contract.client import RemoteError
from noded.contract.protocol import SessionInfo
from noded.contract.states import SessionState
from noded.contract.wire import Kind

from .conftest import chain, noded_units

ECHO = """
inputs = ["x"]
outputs = ["echo.out"]

[[nodes]]
id = "echo"
class = "passthrough"
inputs = ["input.x"]
"""


def test_a_session_from_toml_text_fed_read_back_and_stopped_on_leaving() -> None:
    progress: list[SessionInfo] = []
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    with noded.connect() as nd:
        assert nd.status()["protocol"] == 2
        with nd.create(ECHO, on_progress=progress.append, timeout=60) as session:
            sid = session.sid
            assert session.state is SessionState.READY
            assert noded_units(f"noded-{sid}*"), "the session has no units"
            assert progress and progress[-1].state is SessionState.READY and progress[-1].sid == sid
            assert all(p.state in (SessionState.CREATING, SessionState.READY) for p in progress)
            assert session.inputs == ["x"] and session.output_names == ["echo.out"]
            session.feed("x", data, kind=Kind.TENSOR, end=True)
            got = []
            for msg in session.outputs(timeout=30):
                assert msg.source == "echo.out"
                got.append(np.array(msg.array))  # a copy: the message is shared memory
                del msg
            assert session.all_ended
            assert len(got) == 1 and got[0].dtype == np.float32 and np.array_equal(got[0], data)
            assert sid in [s.sid for s in nd.sessions()]
        # leaving the block stopped the session and waited for its units
        assert session.info.state is SessionState.STOPPED
        assert noded_units(f"noded-{sid}*") == []
        assert nd.show(sid).state is SessionState.STOPPED


def test_a_session_from_a_dict_and_its_events_until_stopped() -> None:
    doc = {"name": "from-a-dict", "nodes": [{"id": "n0", "class": "passthrough", "inputs": []}]}
    with noded.connect() as nd:
        session = nd.create(doc, wait=False)
        with session:
            assert session.info.pipeline == "from-a-dict"
            ready = session.wait_ready(timeout=60)
            assert ready.state is SessionState.READY and [n.id for n in ready.nodes] == ["n0"]
            nd.stop(session.sid, wait=False)
            states = [info.state for info in session.events()]
            assert states[-1] is SessionState.STOPPED and SessionState.STOPPING in states
        assert noded_units(f"noded-{session.sid}*") == []


def test_a_failing_session_raises_with_the_failure_and_leaves_nothing() -> None:
    with noded.connect() as nd:
        with pytest.raises(SessionFailed) as caught:
            nd.create(chain(1) + '[[nodes]]\nid = "c"\nclass = "crash"\nparams = { when = "setup" }\n', timeout=60)
        info = caught.value.info
        assert info.state in (SessionState.STOPPING, SessionState.FAILED) and info.failure is not None
        assert noded_units(f"noded-{info.sid}*") == []  # create() stopped what it started
        with pytest.raises(RemoteError) as unknown:
            nd.session("00000000")
        assert unknown.value.code == "session_not_found"
