"""What a pipeline file may grant one node beyond the default sandbox, and the checks on it.

Pure and shared: the pipeline checks use it to validate a file, the daemon's sandbox
(``noded.daemon.sandbox``) to turn grants into unit properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

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
    code: tuple[str, ...] = ()  # the node's own code files and folders, visible read-only, alone


def is_below(path: PurePosixPath, parents: tuple[PurePosixPath, ...]) -> bool:
    return any(path == parent or parent in path.parents for parent in parents)


def check_read_only_path(text: str) -> str:
    """A ``read_only_paths`` entry, normalised; ValueError with the reason otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a non-empty absolute path")
    if "\0" in text or "\n" in text:
        raise ValueError(f"{text!r} contains a NUL or newline")
    path = PurePosixPath(text)
    if not path.is_absolute():
        raise ValueError(f"{text!r} is not an absolute path")
    if ".." in path.parts or "." in text.split("/"):
        raise ValueError(f"{text!r} contains '.' or '..'")
    if path == PurePosixPath("/"):
        raise ValueError("'/' is readable already (ProtectSystem=strict): name the model's directory")
    if is_below(path, FORBIDDEN_READ_ONLY):
        raise ValueError(f"{text!r} is below {', '.join(map(str, FORBIDDEN_READ_ONLY))}, which nodes may not be given")
    return str(path)
