"""What every nodectl command shares: its context (socket, --json, --debug), the error
handler that turns a NodedError into one line, a hint and the documented exit status
(``noded.contract.exitcodes``), the consoles, and following a session's progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from noded.contract.exitcodes import CLI_EXIT_BY_ERROR_CODE, CliExit
from noded.errors import NodedError

if TYPE_CHECKING:
    from rich.console import Console

    from noded.api import Noded, Session
    from noded.contract.client import Client
    from noded.contract.protocol import SessionInfo

    out: Console
    err: Console

F = TypeVar("F", bound=Callable[..., Any])
_consoles: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``out`` and ``err``, the consoles, made on first use: rich is imported only by a
    command that prints (not by ``nodectl --help`` or a completion)."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _consoles:
        from rich.console import Console

        _consoles[name] = Console(stderr=name == "err", highlight=False)
    return _consoles[name]


class Ctx:
    def __init__(
        self, socket: str, as_json: bool, debug: bool, *, no_pager: bool = False, no_legend: bool = False
    ) -> None:
        self.socket = socket
        self.json = as_json
        self.debug = debug
        self.no_pager = no_pager
        self.no_legend = no_legend  # tables without headers, no hint lines

    def client(self, timeout: float | None = 30.0) -> Client:
        from noded.contract.client import Client

        return Client(self.socket, timeout=timeout)

    def connect(self, timeout: float | None = 30.0) -> Noded:
        """The daemon through the Python API (``noded.api``), as a program would use it."""
        from noded.api import connect

        return connect(self.socket, timeout=timeout)

    def emit(self, data: Any) -> None:
        from noded.contract.protocol import to_builtins

        print(json.dumps(to_builtins(data), indent=None if not sys.stdout.isatty() else 2))

    def follow(self, session: Session, until_ready: bool) -> SessionInfo:
        """Show a session's progress (on stderr) until it is ready (if until_ready) or has
        ended; with --json and not until_ready, each event on stdout too."""
        from noded.ctl.render import NodeProgress

        with NodeProgress(__getattr__("err")) as progress:  # progress on stderr, results on stdout
            first = session.info

            def show(info: SessionInfo) -> None:
                if self.json and not until_ready and info is not first:
                    self.emit(info)
                progress.update(info)

            return session.wait(until_ready=until_ready, on_progress=show)


def fail(code: CliExit = CliExit.FAILED) -> NoReturn:
    sys.exit(int(code))


def reports_errors(func: F) -> F:
    """One clear line (and a hint) instead of a traceback, and the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx: Ctx = click.get_current_context().find_object(Ctx)  # type: ignore[assignment]
        try:
            return func(*args, **kwargs)
        except NodedError as exc:  # WorkerError too: the data plane of run/feed
            if ctx is not None and ctx.debug:
                raise
            code = getattr(exc, "code", "error")
            if ctx is not None and ctx.json:
                print(json.dumps({"error": {"code": code, "message": exc.message, "hint": exc.hint or None}}))
            else:
                console = __getattr__("err")
                console.print(f"nodectl: {exc.message}", markup=False, soft_wrap=True)
                if exc.hint:
                    console.print(f"hint: {exc.hint}", markup=False, style="dim", soft_wrap=True)
            fail(CLI_EXIT_BY_ERROR_CODE.get(code, CliExit.ERROR))
        except KeyboardInterrupt:
            fail(CliExit.INTERRUPTED)

    return wrapper  # type: ignore[return-value]
