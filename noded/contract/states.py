"""Node and session state machines: pure functions of (state, event).

The daemon feeds them what systemd reports over D-Bus (unit state changes and the
worker's StatusText); tests feed them directly, without any bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from noded.contract.status import Phase, Status


class NodeState(StrEnum):
    IDLE = "idle"
    INITIALIZING = "initializing"
    READY = "ready"
    PROCESSING = "processing"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


class SessionState(StrEnum):
    CREATING = "creating"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


NODE_TERMINAL = frozenset({NodeState.STOPPED, NodeState.ERROR})
NODE_UP = frozenset({NodeState.READY, NodeState.PROCESSING, NodeState.IDLE})
SESSION_TERMINAL = frozenset({SessionState.STOPPED, SessionState.FAILED})


# -- node events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Starting:
    """The unit's start job was queued, or it is activating."""


@dataclass(frozen=True)
class StatusReported:
    status: Status


@dataclass(frozen=True)
class Activated:
    """ActiveState=active: the worker sent READY=1."""


@dataclass(frozen=True)
class StopRequested:
    pass


@dataclass(frozen=True)
class Exited:
    """The unit left (inactive or failed). `stop_requested` says whether we asked."""

    stop_requested: bool


NodeEvent = Starting | StatusReported | Activated | StopRequested | Exited

_PHASE_STATE = {
    Phase.INITIALIZING: NodeState.INITIALIZING,
    Phase.READY: NodeState.READY,
    Phase.PROCESSING: NodeState.PROCESSING,
    Phase.IDLE: NodeState.IDLE,
    Phase.STOPPING: NodeState.STOPPING,
}


def node_transition(state: NodeState, event: NodeEvent) -> NodeState:
    if state in NODE_TERMINAL:
        return state
    match event:
        case Exited(stop_requested=True):
            return NodeState.STOPPED
        case Exited():
            return NodeState.ERROR
        case StopRequested():
            return NodeState.STOPPING
        case _ if state is NodeState.STOPPING:
            return state
        case Starting():
            return NodeState.INITIALIZING if state is NodeState.IDLE else state
        case Activated():
            return NodeState.READY if state in (NodeState.IDLE, NodeState.INITIALIZING) else state
        case StatusReported(status=status):
            target = _PHASE_STATE.get(status.phase)
            if target is None:  # Phase.ERROR: the exit that follows decides
                return state
            if state in (NodeState.IDLE, NodeState.INITIALIZING) and target in NODE_UP:
                # READY=1 (ActiveState=active) is the only proof of readiness; a
                # StatusText may arrive before it.
                return NodeState.INITIALIZING
            if state in NODE_UP and target is NodeState.INITIALIZING:
                return state
            return target
    return state


# -- session events ------------------------------------------------------------------


@dataclass(frozen=True)
class NodesChanged:
    states: tuple[NodeState, ...]


@dataclass(frozen=True)
class SessionStopRequested:
    pass


@dataclass(frozen=True)
class NodeFailed:
    pass


@dataclass(frozen=True)
class AllUnitsGone:
    failed: bool


SessionEvent = NodesChanged | SessionStopRequested | NodeFailed | AllUnitsGone


def session_transition(state: SessionState, event: SessionEvent) -> SessionState:
    if state in SESSION_TERMINAL:
        return state
    match event:
        case AllUnitsGone(failed=failed):
            return SessionState.FAILED if failed else SessionState.STOPPED
        case NodeFailed() | SessionStopRequested():
            return SessionState.STOPPING
        case NodesChanged(states=states) if state is SessionState.CREATING:
            if states and all(s in NODE_UP for s in states):
                return SessionState.READY
    return state
