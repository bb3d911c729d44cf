"""noded's exceptions: one root with a message, an optional hint, a wire code and an exit code.

Every failure a user can cause or meet is a ``NodedError``: the CLI prints its message
(and hint) on one line each instead of a traceback, and the control protocol sends
``code`` so clients can tell failures apart without parsing messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from noded.contract.exitcodes import ExitCode


class NodedError(Exception):
    """The root of noded's errors; ``code`` is a short stable string used on the wire."""

    code: ClassVar[str] = "error"
    #: What a worker exits with when this error stops it.
    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline file; ``node`` and ``field`` are None when n/a.

    ``node`` is the node's id as written, or ``#N`` (1-based, file order) for a node
    without a usable id; ``field`` is a key path such as ``inputs`` or ``limits.memory_max``.
    """

    file: str
    node: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        parts = [self.file]
        if self.node is not None:
            parts.append(f"node {self.node!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.reason)
        return ": ".join(parts)


class PipelineError(NodedError):
    """A pipeline file is invalid; the message lists every problem found, one per line."""

    code = "invalid_pipeline"

    def __init__(self, problems: Iterable[Problem], *, hint: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)) or "invalid pipeline", hint=hint)


class LimitError(NodedError):
    """A request would exceed a configured limit (e.g. processes per session)."""

    code = "limit_exceeded"


class SessionNotFound(NodedError):
    code = "session_not_found"


class NotPermitted(NodedError):
    """The client may not do this: another user's session, or a key only root may use."""

    code = "not_permitted"


class DaemonUnavailable(NodedError):
    """The client cannot reach the daemon (no socket, refused, permission denied)."""

    code = "daemon_unavailable"


class SystemdError(NodedError):
    """The system manager refused or failed a request."""

    code = "systemd_error"


class WorkerError(NodedError):
    """An error a worker reports on its own; it exits with ``exit_code``."""

    def __init__(self, message: str, *, hint: str = "", show_traceback: bool = False) -> None:
        super().__init__(message, hint=hint)
        # True when the cause's traceback says more than the message (an import that crashed).
        self.show_traceback = show_traceback

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class SpecError(WorkerError):
    """The --spec argument is not a valid WorkerSpec."""

    exit_code = ExitCode.CONFIG


class NodeLoadError(WorkerError):
    """The node class named by the spec cannot be imported or is not a Node."""

    exit_code = ExitCode.CONFIG


class ParamError(WorkerError, ValueError):
    """A node's params are invalid; nodes raise it from __init__ or setup."""

    exit_code = ExitCode.CONFIG


class SetupInterrupted(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT while the node is loading or in setup.

    A BaseException, so that a node's ``except Exception`` does not swallow the stop.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stopped(BaseException):
    """Raised by ``ctx.send`` once the worker is stopping (SIGTERM/SIGINT). A
    BaseException, so that ``except Exception`` does not swallow it: let it end ``run``,
    ``process`` or a sending thread (the worker treats it as a clean end)."""


class AttachError(WorkerError):
    """A client cannot take a place in a session's data plane: no such external port, or
    another client holds it (one feeder per input, ``[dataplane] max_clients`` readers)."""

    code = "attach_failed"


class InputEnded(AttachError):
    """The external input has had its END_OF_STREAM: nothing more may be fed to it."""

    code = "input_ended"
