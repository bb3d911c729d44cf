"""nodeworker's exceptions and the worker's exit codes.

Every error the worker reports on its own is a ``NodeworkerError``: one line of message,
plus a ``hint`` saying what to do about it. Its ``exit_code`` is what the worker exits
with when such an error stops it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of ``python -m nodeworker`` (the daemon reads them as ExecMainStatus)."""

    OK = 0  # stopped by SIGTERM/SIGINT, teardown (if any) succeeded
    FAILED = 1  # the node raised: in __init__/setup, or in one of its threads
    CONFIG = 2  # bad --spec, class not loadable, invalid params: a restart cannot help
    TEARDOWN_FAILED = 4  # teardown() raised after a clean stop request
    PEER_GONE = 5  # a data-plane peer died (ConsumerGone): a consequence of another node's failure
    # 3 is left free: it is the default code of the test node `Crash`.


class NodeworkerError(Exception):
    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "", show_traceback: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # True when the cause's traceback says more than the message (an import that crashed).
        self.show_traceback = show_traceback

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class SpecError(NodeworkerError):
    """The --spec argument is not a valid WorkerSpec."""

    exit_code = ExitCode.CONFIG


class NodeLoadError(NodeworkerError):
    """The node class named by the spec cannot be imported or is not a Node."""

    exit_code = ExitCode.CONFIG


class ParamError(NodeworkerError, ValueError):
    """A node's params are invalid; nodes raise it from __init__ or setup."""

    exit_code = ExitCode.CONFIG


class SetupInterrupted(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT while the node is loading or in setup.

    A BaseException, so that a node's ``except Exception`` does not swallow the stop.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
