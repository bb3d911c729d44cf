"""The OOM verdict read from the kernel's counter (noded.daemon.oom): pure parts."""

from __future__ import annotations

import os
from pathlib import Path

from noded.daemon.oom import counter_file, oom_check_argv, oom_killed_from_exec
from noded.daemon.units import service_properties


def _entry(argv: list[str], code: int, status: int) -> tuple:  # type: ignore[type-arg]
    return (argv[0], argv, True, 0, 0, 0, 0, 123, code, status)


ARGV = ["/usr/bin/grep", "-q", "^oom_kill [1-9]", "/sys/fs/cgroup/memory/x/memory.oom_control"]


def test_grep_status_decides() -> None:
    assert oom_killed_from_exec([_entry(ARGV, os.CLD_EXITED, 0)]) is True
    assert oom_killed_from_exec([_entry(ARGV, os.CLD_EXITED, 1)]) is False


def test_no_answer_when_grep_did_not_run_or_could_not_read() -> None:
    assert oom_killed_from_exec([]) is None
    assert oom_killed_from_exec(None) is None
    assert oom_killed_from_exec([_entry(ARGV, os.CLD_EXITED, 2)]) is None  # file unreadable
    assert oom_killed_from_exec([_entry(ARGV, os.CLD_KILLED, 9)]) is None  # itself killed
    assert oom_killed_from_exec([_entry(["/bin/true"], os.CLD_EXITED, 0)]) is None  # not ours


def test_v1_counter_preferred(tmp_path: Path) -> None:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert (
        counter_file("/noded.slice/a.service", v1_root=tmp_path)
        == tmp_path / "noded.slice/a.service/memory.oom_control"
    )


def test_v2_counter_when_unified_has_memory(tmp_path: Path) -> None:
    v1, unified = tmp_path / "v1", tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpu io memory pids\n")
    got = counter_file("/noded.slice/a.service", v1_root=v1, unified=unified)
    assert got == unified / "noded.slice/a.service/memory.events"
    argv = oom_check_argv("/noded.slice/a.service", v1_root=v1, unified=unified)
    assert argv is not None and argv[1:] == ["-q", "^oom_kill [1-9]", str(got)]


def test_no_memory_controller_no_check(tmp_path: Path) -> None:
    assert oom_check_argv("/x", v1_root=tmp_path / "none", unified=tmp_path / "none") is None


def test_unit_runs_the_check_after_its_main_process() -> None:
    from noded.daemon.config import Config

    props = service_properties(
        sid="s",
        node_id="n",
        node_class="c",
        argv=["/bin/python"],
        config=Config(),
        iox2_root=Path("/run/noded/iox2"),
        memory_max=2**20,
        oom_check=ARGV,
    )
    # privileged: the grep runs without the node's sandbox, which would cost as much as the stop
    assert ("ExecStopPostEx", "a(sasas)", [(ARGV[0], ARGV, ["ignore-failure", "privileged"])]) in props
