"""SC-005: crash scenarios chosen at random, with a logged seed.

Each scenario is a 4-node session, src -> a -> b -> sink, all ``chaos`` nodes
(noded/nodes/testing/chaos.py), in which one node chosen at random fails at a
moment chosen at random (during init, while idle, mid-message, while blocked on
backpressure) in a way chosen at random (SIGKILL, SIGSEGV, non-zero exit, exception in
setup, memory over its limit). Target: every one detected: the session ends as failed,
naming the right node and the reason; no unit, process, /dev/shm segment or iceoryx2
file of it is left.

    NODED_SC005_SCENARIOS=100 (default)   how many
    NODED_SC005_SEED=N                    replay the scenarios of an earlier run
                                          (the seed is in every test id: sc005-s<seed>-...)
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass

import pytest

from noded.contract.client import Client

from .conftest import Sessions, ended, wait_for
from .load_support import all_leftovers, cpu_hogs, env_int, session_leftovers

SCENARIOS = env_int("NODED_SC005_SCENARIOS", 100)
SEED = env_int("NODED_SC005_SEED", random.SystemRandom().randrange(1, 2**31))
NODES = ("src", "a", "b", "sink")
MOMENTS = ("init", "idle", "message", "backpressure")
HOWS = ("sigkill", "sigsegv", "exit", "exception", "oom")
# Any status but the worker's PEER_GONE (5), which says "a peer died first" and so defers
# the blame to a node that failed on its own.
EXIT_CODES = [c for c in range(1, 121) if c != 5]
VICTIM_MEMORY = "128M"  # the victim's memory_max in "oom" scenarios
DEADLINE = 60  # s: a hang guard only


@dataclass(frozen=True)
class Scenario:
    index: int
    victim: str
    at: str
    how: str
    after: float  # init / idle: seconds into setup / after READY
    nth: int  # message: which message
    code: int  # exit: the status

    @property
    def id(self) -> str:
        return f"sc005-s{SEED}-{self.index:03d}-{self.victim}-{self.at}-{self.how}"


def scenarios(seed: int, count: int) -> list[Scenario]:
    """``count`` scenarios drawn from ``seed``; an exception is a failure only in setup,
    and only a node that sends (not the sink) can be blocked on backpressure."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        how = rng.choice(HOWS)
        at = "init" if how == "exception" else rng.choice(MOMENTS)
        victim = rng.choice(NODES[:-1] if at == "backpressure" else NODES)
        out.append(
            Scenario(
                i,
                victim,
                at,
                how,
                after=round(rng.uniform(0.0, 0.5), 3),
                nth=rng.randint(1, 10),
                code=rng.choice(EXIT_CODES),
            )
        )
    return out


def pipeline(s: Scenario) -> str:
    """The session of scenario ``s``: data flows for "message" (20 ms apart) and
    "backpressure" (as fast as credits come, into a sink that takes 1 s per message)."""
    count = {"message": 50, "backpressure": 1000}.get(s.at, 0)
    params = {
        "src": {"count": count, "interval": 0.02 if s.at == "message" else 0.0, "size": 4096},
        "a": {},
        "b": {},
        "sink": {"ms": 1000.0} if s.at == "backpressure" else {},
    }
    params[s.victim].update({"crash": s.how, "at": s.at, "after": s.after, "nth": s.nth, "code": s.code})
    parts = [f'name = "sc005_{s.index}"', "[dataplane]\ndepth = 2"]
    for i, node in enumerate(NODES):
        table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in params[node].items())
        inputs = json.dumps([f"{NODES[i - 1]}.out"] if i else [])
        parts.append(f'[[nodes]]\nid = "{node}"\nclass = "chaos"\nparams = {{ {table} }}\ninputs = {inputs}')
        if node == s.victim and s.how == "oom":
            parts.append(f'memory_max = "{VICTIM_MEMORY}"')
    return "\n".join(parts) + "\n"


def check_reason(s: Scenario, failure) -> None:  # type: ignore[no-untyped-def]
    reason = failure.reason
    if s.how == "sigkill":
        assert failure.signal == "SIGKILL" and "memory" not in reason, reason
    elif s.how == "sigsegv":
        assert failure.signal == "SIGSEGV", reason
    elif s.how == "exit":
        assert failure.exit_status == s.code and f"status {s.code}" in reason, reason
    elif s.how == "exception":
        assert failure.exit_status == 1 and f"chaos: exception in setup of {s.victim}" in reason, reason
    else:
        assert "out of memory" in reason and "128 MiB" in reason, reason


ALL = scenarios(SEED, SCENARIOS)


def test_scenarios_cover_every_moment_and_way() -> None:
    if SCENARIOS < 50:
        pytest.skip("too few scenarios to expect every combination")
    assert {s.at for s in ALL} == set(MOMENTS) and {s.how for s in ALL} == set(HOWS)
    assert {s.victim for s in ALL} == set(NODES)
    assert scenarios(SEED, SCENARIOS) == ALL  # the seed reproduces them


@pytest.mark.parametrize("s", ALL, ids=[s.id for s in ALL])
def test_crash_is_detected_named_and_cleaned_up(client: Client, sessions: Sessions, s: Scenario) -> None:
    replay = f"(replay: NODED_SC005_SEED={SEED} tests/run tests/integration/test_crash_scenarios.py -k {s.id})"
    # What an earlier scenario left failed that scenario (and fails the suite at its end);
    # counted here too, it would fail every later scenario and hide which one left it.
    earlier = set(all_leftovers())
    # OOM versus plain SIGKILL is decided while CPU hogs (one per core plus one) load the
    # machine: the verdict must not depend on how late the daemon's loop runs.
    with cpu_hogs() if s.how in ("oom", "sigkill") else contextlib.nullcontext():
        info = sessions.create(client, pipeline(s))
        done = wait_for(client, info.sid, ended, DEADLINE)
    assert done.state == "failed", f"{s} ended {done.state} {replay}"
    assert done.failure is not None and done.failure.node == s.victim, f"{s}: {done.failure} {replay}"
    check_reason(s, done.failure)
    assert session_leftovers(info.sid) == [], f"{s} {replay}"
    assert [x for x in all_leftovers() if x not in earlier] == [], f"{s} {replay}"
