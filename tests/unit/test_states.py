from noded.contract.states import (
    Activated,
    AllUnitsGone,
    Exited,
    NodeFailed,
    NodesChanged,
    NodeState,
    SessionState,
    SessionStopRequested,
    Starting,
    StatusReported,
    StopRequested,
    node_transition,
    session_transition,
)
from noded.contract.status import Phase, Status

N, S = NodeState, SessionState


def run(events, state=N.IDLE):
    for e in events:
        state = node_transition(state, e)
    return state


def test_normal_life_of_a_node():
    assert run([Starting()]) is N.INITIALIZING
    assert run([Starting(), StatusReported(Status(Phase.INITIALIZING, 0.5))]) is N.INITIALIZING
    assert run([Starting(), Activated()]) is N.READY
    assert run([Starting(), Activated(), StatusReported(Status(Phase.PROCESSING))]) is N.PROCESSING
    assert (
        run([Starting(), Activated(), StatusReported(Status(Phase.PROCESSING)), StatusReported(Status(Phase.IDLE))])
        is N.IDLE
    )
    assert run([Starting(), Activated(), StopRequested(), Exited(stop_requested=True)]) is N.STOPPED


def test_status_ready_alone_is_not_readiness():
    # Only READY=1 (ActiveState=active) proves readiness; a STATUS= line may come first.
    assert run([Starting(), StatusReported(Status(Phase.READY))]) is N.INITIALIZING


def test_unexpected_exit_is_an_error_at_any_time():
    assert run([Starting(), Exited(stop_requested=False)]) is N.ERROR
    assert run([Starting(), Activated(), Exited(stop_requested=False)]) is N.ERROR
    assert run([Exited(stop_requested=False)]) is N.ERROR


def test_terminal_states_stick():
    assert run([Starting(), Exited(False), Activated(), Starting()]) is N.ERROR
    assert run([StopRequested(), Exited(True), Exited(False)]) is N.STOPPED


def test_stopping_ignores_late_status():
    assert run([Starting(), Activated(), StopRequested(), StatusReported(Status(Phase.PROCESSING))]) is N.STOPPING


def test_error_status_does_not_end_the_node_by_itself():
    assert run([Starting(), StatusReported(Status(Phase.ERROR, None, "boom"))]) is N.INITIALIZING


def test_session_ready_only_when_every_node_is_up():
    st = session_transition(S.CREATING, NodesChanged((N.READY, N.INITIALIZING)))
    assert st is S.CREATING
    assert session_transition(st, NodesChanged((N.READY, N.READY))) is S.READY
    assert session_transition(S.CREATING, NodesChanged(())) is S.CREATING


def test_session_failure_and_stop():
    assert session_transition(S.READY, NodeFailed()) is S.STOPPING
    assert session_transition(S.CREATING, NodeFailed()) is S.STOPPING
    assert session_transition(S.STOPPING, AllUnitsGone(failed=True)) is S.FAILED
    assert session_transition(S.READY, SessionStopRequested()) is S.STOPPING
    assert session_transition(S.STOPPING, AllUnitsGone(failed=False)) is S.STOPPED
    # a late readiness does not resurrect a stopping session
    assert session_transition(S.STOPPING, NodesChanged((N.READY,))) is S.STOPPING
    assert session_transition(S.FAILED, SessionStopRequested()) is S.FAILED
