"""Where the daemon and its clients meet: the configuration file and the control socket,
and the names every party uses for the session's client and for systemd's "infinity".

``configured_socket()`` is how a client (nodectl, ``noded.connect()``) finds the socket
the daemon listens on without importing the daemon: the ``socket`` (or ``runtime_dir``)
key of /etc/noded/noded.toml ($NODED_CONFIG), overridden by $NODED_SOCKET
($NODED_RUNTIME_DIR). The daemon reads the same keys (``noded.daemon.config``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/noded/noded.toml")
DEFAULT_RUNTIME_DIR = Path("/run/noded")
SOCKET_NAME = "control.sock"  # in the runtime directory, unless `socket` names another path
DEFAULT_SOCKET = DEFAULT_RUNTIME_DIR / SOCKET_NAME

CLIENT = "client"  # the session's client: producer of external inputs, consumer of outputs
UINT64_MAX = 2**64 - 1  # systemd's "not set" / "infinity" for its integer properties


def configured_socket(env: dict[str, str] | None = None) -> Path:
    """The control socket the daemon's configuration names; the default when the file is
    missing or unreadable, or names a relative path (the daemon says why, not the client)."""
    env = dict(os.environ) if env is None else env
    path = Path(env.get("NODED_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        doc = {}
    socket = env.get("NODED_SOCKET") or doc.get("socket")
    runtime_dir = env.get("NODED_RUNTIME_DIR") or doc.get("runtime_dir")
    if isinstance(socket, str) and socket.startswith("/"):
        return Path(socket)
    if isinstance(runtime_dir, str) and runtime_dir.startswith("/"):
        return Path(runtime_dir) / SOCKET_NAME
    return DEFAULT_SOCKET
