"""OomWatcher's own cgroups: made before a unit starts, removed when it never did, and
swept after a crash of the daemon. A plain directory stands in for the v1 memory
hierarchy (the watch itself needs the kernel: tests/integration/test_exhaustion.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from noded.daemon.oom import OomWatcher


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\n")
    (tmp_path / "cgroup.event_control").write_text("")
    return tmp_path


def test_watch_with_create_makes_the_cgroup_and_forget_removes_it(root: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.ERROR, "noded.oom")  # no memory.oom_control in a plain dir: cannot watch

    async def run() -> None:
        w = OomWatcher(root)
        assert w.available
        w.watch("noded-s1-a.service", "/noded.slice/noded-s1.slice/noded-s1-a.service", create=True)
        cg = root / "noded.slice/noded-s1.slice/noded-s1-a.service"
        assert cg.is_dir()
        w.forget("noded-s1-a.service")
        assert not cg.exists() and not cg.parent.exists()  # the session's slice went too
        assert (root / "noded.slice").is_dir()  # never the parent of all sessions

    asyncio.run(run())


def test_forget_leaves_a_cgroup_it_did_not_make(root: Path) -> None:
    cg = root / "noded.slice/noded-s2.slice/noded-s2-a.service"
    cg.mkdir(parents=True)
    OomWatcher(root).forget("noded-s2-a.service")
    assert cg.is_dir()


def test_remove_leftovers_sweeps_empty_session_cgroups_only(root: Path) -> None:
    for d in (
        "noded.slice/noded-s3.slice/noded-s3-a.service",
        "noded.slice/noded-s3.slice/noded-s3-b.service",
        "noded.slice/noded-s4.slice",
    ):
        (root / d).mkdir(parents=True)
    busy = root / "noded.slice/noded-s5.slice/noded-s5-a.service"
    busy.mkdir(parents=True)
    (busy / "tasks").write_text("123\n")  # a plain dir with a file cannot be removed: "in use"
    removed = OomWatcher(root).remove_leftovers("noded.slice")
    assert sorted(Path(p).name for p in removed) == [
        "noded-s3-a.service",
        "noded-s3-b.service",
        "noded-s3.slice",
        "noded-s4.slice",
    ]
    assert busy.is_dir() and (root / "noded.slice").is_dir()
