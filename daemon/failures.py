"""Why a node left: turn what systemd reports about a dead unit into words. Pure."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass

from nodeworker.status import Phase, parse_status

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


@dataclass(frozen=True)
class ExitReason:
    reason: str
    exit_status: int | None
    signal: str | None


def _signame(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def describe_exit(f: ExitFacts) -> ExitReason:
    exit_status: int | None = None
    sig: str | None = None
    if f.exec_main_code == CLD_EXITED:
        exit_status = f.exec_main_status
        what = f"exited with status {exit_status}"
        if exit_status == 0:
            what += " although it should have kept running"
    elif f.exec_main_code in (CLD_KILLED, CLD_DUMPED):
        sig = _signame(f.exec_main_status)
        what = f"was killed by {sig}"
        if f.exec_main_code == CLD_DUMPED:
            what += " (core dumped)"
    else:
        what = "stopped"

    if f.result == "oom-kill" or f.oom_killed:
        limit = f" (memory_max {_mib(f.memory_max)})" if f.memory_max else ""
        what = f"ran out of memory{limit}: the kernel's OOM killer ended it; it {what}"
    elif f.result == "timeout":
        what = f"timed out ({what})"
    elif f.result == "start-limit-hit" or f.result == "resources":
        what = f"could not be started by systemd (Result={f.result})"

    status = parse_status(f.status_text)
    if status is not None and status.phase is Phase.ERROR and status.text:
        what += f": {status.text}"
    if f.result:
        what += f" [Result={f.result}]"
    return ExitReason(what, exit_status, sig)
