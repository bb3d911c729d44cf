"""Users' own node code, in real units: a class in a file next to a pipeline under /srv
runs, sees its own file and nothing next to it, and a syntax error fails at create
with the file and the line."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import noded
from noded.contract.client import RemoteError
from noded.contract.states import SessionState
from noded.contract.wire import Kind

from .conftest import noded_units

PIPELINE = """
inputs = ["x"]
outputs = ["mine.out"]

[[nodes]]
id = "mine"
class = "nodes/doubler.py:Doubler"
inputs = ["input.x"]
params = { secret = "SECRET" }
"""

# The node checks in setup() what it can see: its own file, and not the folder next
# to its code folder nor the file next to it; a failure fails the session.
NODE = """
import os
import numpy as np
import noded


class Doubler(noded.Node):
    def setup(self, ctx):
        here = os.path.dirname(__file__)
        with open(__file__) as f:
            assert "class Doubler" in f.read()
        for hidden in (self.params["secret"], os.path.join(here, "other.py")):
            path = os.path.join(os.path.dirname(here), hidden) if hidden == self.params["secret"] else hidden
            try:
                os.listdir(path) if os.path.isdir(path) else open(path).close()
            except OSError:
                continue
            raise RuntimeError(f"the node can read {path}")

    def process(self, msg):
        return np.asarray(msg.array) * 2
"""


@pytest.fixture
def project() -> Iterator[Path]:
    root = Path("/srv") / f"noded-test-{secrets.token_hex(4)}"
    (root / "nodes").mkdir(parents=True)
    (root / "SECRET").mkdir()
    (root / "SECRET" / "key").write_text("not for nodes")
    (root / "nodes" / "other.py").write_text("KEY = 1\n")
    (root / "nodes" / "doubler.py").write_text(NODE)
    (root / "pipeline.toml").write_text(PIPELINE)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_a_node_class_in_a_file_next_to_the_pipeline_runs_and_sees_only_its_file(project: Path) -> None:
    # A node of the same file that CAN read the sibling folder would fail setup: the
    # check is real (proved by the unit test of the sandbox properties and below).
    assert (project / "SECRET" / "key").read_text() == "not for nodes"
    data = np.arange(4, dtype=np.float32)
    with noded.connect() as nd:
        with nd.create(project / "pipeline.toml", timeout=60) as session:
            sid = session.sid
            assert session.state is SessionState.READY
            session.feed("x", data, kind=Kind.TENSOR, end=True)
            got = [np.array(m.array) for m in session.outputs(timeout=30)]
            got = [a for a in got if a.size]  # without the empty end-of-stream message
        assert noded_units(f"noded-{sid}*") == []
    assert len(got) == 1 and np.array_equal(got[0], data * 2)


def test_a_node_that_reads_what_it_was_not_given_fails(project: Path) -> None:
    """The control of the test above: told to look at its own code folder (which it
    may read), the same check fails setup, so the check can fail."""
    text = PIPELINE.replace('secret = "SECRET"', 'secret = "nodes"')
    (project / "pipeline.toml").write_text(text)
    with noded.connect() as nd:
        with pytest.raises(noded.api.SessionFailed) as info:
            with nd.create(project / "pipeline.toml", timeout=60):
                pass
    failure = info.value.info.failure
    assert failure is not None and failure.node == "mine", failure
    assert any("the node can read" in line for line in [failure.status_text, *failure.journal]), failure


def test_a_syntax_error_fails_at_create_with_file_and_line(project: Path) -> None:
    (project / "nodes" / "doubler.py").write_text(NODE + "\ndef broken(:\n    pass\n")
    with noded.connect() as nd:
        with pytest.raises(RemoteError) as info:
            nd.create(project / "pipeline.toml", timeout=60)
    assert info.value.code == "invalid_pipeline"
    line = NODE.count("\n") + 2
    text = str(info.value)
    assert "mine" in text and f"{project / 'nodes' / 'doubler.py'}, line {line}: syntax error" in text, text
