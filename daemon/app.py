"""The daemon's lifecycle (start-up, main loop, shutdown) and its request handlers."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import sdnotify

from daemon import __version__
from daemon.config import Config, describe
from daemon.control import BadRequest, Connection, ControlServer
from daemon.errors import NodedError
from daemon.manager import SessionManager
from daemon.metrics import Metrics
from daemon.pipeline import parse_pipeline
from daemon.protocol import PROTOCOL_VERSION, Request, to_builtins
from daemon.states import SessionState
from daemon.systemd import Systemd

log = logging.getLogger("noded")


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
        # Prometheus metrics (daemon.metrics), only with metrics_address in noded.toml.
        self.metrics: Metrics | None = None
        if config.metrics_address is not None:
            self.metrics = Metrics(config.max_session_processes)
            self.manager.subscribe(self.metrics.on_session)

    def _on_systemd_event(self, event: Any) -> None:
        self.manager.on_systemd_event(event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)  # the loop acts on it
        self.systemd.open(loop)
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
            self.systemd.close()

    def _on_connect(self, conn: Connection) -> None:
        self.manager.subscribe(conn.on_session)

    def _on_disconnect(self, conn: Connection) -> None:
        self.manager.unsubscribe(conn.on_session)

    # -- requests -----------------------------------------------------------------

    async def handle(self, req: Request, conn: Connection) -> Any:
        match req.op:
            case "status":
                live = [s for s in self.manager.sessions.values()
                        if s.state not in (SessionState.STOPPED, SessionState.FAILED)]
                return {
                    "version": __version__, "protocol": PROTOCOL_VERSION,
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
                return to_builtins(self.manager.get(_arg(req, "sid")).info())
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
                    raise BadRequest(f"pipeline {session.pipeline.name!r} declares no external inputs or outputs",
                                     hint="add top-level inputs = [...] / outputs = [...] to the pipeline")
                return {"session": session.sid, "dataplane": to_builtins(session.topology.client)}
            case "watch":
                sid = req.args.get("sid")
                if sid is None:
                    conn.watching.add(None)
                    return [to_builtins(s.info()) for s in self.manager.sessions.values()]
                if not isinstance(sid, str):
                    raise BadRequest("'watch' takes an optional session id string 'sid'")
                info = self.manager.get(sid).info()
                conn.watching.add(sid)
                return to_builtins(info)
            case _:
                raise BadRequest(f"unknown operation {req.op!r}",
                                 hint="operations: status, create, list, show, stop, watch, attach")


__all__ = ["Daemon", "NodedError"]
