"""A node that tries what its sandbox should forbid, and reports what happened.

For the isolation tests: it runs in a real unit of a real session, so it meets exactly
the sandbox, identity and mount namespace every node gets. Each message it receives is
a JSON request naming what to try; it answers on its port "out" with a JSON object of
the same shape, each attempt's result "ok" or the errno name it failed with::

    {"read": [path, ...],          open the file and read a byte (a directory: list it)
     "write": [dir, ...],          create a new file in the directory, then remove it
     "shm": [name, ...],           open /dev/shm/<name> read-only and read-write, and map it;
                                   a name ending in "*" is a prefix: every match is tried
     "connect": [path, ...],       connect an AF_UNIX datagram socket to the path
     "sockets": ["AF_INET", ...],  create a socket of each address family
     "env": [name, ...],           the value of each environment variable (None: unset)
     "wx": true}                   map anonymous memory writable and executable (a JIT's need)

plus ``"uid"``: the uid the node runs as, and ``"cpus"``: the CPUs it may run on.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
from typing import Any

from noded import Message
from noded.node import Node

SHM = "/dev/shm"


def _outcome(action: Any, *args: Any) -> str:
    try:
        action(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def _read(path: str) -> None:
    if os.path.isdir(path):
        os.listdir(path)
        return
    with open(path, "rb", buffering=0) as f:
        f.read(1)


def _write(directory: str) -> None:
    path = os.path.join(directory, f".probe-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)


def _map(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        size = os.fstat(fd).st_size
        if size:
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if flags == os.O_RDWR else 0)
            mmap.mmap(fd, min(size, mmap.PAGESIZE), prot=prot).close()
    finally:
        os.close(fd)


def _map_wx() -> None:
    mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()


def _connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)


def _socket(family: str) -> None:
    socket.socket(getattr(socket, family), socket.SOCK_STREAM).close()


def _shm_names(patterns: list[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        if pattern.endswith("*"):
            names += sorted(n for n in os.listdir(SHM) if n.startswith(pattern[:-1]))
        else:
            names.append(pattern)
    return names


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Try everything ``request`` names (see the module docstring)."""
    shm = {}
    for name in _shm_names(request.get("shm", [])):
        path = os.path.join(SHM, name)
        shm[name] = {"read": _outcome(_map, path, os.O_RDONLY), "write": _outcome(_map, path, os.O_RDWR)}
    return {
        "uid": os.getuid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "read": {p: _outcome(_read, p) for p in request.get("read", [])},
        "write": {p: _outcome(_write, p) for p in request.get("write", [])},
        "shm": shm,
        "connect": {p: _outcome(_connect, p) for p in request.get("connect", [])},
        "sockets": {f: _outcome(_socket, f) for f in request.get("sockets", [])},
        "env": {name: os.environ.get(name) for name in request.get("env", [])},
        "wx": _outcome(_map_wx) if request.get("wx") else None,
    }


class Probe(Node):
    """Answers each JSON request with what its sandbox allowed (see the module docstring)."""

    def process(self, msg: Message) -> Any:
        request = msg.json
        if not isinstance(request, dict):
            raise ValueError("a probe request is a JSON object")
        return probe(request)
