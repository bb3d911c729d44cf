"""The daemon's exceptions: one root with a message, an optional hint and a wire code.

Every failure a user can cause or meet is a ``NodedError``: the CLI prints its message
(and hint) on one line each instead of a traceback, and the control protocol sends
``code`` so clients can tell failures apart without parsing messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


class NodedError(Exception):
    """The root of noded's errors; ``code`` is a short stable string used on the wire."""

    code: ClassVar[str] = "error"

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


class DaemonUnavailable(NodedError):
    """The client cannot reach the daemon (no socket, refused, permission denied)."""

    code = "daemon_unavailable"


class SystemdError(NodedError):
    """The system manager refused or failed a request."""

    code = "systemd_error"
