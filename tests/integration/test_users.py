"""Clients that are not root: real users the test creates (in group noded) run their
own sessions as themselves, end to end with nodectl; another user can list and show
them but not stop, feed or read them; root can; only root may name a pipeline's user."""

from __future__ import annotations

import grp
import json
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import NODECTL, nodectl, noded_units, systemctl
from .test_dataplane import io_chain

GROUP = "noded"


def as_user(name: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """nodectl ARGS run as user ``name`` with its groups, no root left."""
    account = pwd.getpwnam(name)
    cmd = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--", *NODECTL]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd="/")


@pytest.fixture
def users() -> Iterator[list[str]]:
    """Two fresh users in group noded (created and deleted here)."""
    grp.getgrnam(GROUP)  # the group exists (packaging/sysusers.conf)
    names = [f"ndt{secrets.token_hex(3)}{i}" for i in (1, 2)]
    made: list[str] = []
    try:
        for name in names:
            subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", GROUP, name], check=True
            )
            made.append(name)
        yield names
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False)


@pytest.fixture
def project() -> Iterator[Path]:
    root = Path("/srv") / f"noded-test-{secrets.token_hex(4)}"
    root.mkdir(parents=True)
    root.chmod(0o755)
    (root / "pipeline.toml").write_text(io_chain(2))
    (root / "lines.txt").write_text("hello\nwörld\n")
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_a_user_runs_a_session_as_themselves_and_another_user_cannot_touch_it(users: list[str], project: Path) -> None:
    alice, bob = users
    res = as_user(alice, "run", str(project / "pipeline.toml"), "--input", str(project / "lines.txt"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["hello", "wörld"]

    res = as_user(alice, "--json", "session", "create", str(project / "pipeline.toml"), "--wait")
    assert res.returncode == 0, res.stderr
    sid = json.loads(res.stdout)["sid"]
    try:
        units = noded_units(f"noded-{sid}-*")
        assert units and all(systemctl("show", "-P", "User", u).stdout.strip() == alice for u in units)
        # everyone may look
        shown = json.loads(as_user(bob, "--json", "session", "show", sid).stdout)
        assert (shown["owner"], shown["run_as"]) == (alice, alice)
        assert sid in as_user(bob, "session", "list").stdout
        # nobody else may stop, feed or read
        for args in (("session", "stop", sid), ("feed", sid, "data", str(project / "lines.txt"))):
            res = as_user(bob, *args)
            assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
            assert f"belongs to '{alice}'" in res.stderr and f"'{bob}' may not" in res.stderr, res.stderr
        assert noded_units(f"noded-{sid}-*") == units
        # the owner feeds it, and root may stop it
        res = as_user(alice, "feed", sid, "data", str(project / "lines.txt"))
        assert res.returncode == 0, res.stderr
        res = nodectl("session", "stop", sid)
        assert res.returncode == 0, res.stderr
    finally:
        nodectl("session", "stop", sid)
    assert noded_units(f"noded-{sid}-*") == []


def test_only_root_may_name_the_user_of_a_pipeline(users: list[str], project: Path) -> None:
    alice, bob = users
    (project / "as_bob.toml").write_text(f'user = "{bob}"\n' + io_chain(1))
    res = as_user(alice, "session", "create", str(project / "as_bob.toml"))
    assert res.returncode != 0 and "only root may run a pipeline as another user" in res.stderr, res.stderr
    res = nodectl("--json", "session", "create", str(project / "as_bob.toml"), "--wait")
    assert res.returncode == 0, res.stderr
    sid = json.loads(res.stdout)["sid"]
    try:
        units = noded_units(f"noded-{sid}-*")
        assert units and all(systemctl("show", "-P", "User", u).stdout.strip() == bob for u in units)
    finally:
        nodectl("session", "stop", sid)
    assert noded_units(f"noded-{sid}-*") == []


GRAY = """\
import numpy as np
from noded import Node


class Gray(Node):
    def setup(self, ctx):
        self.ctx = ctx

    def process(self, msg):
        if msg.end_of_stream:
            return msg
        out = self.ctx.loan("out", msg.array.shape[:2], "uint8")
        np.max(msg.array, axis=2, out=out)
        self.ctx.send("out", out)
"""


def test_the_readme_short_path_as_a_user_a_file_next_to_the_pipeline_through_nodectl_run(
    users: list[str], project: Path
) -> None:
    alice = users[0]
    (project / "nodes").mkdir()
    (project / "nodes" / "gray.py").write_text(GRAY)
    (project / "pipeline.toml").write_text(
        'inputs = ["frames"]\noutputs = ["gray.out"]\n\n[[nodes]]\nid = "gray"\n'
        'class = "nodes/gray.py:Gray"\ninputs = ["input.frames"]\n'
    )
    frames = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    np.save(project / "in.npy", frames)
    out = project / "out"
    out.mkdir()
    shutil.chown(out, user=alice)
    res = as_user(
        alice,
        "run",
        str(project / "pipeline.toml"),
        "-i",
        f"frames={project / 'in.npy'}",
        "-o",
        f"gray.out={out}/g.npy",
    )
    assert res.returncode == 0, res.stderr
    assert np.array_equal(np.load(out / "g.npy"), frames.max(axis=2))
