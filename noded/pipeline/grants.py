"""What a pipeline file may grant one node beyond the default sandbox, and the checks on it.

Pure and shared: the pipeline checks use it to validate a file, the daemon's sandbox
(``noded.daemon.sandbox``) to turn grants into unit properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from noded.pipeline.devices import format_cpus

# Read-only binds below these need ProtectHome=tmpfs: with ProtectHome=yes the
# directories are made inaccessible, and a node could not traverse them to the bind.
HOME_DIRS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
# Not granted to anyone: kernel interfaces, other sessions, the daemon's socket.
FORBIDDEN_READ_ONLY = (
    PurePosixPath("/proc"),
    PurePosixPath("/sys"),
    PurePosixPath("/dev"),
    PurePosixPath("/run/noded"),
)


@dataclass(frozen=True, slots=True)
class NodeGrants:
    """What a pipeline file may grant one node beyond the default sandbox."""

    network: bool = False  # AF_INET/AF_INET6 sockets and the host's network
    read_only_paths: tuple[str, ...] = ()  # absolute paths made visible read-only (models)
    jit: bool = False  # writable-and-executable memory (MemoryDenyWriteExecute=no): JIT compilers
    code: tuple[str, ...] = ()  # the node's own code files and folders, visible read-only, alone
    devices: tuple[str, ...] = ()  # device nodes it may open read-write (devices, gpu)
    device_groups: tuple[str, ...] = ()  # the groups owning them (SupplementaryGroups=)
    environment: tuple[str, ...] = ()  # NAME=value a grant sets (gpu: CUDA_VISIBLE_DEVICES)
    cpus: tuple[int, ...] = ()  # the CPUs it is pinned to; () for any


def describe(grants: NodeGrants) -> list[str]:
    """What a node is granted beyond the default sandbox, one "key=value" each (nodectl
    session show; docs/sandboxing.md gives each one's cost)."""
    out = ["network"] if grants.network else []
    out += ["jit"] if grants.jit else []
    out += [f"read_only_paths={p}" for p in grants.read_only_paths]
    out += [f"code={p}" for p in grants.code]
    out += [f"device={p}" for p in grants.devices]
    out += [f"env={e}" for e in grants.environment]
    if grants.cpus:
        out.append(f"cpus={format_cpus(grants.cpus)}")
    return out


def is_below(path: PurePosixPath, parents: tuple[PurePosixPath, ...]) -> bool:
    return any(path == parent or parent in path.parents for parent in parents)


def absolute_path(text: object, expected: str) -> PurePosixPath:
    """``text`` as an absolute path with no NUL or newline; ValueError saying ``expected``
    (what the key wants) when it is not a non-empty string."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected {expected}")
    if "\0" in text or "\n" in text:
        raise ValueError(f"{text!r} contains a NUL or newline")
    path = PurePosixPath(text)
    if not path.is_absolute():
        raise ValueError(f"{text!r} is not an absolute path")
    return path


def check_read_only_path(text: str) -> str:
    """A ``read_only_paths`` entry, normalised; ValueError with the reason otherwise."""
    path = absolute_path(text, "a non-empty absolute path")
    if ".." in path.parts or "." in text.split("/"):
        raise ValueError(f"{text!r} contains '.' or '..'")
    if path == PurePosixPath("/"):
        raise ValueError("'/' is readable already (ProtectSystem=strict): name the model's directory")
    if is_below(path, FORBIDDEN_READ_ONLY):
        raise ValueError(f"{text!r} is below {', '.join(map(str, FORBIDDEN_READ_ONLY))}, which nodes may not be given")
    return str(path)
