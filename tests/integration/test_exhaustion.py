"""Resource exhaustion: nodes that cannot start (a memory limit too small to even import
the worker, TasksMax reached, a missing module or class, a missing executable) fail with
an error that names the node and the cause, while another session keeps streaming and
the daemon keeps answering.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from noded.contract.client import Client, RemoteError
from noded.contract.protocol import Failure

from .conftest import chain, ended, systemctl, wait_for
from .load_support import DEADLINE, Streamer, all_leftovers, cpu_hogs, env_int, session_leftovers
from .test_dataplane import io_chain


@pytest.fixture
def bystander() -> Iterator[Streamer]:
    """A session streaming through 3 nodes the whole time; checked to be unharmed after."""
    with Client(timeout=60) as c:
        sid = c.request("create", text=io_chain(3), filename="bystander.toml", watch=True)["sid"]
        wait_for(c, sid, lambda i: i.state == "ready", DEADLINE)
    streamer = Streamer(sid)
    streamer.wait_flowing()
    yield streamer
    before = streamer.received
    streamer.wait_flowing(before + 20)  # still flowing after everything the test did
    with Client(timeout=60) as c:
        assert c.request("show", sid=sid)["state"] == "ready"
        streamer.detach()
        c.request("stop", sid=sid, wait=True)


def fails(toml: str) -> Failure:
    """Create a session, wait until it ends; it must have failed and left nothing.
    Returns its failure."""
    with Client(timeout=60) as c:
        sid = c.request("create", text=toml, filename="exhaust.toml", watch=True)["sid"]
        done = wait_for(c, sid, ended, DEADLINE)
        assert done.state == "failed", done
    with Client(timeout=5) as c:
        assert c.request("status")["version"]  # the daemon answers at once
    assert session_leftovers(sid) == []
    assert done.failure is not None
    return done.failure


def test_memory_limit_too_small_to_import_names_node_and_memory(bystander: Streamer) -> None:
    failure = fails(chain(2) + '\n[[nodes]]\nid = "tiny"\nclass = "passthrough"\nmemory_max = "2M"\n')
    assert failure.node == "tiny"
    assert "out of memory" in failure.reason and "2 MiB" in failure.reason, failure.reason


def test_tasks_max_reached_names_node_and_limit(bystander: Streamer) -> None:
    failure = fails(
        chain(1) + '\n[[nodes]]\nid = "threads"\nclass = "chaos"\nparams = { threads = 8 }\ntasks_max = 3\n'
    )
    assert failure.node == "threads"
    assert "can't start new thread" in failure.reason and "tasks_max of 3" in failure.reason, failure.reason


@pytest.mark.parametrize(
    "cls,expect",
    [
        ("nosuch_pkg.nodes:Model", "module 'nosuch_pkg.nodes' not found"),
        ("noded.nodes.testing.basic:Nope", "has no top-level class 'Nope'"),
    ],
)
def test_missing_module_or_class_is_refused_naming_node(bystander: Streamer, cls: str, expect: str) -> None:
    with Client(timeout=60) as c:
        with pytest.raises(RemoteError) as exc:
            c.request(
                "create", text=chain(1) + f'\n[[nodes]]\nid = "model"\nclass = "{cls}"\n', filename="missing.toml"
            )
    assert exc.value.code == "invalid_pipeline"
    assert "node 'model'" in str(exc.value) and expect in str(exc.value), str(exc.value)


def test_many_failing_sessions_at_once_do_not_disturb_the_daemon(bystander: Streamer) -> None:
    failures: list[Failure | BaseException] = []

    def one() -> None:
        try:
            failures.append(fails(chain(3) + '\n[[nodes]]\nid = "tiny"\nclass = "passthrough"\nmemory_max = "2M"\n'))
        except BaseException as exc:
            failures.append(exc)

    # On a loaded machine (CPU hogs, one per core plus one): the OOM attribution must not
    # depend on whether the daemon's loop reads the kernel's event before the cgroup goes.
    with cpu_hogs():
        threads = [threading.Thread(target=one, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(2 * DEADLINE)
    assert not any(t.is_alive() for t in threads), "a failing session hung"
    assert all(getattr(f, "node", None) == "tiny" and "out of memory" in f.reason for f in failures), failures


def test_oom_kills_under_cpu_load_are_all_attributed() -> None:
    """Sessions one after another, each with a node over its memory_max at start-up, while
    CPU hogs keep the daemon's loop late: every failure says out of memory, never just
    SIGKILL (the kernel's oom_kill counter decides, read before the cgroup is removed)."""
    toml = chain(1) + '\n[[nodes]]\nid = "tiny"\nclass = "passthrough"\nmemory_max = "2M"\n'
    reasons = []
    with cpu_hogs():
        for _ in range(env_int("NODED_TEST_OOM_ROUNDS", 12)):
            f = fails(toml)
            reasons.append((f.node, f.reason))
    wrong = [r for r in reasons if r[0] != "tiny" or "out of memory" not in r[1]]
    assert not wrong, wrong


# -- a machine short of memory ------------------------------------------------------------

SHORT_BY = 256 << 20  # what is left for new nodes


@pytest.fixture
def short_of_memory(bystander: Streamer) -> Iterator[int]:
    """The machine as noded sees it when memory runs short: noded.slice, where every
    session runs, may use only what its sessions use now (the bystander's) plus
    ``SHORT_BY``. No node has a memory_max of its own: an OOM kill comes from above the
    node, as the kernel's global OOM killer's would. Undone after the test."""
    used = int(systemctl("show", "-P", "MemoryCurrent", "noded.slice", check=True).stdout.strip())
    limit = used + SHORT_BY
    systemctl("set-property", "--runtime", "noded.slice", f"MemoryMax={limit}", check=True)
    try:
        yield limit
    finally:
        systemctl("set-property", "--runtime", "noded.slice", "MemoryMax=infinity", check=True)
        systemctl("revert", "noded.slice", check=True)


def test_a_new_node_on_a_machine_out_of_memory_fails_naming_memory_and_others_run_on(
    bystander: Streamer, short_of_memory: int
) -> None:
    """A node that needs more memory than is left, with no limit of its own, fails with an
    error that says out of memory (not just SIGKILL), under CPU load; the bystander
    session streams on (its fixture checks), and a new small session still starts."""
    greedy = '[[nodes]]\nid = "greedy"\nclass = "chaos"\nparams = { crash = "oom", at = "init" }\n'
    with cpu_hogs():
        failure = fails(greedy)
    assert failure.node == "greedy" and "out of memory" in failure.reason, failure
    with Client(timeout=60) as c:
        sid = c.request("create", text=io_chain(1), filename="small.toml", watch=True)["sid"]
        try:
            assert wait_for(c, sid, lambda i: i.state != "creating", DEADLINE).state == "ready"
        finally:
            c.request("stop", sid=sid, wait=True)
    assert session_leftovers(sid) == []


# -- a missing executable ----------------------------------------------------------------

DROPIN = Path("/run/systemd/system/noded.service.d/50-test-missing-python.conf")


@pytest.fixture
def daemon_on_a_removable_python() -> Iterator[Path]:
    """noded run by a Python reached through a symlink of its own (a venv look-alike in
    /var/lib/noded-tests that shares the real venv's packages): removing the link while noded runs is
    the worker's executable going missing (a broken upgrade, say)."""
    venv = Path(os.environ.get("NODED_VENV", "/opt/noded/venv"))
    # Not under /tmp or /var/tmp: noded.service and node units have PrivateTmp=yes.
    home = Path(f"/var/lib/noded-tests/{os.environ.get('NODED_SANDBOX', 'sandbox')}-python")
    shutil.rmtree(home, ignore_errors=True)
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python").symlink_to((venv / "bin" / "python").resolve())
    shutil.copy(venv / "pyvenv.cfg", home / "pyvenv.cfg")
    (home / "lib").symlink_to(venv / "lib")
    DROPIN.parent.mkdir(parents=True, exist_ok=True)
    DROPIN.write_text(
        f'[Service]\nExecStart=\nExecStart={home}/bin/python -c "from noded.daemon.main import main; main()"\n'
    )
    try:
        systemctl("daemon-reload", check=True)
        systemctl("restart", "noded.service", check=True)
        yield home / "bin" / "python"
    finally:
        DROPIN.unlink(missing_ok=True)
        systemctl("daemon-reload", check=True)
        systemctl("restart", "noded.service", check=True)
        shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(OSError):
            home.parent.rmdir()


def test_missing_executable_names_node_and_cause(daemon_on_a_removable_python: Path) -> None:
    pid = systemctl("show", "-P", "MainPID", "noded.service").stdout.strip()
    exe = subprocess.run(["readlink", f"/proc/{pid}/exe"], capture_output=True, text=True).stdout
    assert exe.strip(), "noded is not running"
    daemon_on_a_removable_python.unlink()
    failure = fails(chain(1))
    assert failure.node == "n0"
    assert "203/EXEC" in failure.reason and "executable is missing" in failure.reason, failure.reason
    assert all_leftovers() == []
