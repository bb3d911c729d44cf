"""The session lifecycle: start a pipeline's units, follow them, end sessions cleanly.

Everything here is driven by what systemd reports (``noded.daemon.systemd`` events) and by
client requests; the decisions themselves are the pure state machines of
``noded.contract.states`` and the exit descriptions of ``noded.daemon.failures``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections import OrderedDict
from collections.abc import Callable

from noded.contract.exitcodes import ExitCode
from noded.contract.protocol import Failure, SessionInfo
from noded.contract.spec import WorkerSpec, encode_spec
from noded.contract.states import (
    NODE_TERMINAL,
    SESSION_TERMINAL,
    Activated,
    AllUnitsGone,
    Exited,
    NodeEvent,
    NodeFailed,
    NodesChanged,
    NodeState,
    SessionState,
    SessionStopRequested,
    Starting,
    StatusReported,
    StopRequested,
)
from noded.contract.status import parse_status
from noded.contract.wire import HEADER_SIZE
from noded.daemon.config import Config
from noded.daemon.failures import CLD_DUMPED, CLD_KILLED, ExitFacts, ExitReason, describe_exit, is_consequence
from noded.daemon.journal import journal_tail
from noded.daemon.oom import OomWatcher, oom_check_argv, oom_killed_from_exec
from noded.daemon.resources import prepare_session, remove_leftovers, remove_session, seal_session, session_root
from noded.daemon.session import NodeRuntime, Session
from noded.daemon.shm import refuse_if_full
from noded.daemon.shm import space as shm_space
from noded.daemon.stats import attached_clients
from noded.daemon.systemd import JobDone, Systemd, SystemdEvent, UnitChange, UnitGone
from noded.daemon.units import PARENT_SLICE, UNIT_PREFIX, cgroup_path, service_properties, slice_properties, worker_argv
from noded.errors import LimitError, SessionNotFound, SystemdError
from noded.pipeline.checks import Pipeline
from noded.pipeline.topology import plan

log = logging.getLogger("noded.sessions")

HEARTBEAT_SECONDS = 2.0
STOP_RETRY_SECONDS, STOP_ATTEMPTS = 2.0, 10  # a StopUnit systemd refused or did not answer
SERVICE_IFACE = "org.freedesktop.systemd1.Service"
UINT32_MAX = 2**32 - 1
KEEP_FINISHED = 100  # ended sessions kept for `session list/show`
JOURNAL_LINES, JOURNAL_LINES_HUNG = 10, 30  # of a failed node's journal, in its session's failure
# How long an ended session's files wait for its attached clients to close their ports
# (a client's PID file goes when it detaches), and how often that is looked at: a client
# tells noded nothing when it detaches, so this one wait is polled, and bounded.
CLIENT_GRACE_SECONDS, CLIENT_LOOK_SECONDS = 3.0, 0.05

Listener = Callable[[SessionInfo], None]


def _consequential(session: Session) -> bool:
    """True if the session's failure names a node that only exited because a peer died
    (the worker's PEER_GONE): a failed exit seen later, of a node that is not such a
    consequence, takes the blame (it was the cause; its signal merely came second)."""
    f = session.failure
    return f is not None and f.signal is None and f.exit_status == ExitCode.PEER_GONE


class SessionManager:
    def __init__(self, systemd: Systemd, config: Config) -> None:
        self.sd = systemd
        self.config = config
        self.oom = OomWatcher()
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._units: dict[str, tuple[Session, NodeRuntime]] = {}
        self._slices: dict[str, Session] = {}
        self._listeners: set[Listener] = set()
        self._heartbeats: dict[str, asyncio.TimerHandle] = {}
        self._journal: dict[str, asyncio.Task[list[str]]] = {}
        self._finished: dict[str, asyncio.Future[None]] = {}
        self._gone_waiters: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._finishing: set[str] = set()
        self._sealed: set[str] = set()  # sessions whose iceoryx2 root is their user's

    # -- public API ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def get(self, sid: str) -> Session:
        try:
            return self.sessions[sid]
        except KeyError:
            raise SessionNotFound(f"no session {sid!r}", hint="'nodectl session list' shows the sessions") from None

    def create(self, pipeline: Pipeline, owner: int = 0, user: str | None = None) -> Session:
        limit = self.config.max_session_processes
        if limit is not None and len(pipeline.nodes) > limit:
            raise LimitError(
                f"pipeline {pipeline.name!r} has {len(pipeline.nodes)} nodes, but a session may run "
                f"at most {limit} node processes",
                hint="raise max_session_processes in /etc/noded/noded.toml, or split the pipeline",
            )
        refuse_if_full(pipeline, shm_space())
        sid = self._new_sid()
        topology = plan(pipeline, sid, root_base=str(self.config.iox2_root))
        session = Session.new(sid, pipeline, topology, owner=owner, user=user)
        prepare_session(self.config.iox2_root, sid)
        try:
            self.sd.start_transient(session.slice, slice_properties(sid, pipeline.name))
        except SystemdError:
            remove_session(self.config.iox2_root, sid)
            raise
        session.slice_loaded = True
        self._finished[sid] = asyncio.get_running_loop().create_future()
        self.sessions[sid] = session
        self._slices[session.slice] = session
        for node in session.nodes.values():
            self._units[node.unit] = (session, node)
        log.info("session %s: starting %d nodes of %s", sid, len(session.nodes), pipeline.name)
        for node in session.nodes.values():
            if node.spec.resources.memory_max is not None:  # before it starts: see OomWatcher.watch
                self.oom.watch(node.unit, cgroup_path(sid, node.unit), create=True)
            try:
                node.start_job = self.sd.start_transient(node.unit, self._node_properties(session, node))
            except SystemdError as exc:
                self._fail(session, node, ExitReason(f"systemd could not start it: {exc.message}", None, None))
                break
            node.loaded = True
            node.apply(Starting())
        self._forget_old()
        self._publish(session)
        return session

    def stop(self, sid: str) -> Session:
        session = self.get(sid)
        if session.apply(SessionStopRequested()):
            log.info("session %s: stopping", sid)
        self._stop_units(session)
        self._publish(session)
        self._check_cleanup(session)
        return session

    async def wait_finished(self, sid: str) -> None:
        """Until the session has ended and all its units are gone."""
        fut = self._finished.get(sid)
        if fut is not None:
            await asyncio.shield(fut)

    async def stop_all(self, timeout: float) -> None:
        live = [s.sid for s in self.sessions.values() if s.state not in SESSION_TERMINAL]
        for sid in live:
            self.stop(sid)
        if live:
            await asyncio.wait([self._finished[s] for s in live], timeout=timeout)

    async def cleanup_leftovers(self, timeout: float) -> list[str]:
        """Stop every noded-* unit an earlier daemon left behind; return their names."""
        rows = self.sd.list_units([f"{UNIT_PREFIX}*"])
        services = [r for r in rows if r[0].endswith(".service")]
        slices = [r for r in rows if r[0].endswith(".slice")]
        for group in (services, slices):
            waiters = []
            for name, active, _sub in group:
                fut = asyncio.get_running_loop().create_future()
                self._gone_waiters[name] = fut
                waiters.append(fut)
                if active == "failed":
                    self.sd.reset_failed(name)
                elif not self.sd.stop(name):
                    fut.set_result(None)
            if waiters:
                await asyncio.wait(waiters, timeout=timeout)
        names = [r[0] for r in rows]
        if names:
            log.warning("stopped %d units left by an earlier noded: %s", len(names), " ".join(names))
            stuck = [r[0] for r in self.sd.list_units([f"{UNIT_PREFIX}*"])]
            if stuck:  # still stopping after the timeout; on_systemd_event lets them go later
                log.error(
                    "%d units left by an earlier noded are not gone after %.0f s: %s",
                    len(stuck),
                    timeout,
                    " ".join(stuck),
                )
        cgroups = self.oom.remove_leftovers(PARENT_SLICE)
        if cgroups:
            log.warning("removed %d memory cgroups an earlier noded made: %s", len(cgroups), " ".join(cgroups))
        files = remove_leftovers(self.config.iox2_root)
        if files:
            log.warning("removed %d files of sessions an earlier noded ran", len(files))
        return names

    # -- systemd events -----------------------------------------------------------

    def on_systemd_event(self, event: SystemdEvent) -> None:
        match event:
            case UnitChange(unit=unit, changes=changes):
                if unit in self._units:
                    self._on_node_change(*self._units[unit], changes)
                elif changes.get("ActiveState") == "failed" and unit not in self._slices:
                    self.sd.reset_failed(unit)  # a leftover: let it go
            case JobDone(unit=unit, job=job, result=result):
                if unit in self._units:
                    session, node = self._units[unit]
                    if job == node.start_job:
                        node.start_job = None
                        if result == "done":
                            self._node_event(session, node, Activated())
                        else:  # the unit never got going (or we stopped it first)
                            self._on_node_exit(session, node, failed=True)
            case UnitGone(unit=unit):
                waiter = self._gone_waiters.pop(unit, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if unit in self._units:
                    session, node = self._units[unit]
                    node.loaded = False
                    self._check_cleanup(session)
                elif unit in self._slices:
                    session = self._slices[unit]
                    session.slice_loaded = False
                    self._check_cleanup(session)

    def _on_node_change(self, session: Session, node: NodeRuntime, changes: dict[str, object]) -> None:
        node.props.update(changes)
        if "StatusText" in changes:
            status = parse_status(str(changes["StatusText"]))
            if status is not None:
                node.status = status
                self._node_event(session, node, StatusReported(status), always_publish=True)
        active = changes.get("ActiveState")
        if active in ("activating", "active", "deactivating", "reloading") and not node.went_active:
            node.went_active = True
            if node.spec.resources.memory_max is not None:
                self.oom.watch(node.unit, cgroup_path(session.sid, node.unit))
        if active == "activating":
            self._node_event(session, node, Starting())
        elif active == "active":
            self._node_event(session, node, Activated())
        elif active == "failed" or (active == "inactive" and node.went_active):
            self._on_node_exit(session, node, failed=active == "failed")

    def _on_node_exit(self, session: Session, node: NodeRuntime, failed: bool) -> None:
        if node.state in NODE_TERMINAL:
            if failed:
                # Ended already: its start job was cancelled by our stop (JobDone), and
                # the process then failed to stop (SIGKILL after TimeoutStopSec=, or a
                # non-zero exit). A failed unit stays loaded until reset, and with it the
                # session, for ever.
                self._reset_failed(session, node)
            return
        hung_in = "setup()" if node.state in (NodeState.IDLE, NodeState.INITIALIZING) else "process()"
        if failed:
            # The Unit interface's signal may precede the Service one: read the
            # facts now, while the failed unit is still loaded, then let it go.
            for prop in ("Result", "ExecMainCode", "ExecMainStatus", "StatusText"):
                try:
                    node.props[prop] = self.sd.get(node.unit, prop)
                except SystemdError:
                    pass
            # The kernel's oom_kill counter, read by the unit's ExecStopPost: for every
            # node, as an OOM kill may come from above it too (the machine short of
            # memory, or a limit on a slice over the sessions), not only from its own
            # memory_max.
            counted: bool | None = None
            try:
                counted = oom_killed_from_exec(
                    self.sd.get_unit_property(node.unit, SERVICE_IFACE, "ExecStopPost", "a(sasbttttuii)")
                )
            except SystemdError:
                pass
            self._reset_failed(session, node)
        else:
            counted = None
        # The kernel's counter decides; the eventfd (which may lose the race against the
        # cgroup's removal on a busy machine) only when the counter could not be read.
        fast = self.oom.was_oom_killed(node.unit)
        oom_killed = counted if counted is not None else fast
        self.oom.forget(node.unit)
        # A failure after a consequential one may be its cause, though we asked it to stop.
        blame = failed and _consequential(session)
        node.apply(Exited(stop_requested=node.stop_requested and not blame))
        if node.state is NodeState.ERROR:
            p = node.props
            shm = None
            killed = int(p.get("ExecMainCode", 0) or 0) in (CLD_KILLED, CLD_DUMPED)
            if killed and int(p.get("ExecMainStatus", 0) or 0) == signal.SIGBUS and (free := shm_space()) is not None:
                shm = (free.free, free.size, node.spec.max_payload + HEADER_SIZE)
            facts = ExitFacts(
                result=str(p.get("Result", "")),
                exec_main_code=int(p.get("ExecMainCode", 0) or 0),
                exec_main_status=int(p.get("ExecMainStatus", 0) or 0),
                status_text=str(p.get("StatusText", "")),
                memory_max=node.spec.resources.memory_max,
                oom_killed=oom_killed,
                tasks_max=node.spec.resources.tasks_max,
                watchdog=node.spec.resources.watchdog,
                hung_in=hung_in,
                shm=shm,
            )
            self._fail(session, node, describe_exit(facts), consequence=is_consequence(facts))
        else:
            self._publish(session)

    def _node_event(self, session: Session, node: NodeRuntime, event: NodeEvent, always_publish: bool = False) -> None:
        changed = node.apply(event)
        if changed:
            session.apply(NodesChanged(tuple(n.state for n in session.nodes.values())))
            if isinstance(event, Activated) and session.sid not in self._sealed:
                self._seal(session, node)
        if changed or always_publish:
            self._publish(session)

    def _seal(self, session: Session, node: NodeRuntime) -> None:
        """Make the session's iceoryx2 root its nodes' dynamic user's alone (noded.daemon.resources)."""
        try:
            uid, gid = (self.sd.get_unit_property(node.unit, SERVICE_IFACE, name, "u") for name in ("UID", "GID"))
            if uid not in (0, UINT32_MAX):  # UINT32_MAX: unknown (the unit is gone again)
                seal_session(self.config.iox2_root, session.sid, uid, gid)
                self._sealed.add(session.sid)
        except (OSError, SystemdError) as exc:
            log.warning("session %s: cannot hand its iceoryx2 root to its user: %s", session.sid, exc)

    # -- failure and cleanup ------------------------------------------------------

    def _fail(self, session: Session, node: NodeRuntime, why: ExitReason, consequence: bool = False) -> None:
        """``consequence``: the node exited because a peer died (see _consequential)."""
        node.error = why.reason
        live = session.state not in SESSION_TERMINAL
        if session.failure is None and live and session.state is not SessionState.STOPPING:
            log.error("session %s: node %s %s", session.sid, node.spec.id, why.reason)
            self._blame(session, node, why)
            session.apply(NodeFailed())
        elif live and not consequence and _consequential(session):
            log.error(
                "session %s: node %s %s (which ended %s)",
                session.sid,
                node.spec.id,
                why.reason,
                session.failure.node if session.failure else "?",
            )
            old = self._journal.pop(session.sid, None)
            if old is not None:
                old.cancel()
            self._blame(session, node, why)
        self._stop_units(session)
        self._publish(session)
        self._check_cleanup(session)

    def _blame(self, session: Session, node: NodeRuntime, why: ExitReason) -> None:
        session.failure = Failure(
            node=node.spec.id,
            reason=why.reason,
            result=str(node.props.get("Result", "")),
            exit_status=why.exit_status,
            signal=why.signal,
            status_text=str(node.props.get("StatusText", "")),
        )
        # A node the watchdog ended wrote every thread's stack (faulthandler) before
        # systemd's own lines: enough lines to show where it hung.
        lines = JOURNAL_LINES_HUNG if session.failure.result == "watchdog" else JOURNAL_LINES
        self._journal[session.sid] = asyncio.get_running_loop().create_task(journal_tail(node.unit, lines))

    def _stop_units(self, session: Session) -> None:
        for node in session.nodes.values():
            if node.stop_requested:
                continue
            node.stop_requested = True
            self._node_event(session, node, StopRequested())
            self._stop_unit(session, node, attempt=1)

    def _stop_unit(self, session: Session, node: NodeRuntime, attempt: int) -> None:
        """StopUnit, again a while later if systemd refused or did not answer (a busy
        PID 1): a stop that is lost leaves the unit, and so the session, running."""
        if not node.loaded:
            return
        try:
            if not self.sd.stop(node.unit):
                node.loaded = False
                if attempt > 1:
                    self._check_cleanup(session)
        except SystemdError as exc:
            if attempt >= STOP_ATTEMPTS:
                log.error("session %s: %s; gave up after %d attempts", session.sid, exc, attempt)
                return
            log.warning("session %s: %s; trying again in %.0f s", session.sid, exc, STOP_RETRY_SECONDS)
            asyncio.get_running_loop().call_later(STOP_RETRY_SECONDS, self._stop_unit, session, node, attempt + 1)

    def _reset_failed(self, session: Session, node: NodeRuntime) -> None:
        try:
            self.sd.reset_failed(node.unit)
        except SystemdError as exc:
            log.error("session %s: %s", session.sid, exc)

    def _check_cleanup(self, session: Session) -> None:
        if session.state is not SessionState.STOPPING or session.units_loaded():
            return
        if session.slice_loaded:
            try:
                if self.sd.stop(session.slice):
                    return  # UnitGone of the slice brings us back here
            except SystemdError as exc:
                log.error("session %s: %s", session.sid, exc)
            session.slice_loaded = False
        if session.sid in self._finished and session.sid not in self._finishing:
            self._finishing.add(session.sid)
            task = asyncio.get_running_loop().create_task(self._finish(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, session: Session) -> None:
        journal = self._journal.pop(session.sid, None)
        if journal is not None and session.failure is not None:
            session.failure.journal = await journal
        await self._await_clients(session)
        left = remove_session(self.config.iox2_root, session.sid)
        if left:
            log.info("session %s: removed %d files its nodes left", session.sid, len(left))
        session.apply(AllUnitsGone(failed=session.failure is not None))
        log.info("session %s: %s", session.sid, session.state)
        for node in session.nodes.values():
            self._units.pop(node.unit, None)
            self.oom.forget(node.unit)  # also for nodes that never started
        self._slices.pop(session.slice, None)
        self._publish(session)
        self._finishing.discard(session.sid)
        self._sealed.discard(session.sid)
        fut = self._finished.pop(session.sid)
        if not fut.done():
            fut.set_result(None)

    async def _await_clients(self, session: Session) -> None:
        """Give the clients still attached a moment to close their ports: the session's
        files removed under an open port make iceoryx2 warn ("The static storage was
        already removed") when it closes. Their guard (noded.api) stops their io as soon
        as the session stops or fails; a client that does not detach in time loses
        nothing but the ports of a session that has ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLIENT_GRACE_SECONDS
        while clients := attached_clients(session):
            if loop.time() >= deadline:
                pids = ", ".join(str(c.pid) for c in clients)
                log.warning(
                    "session %s: client(s) %s still attached %.0f s after the end; removing its files",
                    session.sid,
                    pids,
                    CLIENT_GRACE_SECONDS,
                )
                return
            await asyncio.sleep(CLIENT_LOOK_SECONDS)

    # -- helpers ------------------------------------------------------------------

    def _node_properties(self, session: Session, node: NodeRuntime):  # type: ignore[no-untyped-def]
        spec = node.spec
        worker = WorkerSpec(
            session=session.sid,
            node=spec.id,
            cls=spec.resolved_cls,
            params=dict(spec.params),
            dataplane=session.topology.nodes.get(spec.id),
            sys_path=list(spec.sys_path),
        )
        res = spec.resources
        return service_properties(
            sid=session.sid,
            node_id=spec.id,
            node_class=spec.cls,
            argv=worker_argv(self.config, encode_spec(worker), spec.python),
            config=self.config,
            iox2_root=session_root(self.config.iox2_root, session.sid),
            memory_max=res.memory_max,
            cpu_quota=res.cpu_quota,
            tasks_max=res.tasks_max,
            watchdog=res.watchdog,
            sandbox=spec.sandbox,
            env=spec.env,
            oom_check=oom_check_argv(cgroup_path(session.sid, node.unit)),
            user=session.user,
        )

    def _publish(self, session: Session) -> None:
        handle = self._heartbeats.pop(session.sid, None)
        if handle is not None:
            handle.cancel()
        if session.state is SessionState.CREATING:
            self._heartbeats[session.sid] = asyncio.get_running_loop().call_later(
                HEARTBEAT_SECONDS, self._publish, session
            )
        info = session.info()
        for listener in list(self._listeners):
            try:
                listener(info)
            except Exception:
                log.exception("a session listener failed")

    def _new_sid(self) -> str:
        while True:
            sid = secrets.token_hex(4)
            if sid not in self.sessions:
                return sid

    def _forget_old(self) -> None:
        ended = [sid for sid, s in self.sessions.items() if s.state in SESSION_TERMINAL]
        for sid in ended[: max(0, len(ended) - KEEP_FINISHED)]:
            del self.sessions[sid]
