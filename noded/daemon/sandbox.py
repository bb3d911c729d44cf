"""Pure: the sandbox of a node's transient service, as StartTransientUnit properties.

Every node of a session runs as the session's own dynamic user (``User=noded-<sid>``
with ``DynamicUser=yes``): systemd allocates one uid for the name while any unit that
uses it runs, so the nodes of a session share a uid and different sessions get
different ones. iceoryx2 creates its files and /dev/shm segments owner-only (0600,
directories 0750; measured), so that uid is what lets a session's nodes open each
other's channels and what keeps every other session's nodes out.

The session's iceoryx2 root, ``/run/noded/iox2/<sid>``, is the one writable directory
of its units (``ReadWritePaths=``; everything else under / is read-only). The daemon
creates it sticky and writable for all (1777) because the uid is not known before the
first unit starts; no other session can write there (it is read-only in their mount
namespaces) or read what iceoryx2 makes there (owner-only), and once the first node is
up the daemon makes it that uid's alone (``noded.daemon.resources.seal_session``). ``RuntimeDirectory=``
would chown it, but with ``DynamicUser=`` systemd 252 moves it below /run/private
(0700, root's), where a client acting as the session's user cannot reach it. Local
clients join the session as its uid (``noded.dataplane.sessionuser``).

Everything else is read-only (``ProtectSystem=strict``) or hidden: home directories,
other processes, devices, kernel settings; no capabilities, no network (a private
network namespace with only loopback, and no AF_INET sockets) unless the pipeline
grants it to the node, and a system-call allow-list. ``DynamicUser=`` implies
``RemoveIPC=yes``: when the session's last unit stops, systemd removes the POSIX
shared memory the uid still owns (the daemon removes the rest, see noded.daemon.resources).
"""

from __future__ import annotations

import socket
from pathlib import PurePosixPath
from typing import Any

from noded.pipeline.devices import cpu_mask
from noded.pipeline.grants import HOME_DIRS, NodeGrants, is_below
from noded.pipeline.usercode import hidden_parents

Property = tuple[str, str, Any]


# @system-service minus what a node never needs; denied calls fail with EPERM
# rather than killing the process (a library probing for a feature gets an error).
SYSCALL_ALLOW = ["@system-service"]
SYSCALL_DENY = ["@privileged", "@resources"]
EPERM = 1
# IPAddressDeny=any: (address family, address, prefix length).
IP_ANY = [(socket.AF_INET, b"\0" * 4, 0), (socket.AF_INET6, b"\0" * 16, 0)]


def dynamic_user(sid: str) -> str:
    """The user name every node of session ``sid`` runs as."""
    return f"noded-{sid}"


def identity(sid: str, user: str | None) -> list[Property]:
    """``DynamicUser=`` with the session's name, or a real account. Not ``RemoveIPC=``
    for a real account: that would remove its IPC outside noded too; the daemon removes
    the session's own files and segments (noded.daemon.resources)."""
    if user is None:
        return [("DynamicUser", "b", True), ("User", "s", dynamic_user(sid))]
    return [("User", "s", user)]


