"""Why a node left: turn what systemd reports about a dead unit into words. Pure."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass

from noded.contract.exitcodes import ExitCode
from noded.contract.status import Phase, parse_status

# ExecMainCode is a siginfo si_code.
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3


@dataclass(frozen=True)
class ExitFacts:
    result: str = ""  # the unit's Result: success, exit-code, signal, core-dump, oom-kill, timeout, ...
    exec_main_code: int = 0
    exec_main_status: int = 0
    status_text: str = ""
    memory_max: int | None = None
    oom_killed: bool = False
    tasks_max: int | None = None
    watchdog: float | None = None  # the unit's WatchdogSec=, seconds
    hung_in: str = "process()"  # where a node the watchdog ended was: "setup()" before READY=1
    # /dev/shm when a node died of SIGBUS: (bytes free, bytes in all, the node's largest message)
    shm: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class ExitReason:
    reason: str
    exit_status: int | None
    signal: str | None


# Exit statuses of systemd's own start-up steps for the service (systemd.exec(5), "Process
# exit codes"): the node's code never ran.
SYSTEMD_EXIT = {
    200: ("CHDIR", "could not change to the working directory"),
    202: ("FDS", "could not set up its file descriptors"),
    203: ("EXEC", "the executable is missing or cannot be executed"),
    204: ("MEMORY", "out of memory while setting up the process"),
    205: ("LIMITS", "could not apply its resource limits"),
    214: ("SETSCHEDULER", "could not set its scheduling policy"),
    217: ("USER", "could not set up its user"),
    218: ("CAPABILITIES", "could not apply its capabilities"),
    226: ("NAMESPACE", "could not set up its file-system sandbox (a ReadWritePaths= or similar path?)"),
    228: ("SECCOMP", "could not apply its system call filter"),
    231: ("CGROUP", "could not join its control group (a tasks_max or memory limit already reached?)"),
}
# What a node process says when it cannot make a thread or process (EAGAIN from the pids
# controller once TasksMax= is reached).
_NO_TASKS = ("can't start new thread", "Resource temporarily unavailable", "BlockingIOError")


def _signame(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _shm_words(free: int, size: int, need: int) -> str:
    """A SIGBUS in a worker is, nearly always, a shared-memory page tmpfs could not back."""
    state = "is full" if free < need else "was short"
    return (
        f": /dev/shm {state} ({free / 2**20:.1f} of {size / 2**20:.1f} MiB free; its messages take up to "
        f"{need / 2**20:.1f} MiB), so a message's shared memory could not be backed"
    )


def is_consequence(f: ExitFacts) -> bool:
    """True if the node exited because a data-plane peer died (the worker's PEER_GONE):
    the session's failure should name that peer, whose own exit may be seen later."""
    return f.exec_main_code == CLD_EXITED and f.exec_main_status == ExitCode.PEER_GONE


def describe_exit(f: ExitFacts) -> ExitReason:
    exit_status: int | None = None
    sig: str | None = None
    if f.exec_main_code == CLD_EXITED:
        exit_status = f.exec_main_status
        what = f"exited with status {exit_status}"
        if exit_status == 0:
            what += " although it should have kept running"
        elif exit_status in SYSTEMD_EXIT and f.result == "exit-code":
            name, meaning = SYSTEMD_EXIT[exit_status]
            what = f"could not be started by systemd: {exit_status}/{name}, {meaning}"
    elif f.exec_main_code in (CLD_KILLED, CLD_DUMPED):
        sig = _signame(f.exec_main_status)
        what = f"was killed by {sig}"
        if f.exec_main_code == CLD_DUMPED:
            what += " (core dumped)"
        if sig == "SIGBUS" and f.shm is not None:
            what += _shm_words(*f.shm)
    else:
        what = "stopped"

    if f.result == "oom-kill" or f.oom_killed:
        limit = (
            f" (memory_max {_mib(f.memory_max)})"
            if f.memory_max
            else " (it has no memory_max: the machine, or a slice above the node, was short of memory)"
        )
        what = f"ran out of memory{limit}: the kernel's OOM killer ended it; it {what}"
    elif f.result == "watchdog":
        limit = f" for {f.watchdog:g} s" if f.watchdog else ""
        what = f"hung in {f.hung_in}{limit}: systemd's watchdog ended it ({what})"
    elif f.result == "timeout":
        what = f"timed out ({what})"
    elif f.result == "start-limit-hit" or f.result == "resources":
        what = f"could not be started by systemd (Result={f.result})"

    status = parse_status(f.status_text)
    if status is not None and status.phase is Phase.ERROR and status.text:
        what += f": {status.text}"
        if f.tasks_max is not None and any(s in status.text for s in _NO_TASKS):
            what += f" (its tasks_max of {f.tasks_max} threads and processes is reached)"
    if f.result:
        what += f" [Result={f.result}]"
    return ExitReason(what, exit_status, sig)
