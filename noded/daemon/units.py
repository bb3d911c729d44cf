"""Pure builders of unit names and transient-unit properties: no bus here."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import noded
from noded.daemon.config import Config
from noded.daemon.sandbox import sandbox_properties
from noded.pipeline.grants import NodeGrants

UNIT_PREFIX = "noded-"
PARENT_SLICE = "noded.slice"

# (name, D-Bus signature, value): what StartTransientUnit takes, one per property.
Property = tuple[str, str, Any]

USEC = 1_000_000
# Every node's environment; one BLAS/OpenMP thread (see service_properties).
NODE_ENV = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def slice_name(sid: str) -> str:
    # A dash in a slice name is a level of the tree: noded-<sid>.slice is a child
    # of noded.slice, which is why session ids have no dashes.
    return f"{UNIT_PREFIX}{sid}.slice"


def service_name(sid: str, node_id: str) -> str:
    return f"{UNIT_PREFIX}{sid}-{node_id}.service"


def cgroup_path(sid: str, unit: str) -> str:
    """The unit's cgroup, relative to systemd's root, as systemd names it."""
    return f"/{PARENT_SLICE}/{slice_name(sid)}/{unit}"


def slice_properties(sid: str, pipeline_name: str) -> list[Property]:
    return [
        ("Description", "s", f"noded session {sid} ({pipeline_name})"),
        ("CollectMode", "s", "inactive-or-failed"),
        ("MemoryAccounting", "b", True),
        ("TasksAccounting", "b", True),
    ]


def interpreter_paths(python: str) -> tuple[str, ...]:
    """What a node's interpreter needs to see: its venv, the Python it links to, and
    where noded itself is imported from."""
    path = Path(python)
    package = Path(noded.__file__).parent.parent
    return (str(path.parent.parent), str(path.resolve().parent.parent), str(package))


def worker_argv(config: Config, spec_json: str, python: str | None = None) -> list[str]:
    """The worker's command line: the node's own ``python`` when the pipeline names one."""
    return [python or config.worker_python, "-m", "noded.worker", "--spec", spec_json]


def service_properties(
    *,
    sid: str,
    node_id: str,
    node_class: str,
    argv: list[str],
    config: Config,
    iox2_root: Path,
    memory_max: int | None = None,
    cpu_quota: float | None = None,
    tasks_max: int | None = None,
    watchdog: float | None = None,
    sandbox: NodeGrants = NodeGrants(),
    env: tuple[tuple[str, str], ...] = (),
    oom_check: list[str] | None = None,
    user: str | None = None,
) -> list[Property]:
    """Everything a node's transient service is started with."""
    props: list[Property] = [
        ("Description", "s", f"noded node {node_id} ({node_class}) of session {sid}"),
        ("Type", "s", "notify"),
        ("NotifyAccess", "s", "main"),
        # ExecStart, not ExecStartEx with its no-env-expand flag: systemd 252 writes the
        # latter to /run/systemd/transient as "ExecStartEx=", which its own parser does
        # not know, so the first daemon-reload (apt runs one on most upgrades) left the
        # unit "bad-setting" and out of reach of StopUnit. systemd expands "$" in
        # ExecStart at exec time, and the spec JSON may hold "$" (params): "$$" is a
        # literal "$" (systemd.service(5), "Command lines").
        ("ExecStart", "a(sasb)", [(argv[0], [a.replace("$", "$$") for a in argv], False)]),
        ("Slice", "s", slice_name(sid)),
        # Failed units stay loaded (and readable over D-Bus) until the daemon has
        # read their Result and calls ResetFailedUnit; inactive ones go at once.
        ("CollectMode", "s", "inactive"),
        ("Restart", "s", "no"),
        ("LogExtraFields", "aay", [f"NODED_SESSION={sid}".encode(), f"NODED_NODE={node_id}".encode()]),
        ("SyslogIdentifier", "s", f"noded-{node_id}"),
        # One BLAS/OpenMP thread per node: parallelism comes from the nodes' processes,
        # and a pool per process would oversubscribe the cores (and costs ~50 ms of CPU
        # at import, measured in benchmarks/startup.py).
        (
            "Environment",
            "as",
            # The pipeline's env over noded's (systemd refuses a block that assigns a name
            # twice). Environment= set over D-Bus is not expanded: "$" and "%" reach the
            # node as written.
            [f"{name}={value}".encode() for name, value in {**NODE_ENV, **dict(env)}.items()],
        ),
        ("WorkingDirectory", "s", "/"),
        ("TimeoutStartUSec", "t", int(config.node_start_timeout * USEC)),
        ("TimeoutStopUSec", "t", int(config.node_stop_timeout * USEC)),
        ("MemoryAccounting", "b", True),
        ("CPUAccounting", "b", True),
        ("TasksAccounting", "b", True),
        # The session's dynamic user and the sandbox (noded.daemon.sandbox); writable: the
        # session's iceoryx2 root (noded.daemon.resources) and /dev/shm.
        *sandbox_properties(sid, PurePosixPath(iox2_root), sandbox, keep=interpreter_paths(argv[0]), user=user),
        # [node_sandbox] of noded.toml: more writable paths for every node (a model cache).
        *(
            [("ReadWritePaths", "as", [p.encode() for p in config.node_sandbox.read_write_paths])]
            if config.node_sandbox.read_write_paths
            else []
        ),
    ]
    # [node_sandbox] of noded.toml.
    if config.node_sandbox.read_only_paths:
        props.append(("ReadOnlyPaths", "as", [p.encode() for p in config.node_sandbox.read_only_paths]))
    if config.node_sandbox.private_network:
        props.append(("PrivateNetwork", "b", True))
    if memory_max is not None:
        props.append(("MemoryMax", "t", memory_max))
        # Without swap limits a node could page out instead of hitting its limit.
        props.append(("MemorySwapMax", "t", 0))
    if oom_check:
        # Read the cgroup's oom_kill counter after the main process died, while the cgroup
        # still exists (noded.daemon.oom); ignore-failure: its status is only read.
        # privileged ("+"): without the node's sandbox, which systemd would otherwise set
        # up again for this one grep, doubling a session's stop (5 nodes: 220 ms without
        # the check, 451 ms sandboxed, 267 ms privileged). ExecStopPostEx, as only it has
        # flags: after a daemon-reload systemd 252 ignores it (it cannot read back the
        # "ExecStopPostEx=" it wrote; see ExecStart above): the eventfd, if any, decides then.
        props.append(
            (
                "ExecStopPostEx",
                "a(sasas)",
                [(oom_check[0], oom_check, ["ignore-failure", "privileged"])],
            )
        )
    if cpu_quota is not None:
        props.append(("CPUQuotaPerSecUSec", "t", int(cpu_quota * USEC)))
    if tasks_max is not None:
        props.append(("TasksMax", "t", tasks_max))
    if watchdog is not None:
        # The worker feeds it (noded.worker.notify.Watchdog); a node that stops feeding it
        # is ended with SIGABRT (WatchdogSignal='s default), Result=watchdog.
        props.append(("WatchdogUSec", "t", int(watchdog * USEC)))
    return props
