"""Drive noded from Python: create sessions, feed them, read their outputs, stop them.

What ``nodectl`` does from the shell, for programs::

    import numpy as np
    import noded

    PIPELINE = '''
    inputs = ["x"]
    outputs = ["echo.out"]
    [[nodes]]
    id = "echo"
    class = "passthrough"
    inputs = ["input.x"]
    '''

    with noded.connect() as nd:                                  # the daemon's socket
        with nd.create(PIPELINE, on_progress=print) as session:   # waits until ready
            session.feed("x", np.arange(4, dtype=np.float32), end=True)
            for msg in session.outputs(timeout=10):               # until every output ended
                print(msg.source, msg.array)
    # leaving the inner block stopped the session: its units are gone

``create`` takes a pipeline as TOML text, a file (a ``pathlib.Path``, or a one-line
string ending in ``.toml``) or a dict (the TOML document as Python values). It waits
until every node is ready (``wait=False``: it does not), calling ``on_progress`` with
each ``SessionInfo`` on the way, and raises ``SessionFailed`` if the session fails
first. ``connect().session(sid)`` is a handle on a session created elsewhere (it is not
stopped on leaving its block unless ``stop_on_exit=True``).

A ``Session`` follows its events on its own connection: ``events()`` yields them until
the session has ended, ``info`` is the latest. Feeding and reading go through the
session's data plane (``noded.dataplane.session``), which needs root: the nodes run as
the session's sandboxed user. Once attached, a background thread follows the events, so
that a send blocked on a failed session raises ``Stopped`` instead of waiting forever.
Send from one thread and read from another if a pipeline can hold less than you send.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noded.contract.client import Client
from noded.contract.paths import configured_socket
from noded.contract.protocol import SessionInfo
from noded.contract.spec import DataPlane
from noded.contract.states import SESSION_TERMINAL, SessionState
from noded.errors import NodedError

if TYPE_CHECKING:  # numpy and iceoryx2 come with them: only once a session is attached
    from noded.contract.wire import Kind
    from noded.dataplane.message import Message
    from noded.dataplane.session import SessionIO

__all__ = ["Noded", "Session", "SessionFailed", "connect", "pipeline_text"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
Progress = Callable[[SessionInfo], object]
_ENDING = SESSION_TERMINAL | {SessionState.STOPPING}
PipelineSource = str | os.PathLike[str] | Mapping[str, Any]


class SessionFailed(NodedError):
    """The session failed (or was stopped) before it was ready; ``info`` says why."""

    code = "session_failed"

    def __init__(self, info: SessionInfo) -> None:
        why = f": node {info.failure.node} {info.failure.reason}" if info.failure is not None else ""
        super().__init__(
            f"session {info.sid} {info.state}{why}", hint=f"see 'nodectl session show {info.sid}' and its logs"
        )
        self.info = info


def connect(socket: str | os.PathLike[str] | None = None, *, timeout: float | None = 30.0) -> Noded:
    """A connection to noded: ``socket`` is its control socket (default: the one
    /etc/noded/noded.toml or $NODED_SOCKET names); ``timeout`` bounds each request."""
    return Noded(socket, timeout=timeout)


class Noded:
    """A connection to the daemon (see the module's documentation)."""

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, timeout: float | None = 30.0) -> None:
        self.socket = Path(socket) if socket is not None else configured_socket()
        self.timeout = timeout
        self.client = Client(self.socket, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """The daemon's version, protocol, live sessions, limits and configuration."""
        return self.client.status()

    def sessions(self) -> list[SessionInfo]:
        """Every session: live, and recently ended."""
        return self.client.sessions()

    def show(self, sid: str) -> SessionInfo:
        """Session ``sid`` now, with its figures (``SessionInfo.stats``)."""
        return self.client.show(sid)

    def stop(self, sid: str, wait: bool = True) -> SessionInfo:
        """Stop session ``sid``; with ``wait``, return once every unit is gone."""
        with Client(self.socket, timeout=None if wait else self.timeout) as client:
            info = client.stop(sid, wait=wait)
            if wait and info.state not in SESSION_TERMINAL:
                info = client.show(sid)
        return info

    def create(
        self,
        pipeline: PipelineSource,
        *,
        filename: str | None = None,
        wait: bool = True,
        on_progress: Progress | None = None,
        timeout: float | None = None,
        directory: str | None = None,
    ) -> Session:
        """Start a session of ``pipeline`` (TOML text, a file, or a dict); with ``wait``,
        return once every node is ready (``SessionFailed`` if it fails first; a
        ``DaemonTimeout`` after ``timeout`` seconds). ``filename`` names it in messages;
        relative code paths start at ``directory`` (default: a file's folder, else the
        current directory)."""
        text, name = pipeline_text(pipeline, filename)
        client = Client(self.socket, timeout=self.timeout)
        try:
            info = client.create(text, name, watch=True, directory=directory or pipeline_directory(pipeline))
        except BaseException:
            client.close()
            raise
        session = Session(self, client, info, stop_on_exit=True)
        if wait:
            try:
                session.wait_ready(on_progress, timeout=timeout)
            except BaseException:
                try:
                    session.stop()
                except NodedError:
                    pass  # the error that brought us here says more
                finally:
                    session.close()
                raise
        elif on_progress is not None:
            on_progress(info)
        return session

    def session(self, sid: str, *, stop_on_exit: bool = False) -> Session:
        """A handle on session ``sid`` (created by anyone), following its events."""
        client = Client(self.socket, timeout=self.timeout)
        try:
            (info,) = client.watch(sid)
        except BaseException:
            client.close()
            raise
        return Session(self, client, info, stop_on_exit=stop_on_exit)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Noded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """One session: its state (``info``, ``events()``), its data plane (``feed``,
    ``outputs``) and ``stop``. As a context manager it stops the session on leaving
    when it created it (or ``stop_on_exit``), and closes what it opened."""

    def __init__(self, noded: Noded, client: Client, info: SessionInfo, *, stop_on_exit: bool) -> None:
        self.noded = noded
        self.sid = info.sid
        self.info = info
        self.stop_on_exit = stop_on_exit
        self._client = client  # watching this session: its events come here
        self._plane: DataPlane | None = None
        self._io: SessionIO | None = None
        self._guard: _Guard | None = None
        self._lock = threading.Lock()
        self._closed = False
        # Told what a blocked feed waits for (a consumer not connected, a full edge and
        # who holds it) once it has waited STALL_REPORT s; None: a warning in the log.
        self.on_stall: Callable[[str], None] | None = None

    @property
    def state(self) -> SessionState:
        return self.info.state

    # -- state ------------------------------------------------------------------------

    def events(self) -> Iterator[SessionInfo]:
        """The session's events (each a ``SessionInfo``) as they come, until it has ended."""
        if self.info.state in SESSION_TERMINAL:
            return
        if self._guard is not None:  # once attached, the guard reads the connection
            while (info := self._guard.events.get()) is not None:
                yield info
            return
        self._client.settimeout(None)
        for info in self._client.events():
            if info.sid != self.sid:
                continue
            self.info = info
            yield info
            if info.state in SESSION_TERMINAL:
                return

    def wait(
        self, *, until_ready: bool = True, on_progress: Progress | None = None, timeout: float | None = None
    ) -> SessionInfo:
        """Follow the events until the session is ready (``until_ready``) or has ended,
        calling ``on_progress`` with each; the last one. Does not raise if it failed."""
        done = SESSION_TERMINAL | ({SessionState.READY} if until_ready else set())
        if on_progress is not None:
            on_progress(self.info)
        if self.info.state in done:
            return self.info
        self._client.settimeout(timeout)  # a timeout leaves this connection unusable
        try:
            for info in self._client.events():
                if info.sid != self.sid:
                    continue
                self.info = info
                if on_progress is not None:
                    on_progress(info)
                if info.state in done:
                    break
        finally:
            if not self._closed:
                self._client.settimeout(None)
        return self.info

    def wait_ready(self, on_progress: Progress | None = None, *, timeout: float | None = None) -> SessionInfo:
        """``wait`` until ready; ``SessionFailed`` if the session fails or stops first."""
        info = self.wait(until_ready=True, on_progress=on_progress, timeout=timeout)
        if info.state is not SessionState.READY:
            raise SessionFailed(info)
        return info

    def show(self) -> SessionInfo:
        """The session now, with its figures."""
        return self.noded.show(self.sid)

    # -- data plane -------------------------------------------------------------------

    @property
    def dataplane(self) -> DataPlane:
        """The client's side of the session's data plane: its ports, as the daemon says."""
        if self._plane is None:
            with Client(self.noded.socket, timeout=self.noded.timeout) as client:
                self._plane = client.attach(self.sid)
        return self._plane

    @property
    def io(self) -> SessionIO:
        """The client's endpoint of the session's data plane, opened on first use (once
        the session is ready: the nodes create what it opens)."""
        if self._io is None:
            from noded.dataplane.session import SessionIO

            self._io = SessionIO(self.dataplane, on_stall=self.on_stall)
            self._guard = _Guard(self)
            self._guard.start()
        return self._io

    def attach(self) -> SessionIO:
        """Open the data plane now (``feed`` and ``outputs`` do it on first use)."""
        return self.io

    @property
    def inputs(self) -> list[str]:
        """The session's external inputs (``feed`` them)."""
        return [o.port for o in self.dataplane.outputs]

    @property
    def output_names(self) -> list[str]:
        """The session's external outputs ("node.port")."""
        return [i.source for i in self.dataplane.inputs]

    def feed(self, port: str, value: Any, *, kind: Kind | int | None = None, end: bool = False, **fields: Any) -> None:
        """Send ``value`` (an array, bytes or text) on external input ``port``; header
        fields (``sample_rate``, ``timestamp_ns`` ...) as keywords. ``end``: then tell
        its consumers that nothing more comes (END_OF_STREAM). Blocks while the pipeline
        is full; raises ``Stopped`` if the session fails meanwhile."""
        self.io.send(port, value, kind=kind, **fields)
        if end:
            self.io.end(port)

    def end(self, port: str) -> None:
        """END_OF_STREAM on external input ``port``."""
        self.io.end(port)

    def loan(self, port: str, shape: Any, dtype: Any, kind: Kind | int | None = None, **fields: Any) -> Any:
        """A writable array in shared memory to fill and ``feed`` without a copy."""
        return self.io.loan(port, shape, dtype, kind, **fields)

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message of an external output, or None after ``timeout`` seconds."""
        return self.io.receive(timeout)

    def outputs(self, timeout: float | None = None) -> Iterator[Message]:
        """Messages of the external outputs until each has sent END_OF_STREAM, or none
        came for ``timeout`` seconds. A message is a read-only view of shared memory:
        drop it (or copy what you keep) to give the producer its credit back.

        An interruption (a barge-in) comes as an "interrupted" event: a message whose
        ``flush`` is True, once on each output it reached (the same flush on several:
        ``noded.contract.flush.decode_flush(msg.data)`` names it by ``origin`` and
        ``id``). Stop playing or writing the reply in hand when it comes: what arrives on
        an output before its flush belongs to the interrupted reply."""
        return self.io.messages(timeout)

    def interrupt(self, port: str, reason: str = "client") -> None:
        """Raise a flush on external input ``port``: every node downstream drops what it
        holds of the current stream and passes it on, back to this client's outputs."""
        self.io.interrupt(port, reason)

    @property
    def all_ended(self) -> bool:
        """Every external output has sent END_OF_STREAM."""
        return self.io.all_ended

    # -- the end ----------------------------------------------------------------------

    def stop(self, wait: bool = True) -> SessionInfo:
        """Stop the session; with ``wait``, return once every unit is gone. Detaches
        first: the data plane ends with the session, and noded removes its files only
        once no client holds them (or after a grace of a few seconds)."""
        self.detach()
        self.info = self.noded.stop(self.sid, wait=wait)
        return self.info

    def detach(self) -> None:
        """Close this client's endpoint of the data plane (the session goes on)."""
        with self._lock:
            io, self._io = self._io, None
            if io is not None:
                io.close()

    def close(self) -> None:
        """Detach, and close the session's connection (the session goes on)."""
        self.detach()
        with self._lock:
            self._closed = True
        self._client.close()
        if self._guard is not None and self._guard is not threading.current_thread():
            self._guard.join(timeout=5.0)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            # Detach first: once the session is stopped the daemon removes its iceoryx2
            # files, and ports closed after that find them gone (iceoryx2 warns).
            self.detach()
            if self.stop_on_exit and self.info.state not in SESSION_TERMINAL:
                self.stop(wait=True)
        finally:
            self.close()

    def _stop_io(self) -> None:
        """From the guard: make blocked and later sends raise Stopped."""
        with self._lock:
            if self._io is not None:
                self._io.stop()


class _Guard(threading.Thread):
    """Follows an attached session's events; when it fails or ends, stops its data plane."""

    def __init__(self, session: Session) -> None:
        super().__init__(name=f"noded-session-{session.sid}", daemon=True)
        self.session = session
        self.events: queue.SimpleQueue[SessionInfo | None] = queue.SimpleQueue()

    def run(self) -> None:
        session = self.session
        try:
            if session.info.state in SESSION_TERMINAL:
                session._stop_io()
                return
            session._client.settimeout(None)
            for info in session._client.events():
                if info.sid != session.sid:
                    continue
                session.info = info
                self.events.put(info)
                # Stopping (by anyone) or failing: sends and receives raise Stopped once
                # what has arrived is read, so that the client detaches while the session
                # ends (noded waits a moment for that before it removes the files).
                if info.failure is not None or info.state in _ENDING:
                    session._stop_io()
                if info.state in SESSION_TERMINAL:
                    return
        except (NodedError, OSError, ValueError):  # the connection is gone (or closed here)
            session._stop_io()
        finally:
            self.events.put(None)


# -- pipelines ----------------------------------------------------------------------


def pipeline_text(pipeline: PipelineSource, filename: str | None = None) -> tuple[str, str]:
    """(TOML text, file name) of a pipeline given as TOML text, a file or a dict."""
    if isinstance(pipeline, Mapping):
        return to_toml(pipeline), filename or "pipeline.toml"
    if isinstance(pipeline, os.PathLike) or (
        isinstance(pipeline, str) and "\n" not in pipeline and pipeline.strip().endswith(".toml")
    ):
        path = Path(pipeline)
        try:
            return path.read_text(), filename or path.name
        except (OSError, UnicodeDecodeError) as exc:
            raise NodedError(
                f"cannot read {path}: {exc}", hint="the pipeline file must be readable UTF-8 TOML"
            ) from exc
    if isinstance(pipeline, str):
        return pipeline, filename or "pipeline.toml"
    raise TypeError(f"a pipeline is TOML text, a path or a dict, not {type(pipeline).__name__}")


def pipeline_directory(pipeline: PipelineSource) -> str:
    """What a pipeline's relative code paths start at: a file's folder, else the
    current directory."""
    if isinstance(pipeline, os.PathLike) or (
        isinstance(pipeline, str) and "\n" not in pipeline and pipeline.strip().endswith(".toml")
    ):
        return os.path.dirname(os.path.abspath(pipeline))
    return os.getcwd()


def to_toml(doc: Mapping[str, Any]) -> str:
    """A TOML document of ``doc`` (tables and arrays of tables written inline)."""
    return "".join(f"{_key(k)} = {_value(v, k)}\n" for k, v in doc.items())


def _key(key: object) -> str:
    return str(key) if _BARE_KEY.fullmatch(str(key)) else _string(str(key))


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")  # TOML forbids a raw DEL


def _value(value: Any, where: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v, k)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, where) for v in value) + "]"
    raise NodedError(
        f"the pipeline's {where!r} is {type(value).__name__}, which TOML cannot hold",
        hint="use strings, numbers, booleans, lists and dicts",
    )
