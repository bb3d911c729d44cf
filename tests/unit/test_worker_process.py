"""``python -m noded.worker`` as a real subprocess, with a fake systemd notify socket.

Each test checks the exact sd_notify messages and the exit status. Every worker started
here is stopped by the ``spawn`` fixture (by its Popen, so by PID) if a test leaves it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import noded
from noded.contract.exitcodes import ExitCode
from noded.contract.spec import WorkerSpec, encode_spec
from noded.testing import NotifyListener

REPO = Path(noded.__file__).resolve().parent.parent
EXTEND = "30000000"
INITIALIZING = {"STATUS": "initializing"}
READY = {"READY": "1", "STATUS": "ready"}
STOPPING = {"STOPPING": "1", "STATUS": "stopping"}


def progress(text: str) -> dict[str, str]:
    return {"STATUS": f"initializing {text}", "EXTEND_TIMEOUT_USEC": EXTEND}


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    notify: NotifyListener

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 10.0) -> None:
        self.notify.wait_for(lambda m: m.get("READY") == "1", timeout)

    def exit_status(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def messages(self) -> list[dict[str, str]]:
        """All notify messages, once the worker has exited."""
        assert self.proc.poll() is not None
        return self.notify.drain()


Spawn = Callable[..., Worker]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    started: list[Worker] = []
    sockets: list[NotifyListener] = []
    pythonpath = os.pathsep.join(p for p in (str(REPO), str(tmp_path), os.environ.get("PYTHONPATH")) if p)

    def start(
        cls: str, params: dict[str, Any] | None = None, *, node: str = "n1", spec: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Worker:  # fmt: skip
        listener = NotifyListener(str(tmp_path / f"{node}.sock"))
        sockets.append(listener)
        env = {**os.environ, "NOTIFY_SOCKET": listener.path, "PYTHONPATH": pythonpath, **(env or {})}
        if spec is None:
            spec = encode_spec(WorkerSpec(session="s1", node=node, cls=cls, params=params or {}))
        stderr_path = tmp_path / f"{node}.stderr"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "noded.worker", "--spec", spec],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path,
            )  # fmt: skip
        worker = Worker(proc, stderr_path, listener)
        started.append(worker)
        return worker

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()
    for listener in sockets:
        listener.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_lifecycle_messages_in_order(spawn: Spawn, signum: int) -> None:
    w = spawn("sleep", {"seconds": 0.3, "steps": 3})
    w.wait_ready()
    w.proc.send_signal(signum)
    assert w.exit_status() == 0
    assert w.messages() == [
        INITIALIZING,
        progress("33.3%: step 1/3"),
        progress("66.7%: step 2/3"),
        progress("100.0%: step 3/3"),
        READY,
        STOPPING,
    ]
    assert f"<6>INFO noded.worker: {signal.Signals(signum).name}: stopping node n1" in w.stderr


def test_sigterm_during_a_long_setup_exits_promptly_without_ready(spawn: Spawn) -> None:
    w = spawn("sleep", {"seconds": 60, "steps": 600})
    w.notify.wait_for(lambda m: "EXTEND_TIMEOUT_USEC" in m, 10)
    t0 = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    assert w.exit_status() == 0
    assert time.monotonic() - t0 < 1.0
    messages = w.messages()
    assert READY not in messages
    assert messages[0] == INITIALIZING and messages[-1] == STOPPING


def test_failing_setup_exits_1_with_error_status_and_traceback(spawn: Spawn) -> None:
    w = spawn("fail_setup", {"message": "no weights\nhere"})
    assert w.exit_status() == ExitCode.FAILED
    assert w.messages() == [INITIALIZING, {"STATUS": "error: RuntimeError: no weights here"}]
    err = w.stderr
    assert "<3>ERROR noded.worker: node n1 failed: RuntimeError: no weights" in err
    assert "<3>Traceback (most recent call last):" in err
    assert "<3>RuntimeError: no weights" in err


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"how": "exit"}, 3),
        ({"how": "exit", "code": 7}, 7),
        ({"how": "sigkill"}, -signal.SIGKILL),
        ({"how": "sigsegv"}, -signal.SIGSEGV),
    ],
)
@pytest.mark.parametrize("when", ["setup", "ready"])
def test_crash_node(spawn: Spawn, params: dict[str, Any], status: int, when: str) -> None:
    w = spawn("crash", {**params, "when": when, "after": 0.05})
    assert w.exit_status() == status
    ready_sent = READY in w.messages()
    assert ready_sent == (when == "ready")
    if params["how"] == "sigsegv":
        assert "Fatal Python error: Segmentation fault" in w.stderr  # faulthandler


@pytest.mark.parametrize("when", ["setup", "ready"])
def test_exception_in_node_thread_or_setup_exits_1(spawn: Spawn, when: str) -> None:
    w = spawn("crash", {"how": "exception", "when": when})
    assert w.exit_status() == 1
    messages = w.messages()
    assert messages[-1] == {"STATUS": f"error: RuntimeError: crash on purpose ({when})"}
    assert (READY in messages) == (when == "ready")
    assert "<3>RuntimeError: crash on purpose" in w.stderr


@pytest.mark.parametrize(
    ("cls", "params", "spec", "status"),
    [
        (
            "x",
            None,
            '{"session": "s1", "node": "n1"}',
            "error: SpecError: invalid --spec: Object missing required field `cls`",
        ),
        (
            "no_such_mod:Node",
            None,
            None,
            "error: NodeLoadError: no module named 'no_such_mod' (for node class 'no_such_mod:Node')",
        ),
        ("sleep", {"secs": 1}, None, "error: ParamError: SleepSetup (n1): unknown params ['secs']"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    spawn: Spawn, cls: str, params: dict[str, Any] | None, spec: str | None, status: str
) -> None:
    w = spawn(cls, params, spec=spec)
    assert w.exit_status() == ExitCode.CONFIG
    assert w.messages() == [INITIALIZING, {"STATUS": status}]
    assert "Traceback" not in w.stderr
    assert "(hint: " in w.stderr


USER_NODES = '''
import time
from pathlib import Path
from noded import Node

class BadTeardown(Node):
    def teardown(self):
        raise OSError("device busy")

class Stubborn(Node):
    """Swallows the stop request in setup (it should not), then finishes setup."""
    def setup(self, ctx):
        try:
            ctx.progress(0.0, "sleeping")
            time.sleep(60)
        except BaseException:
            pass
        ctx.progress(1.0, "done anyway")

    def teardown(self):
        Path(self.params["marker"]).write_text("torn down")
'''


def test_teardown_error_exits_4(spawn: Spawn, tmp_path: Path) -> None:
    (tmp_path / "user_nodes.py").write_text(USER_NODES)
    w = spawn("user_nodes:BadTeardown")
    w.wait_ready()
    w.proc.send_signal(signal.SIGTERM)
    assert w.exit_status() == ExitCode.TEARDOWN_FAILED
    assert w.messages()[-2:] == [STOPPING, {"STATUS": "error: OSError: device busy"}]
    assert "<3>OSError: device busy" in w.stderr


def test_a_swallowed_stop_still_stops_after_setup_with_teardown(spawn: Spawn, tmp_path: Path) -> None:
    (tmp_path / "user_nodes.py").write_text(USER_NODES)
    marker = tmp_path / "marker"
    w = spawn("user_nodes:Stubborn", {"marker": str(marker)})
    w.notify.wait_for(lambda m: m == progress("0.0%: sleeping"), 10)
    w.proc.send_signal(signal.SIGTERM)
    assert w.exit_status() == 0
    assert READY not in w.messages()
    assert w.messages()[-1] == STOPPING
    assert marker.read_text() == "torn down"


def test_worker_imports_no_heavy_modules() -> None:
    code = (
        "import sys, noded.worker.main, noded.nodes.testing.basic;"
        "print(sorted(m for m in ('numpy', 'iceoryx2', 'rich', 'click', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


WATCHDOG = {"WATCHDOG_USEC": "400000"}  # 0.4 s: fed every 0.1 s


def watchdog_pings(w: Worker, seconds: float) -> int:
    """WATCHDOG=1 messages received in the next ``seconds``."""
    before = len(w.notify.messages)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        w.notify.receive(left)
    return sum(m.get("WATCHDOG") == "1" for m in w.notify.messages[before:])


def test_a_ready_worker_feeds_its_watchdog_while_it_waits(spawn: Spawn) -> None:
    w = spawn("sleep", {"seconds": 0.0, "steps": 1}, env=WATCHDOG)
    w.wait_ready()
    assert watchdog_pings(w, 1.5) >= 4  # every 0.1 s; a busy machine may delay some
    w.proc.send_signal(signal.SIGTERM)
    assert w.exit_status() == 0


def test_without_a_watchdog_a_worker_sends_no_pings(spawn: Spawn) -> None:
    w = spawn("sleep", {"seconds": 0.0, "steps": 1})
    w.wait_ready()
    assert watchdog_pings(w, 0.5) == 0


def test_a_setup_that_hangs_after_a_progress_report_stops_feeding_the_watchdog(spawn: Spawn) -> None:
    w = spawn("hang", {"when": "setup"}, env=WATCHDOG)
    w.notify.wait_for(lambda m: m.get("STATUS", "").startswith("initializing 50.0%"), 10)
    assert any(m.get("WATCHDOG") == "1" for m in w.notify.messages)  # fed by the report
    # which extends the start timeout (and so, in systemd, the watchdog) by no more than it
    assert w.notify.messages[-1]["EXTEND_TIMEOUT_USEC"] == "400000"
    assert watchdog_pings(w, 1.0) == 0  # then silent: systemd would end it
    assert w.proc.poll() is None
