"""A session's records: its nodes, their states, and how they look on the wire."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from noded.contract.protocol import Failure, NodeInfo, SessionInfo
from noded.contract.states import NodeEvent, NodeState, SessionEvent, SessionState, node_transition, session_transition
from noded.contract.status import Status
from noded.daemon.owners import user_name
from noded.daemon.sandbox import dynamic_user
from noded.daemon.units import service_name, slice_name
from noded.pipeline.checks import NodeSpec, Pipeline
from noded.pipeline.grants import describe
from noded.pipeline.topology import Topology


@dataclass
class NodeRuntime:
    spec: NodeSpec
    unit: str
    state: NodeState = NodeState.IDLE
    since: float = field(default_factory=time.time)
    status: Status | None = None
    props: dict[str, Any] = field(default_factory=dict)  # last values systemd sent
    start_job: str | None = None
    stop_requested: bool = False
    loaded: bool = False  # the unit exists in systemd (until UnitRemoved)
    # A new transient unit is "inactive" before its start job runs: only after
    # it has been seen activating does "inactive" mean that it left.
    went_active: bool = False
    init_started: float | None = None
    init_seconds: float | None = None
    error: str | None = None

    def apply(self, event: NodeEvent) -> bool:
        """Feed the state machine; True when the state changed."""
        new = node_transition(self.state, event)
        if new is self.state:
            return False
        now = time.time()
        if new is NodeState.INITIALIZING and self.init_started is None:
            self.init_started = now
        if self.state is NodeState.INITIALIZING and self.init_started is not None and self.init_seconds is None:
            self.init_seconds = now - self.init_started
        self.state, self.since = new, now
        return True

    def info(self) -> NodeInfo:
        st = self.status
        pid = self.props.get("MainPID") or None
        return NodeInfo(
            id=self.spec.id,
            cls=self.spec.cls,
            unit=self.unit,
            state=self.state,
            since=self.since,
            progress=st.fraction if st else None,
            status_text=self.props.get("StatusText", ""),
            main_pid=pid,
            init_started=self.init_started,
            init_seconds=self.init_seconds,
            error=self.error,
            grants=describe(self.spec.sandbox),
        )


@dataclass
class Session:
    sid: str
    pipeline: Pipeline
    nodes: dict[str, NodeRuntime]
    topology: Topology
    state: SessionState = SessionState.CREATING
    created: float = field(default_factory=time.time)
    created_mono: float = field(default_factory=time.monotonic)
    ready_seconds: float | None = None
    failure: Failure | None = None
    slice_loaded: bool = False
    owner: int = 0  # uid of the client that created it (noded.daemon.owners)
    user: str | None = None  # the account its nodes run as; None: its dynamic user

    @classmethod
    def new(cls, sid: str, pipeline: Pipeline, topology: Topology, owner: int = 0, user: str | None = None) -> Session:
        nodes = {n.id: NodeRuntime(spec=n, unit=service_name(sid, n.id)) for n in pipeline.nodes}
        return cls(sid=sid, pipeline=pipeline, nodes=nodes, topology=topology, owner=owner, user=user)

    @property
    def slice(self) -> str:
        return slice_name(self.sid)

    def apply(self, event: SessionEvent) -> bool:
        new = session_transition(self.state, event)
        if new is self.state:
            return False
        if new is SessionState.READY:
            self.ready_seconds = time.monotonic() - self.created_mono
        self.state = new
        return True

    def units_loaded(self) -> bool:
        return any(n.loaded for n in self.nodes.values())

    def info(self) -> SessionInfo:
        return SessionInfo(
            sid=self.sid,
            pipeline=self.pipeline.name,
            state=self.state,
            created=self.created,
            slice=self.slice,
            ready_seconds=self.ready_seconds,
            nodes=[n.info() for n in self.nodes.values()],
            failure=self.failure,
            owner=user_name(self.owner),
            run_as=self.user or dynamic_user(self.sid),
        )
