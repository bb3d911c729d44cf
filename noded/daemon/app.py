"""The daemon's lifecycle (start-up, main loop, shutdown) and its request handlers."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import sdnotify

from noded import __version__
from noded.contract.protocol import PROTOCOL_VERSION, Event, Request, SessionInfo, to_builtins
from noded.contract.states import SESSION_TERMINAL, SessionState
from noded.daemon.config import Config, describe
from noded.daemon.control import BadRequest, Connection, ControlServer
from noded.daemon.manager import SessionManager
from noded.daemon.metrics import Metrics, refresh_from
from noded.daemon.session import Session
from noded.daemon.stats import session_stats, with_live_states
from noded.daemon.systemd import Systemd
from noded.errors import NodedError
from noded.pipeline.checks import parse_pipeline

log = logging.getLogger("noded")

STATS_INTERVAL = 1.0  # s between stats events for a watcher that asked for them (default)


def _arg(req: Request, name: str, kind: type = str) -> Any:
    value = req.args.get(name)
    if not isinstance(value, kind):
        raise BadRequest(f"{req.op!r} needs argument {name!r} ({kind.__name__})")
    return value


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.systemd = Systemd(self._on_systemd_event)
        self.manager = SessionManager(self.systemd, config)
        self.server = ControlServer(config, self.handle, self._on_connect, self._on_disconnect)
        self.notifier = sdnotify.SystemdNotifier()
        self._stop = asyncio.Event()
        # Prometheus metrics (noded.daemon.metrics), only with metrics_address in noded.toml.
        self.metrics: Metrics | None = None
        if config.metrics_address is not None:
            self.metrics = Metrics(config.max_session_processes)
            self.manager.subscribe(self.metrics.on_session)
        self._stats_watchers: dict[Connection, float] = {}  # connection -> its period (s)
        self._stats_task: asyncio.Task[None] | None = None

    def _on_systemd_event(self, event: Any) -> None:
        self.manager.on_systemd_event(event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)  # the loop acts on it
        self.systemd.open(loop)
        if self.metrics is not None:  # each scrape reads edge and node figures on this loop
            metrics = self.metrics
            metrics.set_refresh(
                loop, lambda: refresh_from(metrics, self.manager.sessions, lambda s: session_stats(s, self.systemd))
            )
        try:
            self.notifier.notify("STATUS=cleaning up after an earlier instance")
            await self.manager.cleanup_leftovers(timeout=self.config.node_stop_timeout + 5)
            await self.server.start()
            if self.metrics is not None and self.config.metrics_address is not None:
                self.metrics.serve(self.config.metrics_address)
            self.notifier.notify(f"READY=1\nSTATUS=listening on {self.config.socket_path}")
            log.info("noded %s ready on %s", __version__, self.config.socket_path)
            await self._stop.wait()
            self.notifier.notify("STOPPING=1\nSTATUS=stopping all sessions")
            log.info("stopping all sessions")
            await self.server.close()
            await self.manager.stop_all(timeout=self.config.node_stop_timeout + 5)
        finally:
            if self.metrics is not None:
                self.metrics.close()
            if self._stats_task is not None:
                self._stats_task.cancel()
            self.systemd.close()

    def _on_connect(self, conn: Connection) -> None:
        self.manager.subscribe(conn.on_session)

    def _on_disconnect(self, conn: Connection) -> None:
        self.manager.unsubscribe(conn.on_session)
        self._stats_watchers.pop(conn, None)

    # -- live figures -------------------------------------------------------------

    def _with_stats(self, session: Session) -> SessionInfo:
        """The session with its figures; a node that is up shows the state its worker
        reports (processing, idle) instead of plain "ready"."""
        info = session.info()
        if session.state not in SESSION_TERMINAL:
            info.stats = with_live_states(info, session_stats(session, self.systemd))
        return info

    def _watch_stats(self, conn: Connection, interval: float) -> None:
        """Send ``conn`` its watched sessions with their figures every ``interval`` s
        (one reading per session per round, shared by every watcher)."""
        self._stats_watchers[conn] = interval
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = asyncio.get_running_loop().create_task(self._publish_stats())

    async def _publish_stats(self) -> None:
        due: dict[Connection, float] = {}
        while self._stats_watchers:
            now = asyncio.get_running_loop().time()
            readings: dict[str, SessionInfo] = {}
            for conn, interval in list(self._stats_watchers.items()):
                if due.get(conn, 0.0) > now:
                    continue
                due[conn] = now + interval
                for session in list(self.manager.sessions.values()):
                    if session.state in SESSION_TERMINAL or not (None in conn.watching or session.sid in conn.watching):
                        continue
                    if session.sid not in readings:
                        try:
                            readings[session.sid] = self._with_stats(session)
                        except Exception:
                            log.exception("reading the figures of session %s failed", session.sid)
                            continue
                    conn.send(Event(session=readings[session.sid]))
            for conn in list(due):
                if conn not in self._stats_watchers:
                    del due[conn]
            await asyncio.sleep(max(min(due.values(), default=now + STATS_INTERVAL) - now, 0.05))

    # -- requests -----------------------------------------------------------------

    async def handle(self, req: Request, conn: Connection) -> Any:
        match req.op:
            case "status":
                live = [
                    s
                    for s in self.manager.sessions.values()
                    if s.state not in (SessionState.STOPPED, SessionState.FAILED)
                ]
                return {
                    "version": __version__,
                    "protocol": PROTOCOL_VERSION,
                    "sessions": len(live),
                    "limits": {"max_session_processes": self.config.max_session_processes},
                    # noded.toml's node defaults and endpoints (nodectl status shows them)
                    "node_limits": describe(self.config)["node_limits"],
                    "metrics": describe(self.config)["metrics_address"],
                    "config": self.config.source,
                }
            case "create":
                pipeline = parse_pipeline(_arg(req, "text"), _arg(req, "filename"), defaults=self.config.node_limits)
                session = self.manager.create(pipeline)
                if req.args.get("watch"):
                    conn.watching.add(session.sid)
                return to_builtins(session.info())
            case "list":
                return [to_builtins(s.info()) for s in self.manager.sessions.values()]
            case "show":
                return to_builtins(self._with_stats(self.manager.get(_arg(req, "sid"))))
            case "stop":
                sid = _arg(req, "sid")
                session = self.manager.stop(sid)
                if req.args.get("wait"):
                    await self.manager.wait_finished(sid)
                return to_builtins(session.info())
            case "attach":
                # The client's side of the session's external inputs and outputs.
                session = self.manager.get(_arg(req, "sid"))
                if session.topology.client is None:
                    raise BadRequest(
                        f"pipeline {session.pipeline.name!r} declares no external inputs or outputs",
                        hint="add top-level inputs = [...] / outputs = [...] to the pipeline",
                    )
                return {"session": session.sid, "dataplane": to_builtins(session.topology.client)}
            case "watch":
                sid = req.args.get("sid")
                interval = req.args.get("stats")  # seconds between stats events, or true (1 s)
                if interval is not None and interval is not False:
                    if interval is True:
                        interval = STATS_INTERVAL
                    if not isinstance(interval, (int, float)) or not 0.2 <= interval <= 60:
                        raise BadRequest("'watch' takes 'stats': true or a period of 0.2 to 60 seconds")
                if sid is None:
                    conn.watching.add(None)
                    result = [to_builtins(s.info()) for s in self.manager.sessions.values()]
                else:
                    if not isinstance(sid, str):
                        raise BadRequest("'watch' takes an optional session id string 'sid'")
                    result = to_builtins(self.manager.get(sid).info())
                    conn.watching.add(sid)
                if interval:
                    self._watch_stats(conn, float(interval))
                return result
            case _:
                raise BadRequest(
                    f"unknown operation {req.op!r}", hint="operations: status, create, list, show, stop, watch, attach"
                )


__all__ = ["Daemon", "NodedError"]
