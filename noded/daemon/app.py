"""The daemon's lifecycle (start-up, main loop, shutdown) and its request handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from noded import __version__
from noded.contract.protocol import (
    PROTOCOL_VERSION,
    Attach,
    BadRequest,
    Create,
    Event,
    List,
    Request,
    SessionInfo,
    Show,
    Status,
    Stop,
    Watch,
    to_builtins,
)
from noded.contract.sdnotify import NotifySocket, monotonic_usec, watchdog_interval
from noded.contract.states import SESSION_TERMINAL
from noded.daemon.config import Config, ConfigError, describe, load_config, reloadable
from noded.daemon.control import Connection, ControlServer
from noded.daemon.interpreter import check_interpreters
from noded.daemon.logs import setup_logging
from noded.daemon.manager import SessionManager
from noded.daemon.metrics import Metrics, MetricsError, refresh_from
from noded.daemon.owners import authorize, run_as
from noded.daemon.session import Session
from noded.daemon.stats import session_stats, with_live_states
from noded.daemon.systemd import Systemd
from noded.errors import NodedError
from noded.pipeline.bounds import PipelineBounds
from noded.pipeline.checks import parse_pipeline

log = logging.getLogger("noded")

STATS_INTERVAL = 1.0  # s between stats events for a watcher that asked for them (default)


class Daemon:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # what `noded --config` named, re-read on reload
        self.systemd = Systemd(self._on_systemd_event)
        self.manager = SessionManager(self.systemd, config)
        self.server = ControlServer(config, self.handle, self._on_connect, self._on_disconnect)
        self.notifier = NotifySocket()
        self._stop = asyncio.Event()
        # Prometheus metrics (noded.daemon.metrics), only with metrics_address in noded.toml.
        self.metrics: Metrics | None = None
        if config.metrics_address is not None:
            self._start_metrics()
        self._stats_watchers: dict[Connection, float] = {}  # connection -> its period (s)
        self._stats_task: asyncio.Task[None] | None = None

    def _start_metrics(self) -> Metrics:
        metrics = self.metrics = Metrics(self.config.max_session_processes, per_session=self.config.metrics_per_session)
        self.manager.subscribe(metrics.on_session)
        return metrics

    def _refresh_metrics(self, loop: asyncio.AbstractEventLoop, metrics: Metrics) -> None:
        """Each scrape reads edge and node figures on this loop."""
        metrics.set_refresh(
            loop, lambda: refresh_from(metrics, self.manager.sessions, lambda s: session_stats(s, self.systemd))
        )

    def notify(self, *assignments: str) -> None:
        try:
            self.notifier.send(*assignments)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.notifier.address, exc)

    def reload(self) -> None:
        """SIGHUP (`systemctl reload noded`): read the configuration again and apply what
        can change without touching running sessions; a bad one keeps the current one."""
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading the configuration")
        try:
            self._apply(load_config(self.config_path))
        except (ConfigError, MetricsError) as exc:
            log.error(
                "reload failed, keeping the configuration of %s: %s%s",
                self.config.source,
                exc,
                f" (hint: {exc.hint})" if exc.hint else "",
            )
        finally:
            self.notify("READY=1", f"STATUS=listening on {self.config.socket_path}")

    def _apply(self, loaded: Config) -> None:
        new, ignored = reloadable(self.config, loaded)
        old = self.config
        if new.metrics_address != old.metrics_address:
            if self.metrics is not None:
                self.metrics.close()
            if new.metrics_address is not None:
                metrics = self.metrics or self._start_metrics()
                self._refresh_metrics(asyncio.get_running_loop(), metrics)
                try:
                    metrics.serve(new.metrics_address)
                except MetricsError:
                    if old.metrics_address is not None:  # put the old endpoint back
                        metrics.serve(old.metrics_address)
                    raise
        if self.metrics is not None:
            self.metrics.set_limit(new.max_session_processes)
            self.metrics.set_per_session(new.metrics_per_session)
        if new.log_level != old.log_level:
            setup_logging(new.log_level)
        self.config = self.manager.config = new
        for name in ignored:
            log.warning("reload: %s changed but takes effect only at the next restart of noded", name)
        log.info("reloaded the configuration from %s (log level %s)", new.source, new.log_level)

    def _on_systemd_event(self, event: Any) -> None:
        self.manager.on_systemd_event(event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)  # the loop acts on it
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.systemd.open(loop)
        if self.metrics is not None:
            self._refresh_metrics(loop, self.metrics)
        interval = watchdog_interval(dict(os.environ), os.getpid())
        if interval is not None:
            self._feed_watchdog(loop, interval)
        try:
            self.notify("STATUS=cleaning up after an earlier instance")
            await self.manager.cleanup_leftovers(timeout=self.config.node_stop_timeout + 5)
            await self.server.start()
            if self.metrics is not None and self.config.metrics_address is not None:
                self.metrics.serve(self.config.metrics_address)
            self.notify("READY=1", f"STATUS=listening on {self.config.socket_path}")
            log.info("noded %s ready on %s", __version__, self.config.socket_path)
            await self._stop.wait()
            self.notify("STOPPING=1", "STATUS=stopping all sessions")
            log.info("stopping all sessions")
            await self.server.close()
            await self.manager.stop_all(timeout=self.config.node_stop_timeout + 5)
        finally:
            if self.metrics is not None:
                self.metrics.close()
            if self._stats_task is not None:
                self._stats_task.cancel()
            self.systemd.close()

    def _feed_watchdog(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        """WATCHDOG=1 from the event loop itself: a loop that hangs stops feeding it, and
        systemd restarts noded (WatchdogSec= of noded.service)."""
        self.notify("WATCHDOG=1")
        loop.call_later(interval, self._feed_watchdog, loop, interval)

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
        """Carry out one request of ``conn``: its result, as plain data."""
        handler = self._handlers[type(req)]
        return await handler(self, req, conn)

    async def _on_status(self, req: Status, conn: Connection) -> Any:
        config = describe(self.config)
        return {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "sessions": sum(1 for s in self.manager.sessions.values() if s.state not in SESSION_TERMINAL),
            "limits": {"max_session_processes": self.config.max_session_processes},
            # noded.toml's node defaults and endpoints (nodectl status shows them)
            "node_limits": config["node_limits"],
            "metrics": config["metrics_address"],
            "config": self.config.source,
        }

    async def _on_create(self, req: Create, conn: Connection) -> Any:
        bounds = PipelineBounds(nodes=self.config.max_pipeline_nodes)
        pipeline = parse_pipeline(
            req.text, req.filename, defaults=self.config.node_limits, bounds=bounds, directory=req.directory
        )
        who = run_as(conn.peer, pipeline.user, self.config.socket_group)
        await check_interpreters(pipeline, req.filename)
        session = self.manager.create(pipeline, owner=who.owner, user=who.user)
        if req.watch:
            conn.watching.add(session.sid)
        return to_builtins(session.info())

    async def _on_list(self, req: List, conn: Connection) -> Any:
        return [to_builtins(s.info()) for s in self.manager.sessions.values()]

    async def _on_show(self, req: Show, conn: Connection) -> Any:
        return to_builtins(self._with_stats(self.manager.get(req.sid)))

    async def _on_stop(self, req: Stop, conn: Connection) -> Any:
        authorize(conn.peer, self.manager.get(req.sid).owner, "stop", req.sid)
        session = self.manager.stop(req.sid)
        if req.wait:
            await self.manager.wait_finished(req.sid)
        return to_builtins(session.info())

    async def _on_attach(self, req: Attach, conn: Connection) -> Any:
        # The client's side of the session's external inputs and outputs.
        session = self.manager.get(req.sid)
        authorize(conn.peer, session.owner, "feed or read", req.sid)
        if session.topology.client is None:
            raise BadRequest(
                f"pipeline {session.pipeline.name!r} declares no external inputs or outputs",
                hint="add top-level inputs = [...] / outputs = [...] to the pipeline",
            )
        return {"session": session.sid, "dataplane": to_builtins(session.topology.client)}

    async def _on_watch(self, req: Watch, conn: Connection) -> Any:
        interval = None  # seconds between stats events
        if req.stats is True:
            interval = STATS_INTERVAL
        elif req.stats is not None and req.stats is not False:
            if not 0.2 <= req.stats <= 60:
                raise BadRequest("'watch' takes 'stats': true or a period of 0.2 to 60 seconds")
            interval = float(req.stats)
        if req.sid is None:
            conn.watching.add(None)
            result: Any = [to_builtins(s.info()) for s in self.manager.sessions.values()]
        else:
            result = to_builtins(self.manager.get(req.sid).info())
            conn.watching.add(req.sid)
        if interval:
            self._watch_stats(conn, interval)
        return result

    _handlers: dict[type, Callable[[Daemon, Any, Connection], Awaitable[Any]]] = {
        Status: _on_status,
        Create: _on_create,
        List: _on_list,
        Show: _on_show,
        Stop: _on_stop,
        Attach: _on_attach,
        Watch: _on_watch,
    }


__all__ = ["Daemon", "NodedError"]
