"""Exit statuses, the one table of each: a worker's (read by the daemon), nodectl's and noded's.

Each enum is the single source: the daemon, ``nodectl``'s error handler, the generated
``nodectl(1)`` and the docs read them from here.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of ``python -m noded.worker`` (the daemon reads them as ExecMainStatus)."""

    OK = 0  # stopped by SIGTERM/SIGINT, teardown (if any) succeeded
    FAILED = 1  # the node raised: in __init__/setup, or in one of its threads
    CONFIG = 2  # bad --spec, class not loadable, invalid params: a restart cannot help
    TEARDOWN_FAILED = 4  # teardown() raised after a clean stop request
    PEER_GONE = 5  # a data-plane peer died (ConsumerGone): a consequence of another node's failure
    # 3 is left free: it is the default code of the test node `Crash`.


class CliExit(IntEnum):
    """Exit statuses of ``nodectl``; ``__doc__`` of each member is its line in nodectl(1)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    UNAVAILABLE = 3
    INVALID = 4
    FAILED = 5
    NOT_FOUND = 6
    LIMIT = 7
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _CLI_MEANING[self]


_CLI_MEANING = {
    CliExit.OK: "success",
    CliExit.ERROR: "any other error",
    CliExit.USAGE: "bad usage: an unknown option, a bad argument or request",
    CliExit.UNAVAILABLE: "the daemon cannot be reached: not running, or no permission on its socket",
    CliExit.INVALID: "the pipeline file is invalid (every problem is listed)",
    CliExit.FAILED: "the session failed",
    CliExit.NOT_FOUND: "no such session (or, for logs, no journal entries of it)",
    CliExit.LIMIT: "refused by a limit, such as max_session_processes",
    CliExit.INTERRUPTED: "interrupted (Ctrl-C)",
}

# The error codes of the control protocol (``NodedError.code``) and the exit each one means.
CLI_EXIT_BY_ERROR_CODE = {
    "daemon_unavailable": CliExit.UNAVAILABLE,
    "invalid_pipeline": CliExit.INVALID,
    "session_not_found": CliExit.NOT_FOUND,
    "limit_exceeded": CliExit.LIMIT,
    "bad_request": CliExit.USAGE,
    "session_failed": CliExit.FAILED,  # noded.api.SessionFailed
    "attach_failed": CliExit.LIMIT,  # noded.errors.AttachError: the client's place is taken
    "input_ended": CliExit.USAGE,  # noded.errors.InputEnded: feeding an input after its end
}


class DaemonExit(IntEnum):
    """Exit statuses of ``noded`` itself."""

    OK = 0
    FAILURE = 1
    CONFIG = 78  # EX_CONFIG from sysexits.h: systemd does not restart on it (RestartPreventExitStatus)