def sandbox_properties(
    sid: str,
    iox2_root: PurePosixPath,
    sandbox: NodeGrants = NodeGrants(),
    keep: tuple[str, ...] = (),
    user: str | None = None,
) -> list[Property]:
    """The identity and sandbox properties of one node's service; ``keep``: paths the
    node must see whatever code it is given (its interpreter); ``user``: a real account
    to run as (the session's owner, or the pipeline's ``user``) instead of the session's
    dynamic user, with the same sandbox."""
    families = ["AF_UNIX", "AF_INET", "AF_INET6"] if sandbox.network else ["AF_UNIX"]
    under_home = any(is_below(PurePosixPath(p), HOME_DIRS) for p in (*sandbox.read_only_paths, *sandbox.code))
    props: list[Property] = [
        *identity(sid, user),
        ("ReadWritePaths", "as", [str(iox2_root).encode()]),
        ("UMask", "u", 0o077),
        ("ProtectSystem", "s", "strict"),
        ("ProtectHome", "s", "tmpfs" if under_home else "yes"),
        ("PrivateTmp", "b", True),
        ("PrivateDevices", "b", True),
        ("PrivateNetwork", "b", not sandbox.network),
        ("PrivateUsers", "b", True),
        ("ProtectProc", "s", "invisible"),
        ("NoNewPrivileges", "b", True),
        ("CapabilityBoundingSet", "t", 0),
        ("AmbientCapabilities", "t", 0),
        ("RestrictAddressFamilies", "(bas)", (True, families)),
        ("SystemCallFilter", "(bas)", (True, SYSCALL_ALLOW)),
        ("SystemCallFilter", "(bas)", (False, SYSCALL_DENY)),
        ("SystemCallErrorNumber", "i", EPERM),
        ("SystemCallArchitectures", "as", ["native"]),
        ("RestrictNamespaces", "t", 0),  # the namespace types allowed: none
        ("LockPersonality", "b", True),
        ("ProtectKernelTunables", "b", True),
        ("ProtectKernelModules", "b", True),
        ("ProtectKernelLogs", "b", True),
        ("ProtectControlGroups", "b", True),
        ("ProtectClock", "b", True),
        ("ProtectHostname", "b", True),
        ("RestrictRealtime", "b", True),
        ("RestrictSUIDSGID", "b", True),
        # numpy, onnxruntime, pocketsphinx, iceoryx2, ctypes callbacks and espeak-ng work
        # without writable+executable memory (benchmarks/sandbox_check.py); cffi's
        # old-style ffi.callback() does not, nor do JIT compilers (oneDNN in CTranslate2):
        # `jit = true` lifts it for that node only.
        ("MemoryDenyWriteExecute", "b", not sandbox.jit),
        ("KeyringMode", "s", "private"),
        ("DevicePolicy", "s", "closed"),
    ]
    if not sandbox.network:
        props.append(("IPAddressDeny", "a(iayu)", IP_ANY))
    if sandbox.read_only_paths:
        # (source, destination, ignore a missing source, flags): a missing model is an
        # error the pipeline check reports before any unit starts.
        props.append(("BindReadOnlyPaths", "a(ssbt)", [(p, p, False, 0) for p in sandbox.read_only_paths]))
    props.extend(user_code_properties(sandbox.code, keep))
    props.extend(device_properties(sandbox))
    return props


def device_properties(grants: NodeGrants) -> list[Property]:
    """Granted device nodes: allowed read-write by the device cgroup (``DeviceAllow=``,
    every other device stays closed) and bound into the node's private /dev; the node
    joins their groups. Granted CPUs: the cgroup's cpuset (``AllowedCPUs=``, cgroup v2)
    and the process's affinity (``CPUAffinity=``, any hierarchy)."""
    props: list[Property] = []
    if grants.devices:
        props.append(("DeviceAllow", "a(ss)", [(d, "rw") for d in grants.devices]))
        props.append(("BindPaths", "a(ssbt)", [(d, d, False, 0) for d in grants.devices]))
    if grants.device_groups:
        props.append(("SupplementaryGroups", "as", list(grants.device_groups)))
    if grants.environment:
        props.append(("Environment", "as", [e.encode() for e in grants.environment]))
    if grants.cpus:
        mask = cpu_mask(grants.cpus)
        props.append(("AllowedCPUs", "ay", mask))
        props.append(("CPUAffinity", "ay", mask))
    return props


def user_code_properties(code: tuple[str, ...], keep: tuple[str, ...] = ()) -> list[Property]:
    """The node's own code, read-only at its own path, and nothing next to it: the
    folder holding it is covered by an empty read-only tmpfs (systemd mounts the binds
    on top, deeper paths last). Under /home, ProtectHome=tmpfs hides the rest already."""
    if not code:
        return []
    props: list[Property] = []
    hidden = hidden_parents(code, keep)
    if hidden:
        props.append(("TemporaryFileSystem", "a(ss)", [(p, "ro,mode=0755") for p in hidden]))
    props.append(("BindReadOnlyPaths", "a(ssbt)", [(p, p, False, 0) for p in code]))
    return props
