"""Pure checks of a node's runtime keys: ``python``, ``env`` and ``jit``.

``python`` names the interpreter of the node's worker (a venv's ``bin/python`` with noded
installed), so that nodes with heavy or conflicting dependencies (the models) run from
their own environment.  The node runs as the session's dynamic user, which owns nothing:
the interpreter is usable only when every directory on its path is searchable and the file
itself readable and executable by "others".  Whether noded is installed in it, in a version
that speaks this daemon's wire format and worker spec, is asked of the interpreter itself
when a session is created (``noded.daemon.interpreter``).

``env`` values go to systemd as ``Environment=`` over D-Bus, which never expands ``$`` or
``%``: a value reaches the node exactly as written.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import PurePosixPath

from noded.pipeline.grants import absolute_path

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Set by systemd or noded for the worker itself; a pipeline may not change them.
RESERVED_ENV = frozenset({"NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "PYTHONHOME", "PYTHONPATH"})
RESERVED_ENV_PREFIXES = ("NODED_", "LISTEN_")
MAX_ENV_VALUE = 32 * 1024


def check_env(name: str, value: str) -> tuple[str, str]:
    """One ``env`` entry; ValueError with the reason otherwise."""
    if ENV_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a variable name: a letter or '_', then letters, digits or '_'")
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        raise ValueError(f"{name!r} is set by systemd or noded and may not be changed")
    if not isinstance(value, str):
        raise ValueError(f"the value of {name!r} must be a string")
    if "\0" in value:
        raise ValueError(f"the value of {name!r} contains a NUL")
    if len(value.encode()) > MAX_ENV_VALUE:
        raise ValueError(f"the value of {name!r} is longer than {MAX_ENV_VALUE} bytes")
    return name, value


def check_python(text: str) -> str:
    """A ``python`` path a node's dynamic user can run; ValueError with the reason otherwise.

    Reads the file system (the path must exist on the daemon's machine)."""
    path = absolute_path(text, "the absolute path of a Python interpreter")
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise ValueError(f"{text!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{text!r} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{text!r} is not a file")
    if not os.access(text, os.X_OK):
        raise ValueError(f"{text!r} is not executable")
    # The node's dynamic user is "other" to every file: follow the links and check each hop.
    for hop in _resolution(text):
        for parent in reversed(PurePosixPath(hop).parents):
            mode = os.stat(parent).st_mode
            if not mode & stat.S_IXOTH:
                raise ValueError(
                    f"{text!r} is not readable by the node's user: {str(parent)!r} is not searchable by others "
                    f"(mode {stat.S_IMODE(mode):o})"
                )
    real = os.path.realpath(text)
    mode = os.stat(real).st_mode
    if mode & (stat.S_IROTH | stat.S_IXOTH) != stat.S_IROTH | stat.S_IXOTH:
        raise ValueError(
            f"{text!r} is not readable by the node's user: {real!r} is mode {stat.S_IMODE(mode):o}, "
            "not readable and executable by others"
        )
    return str(path)


def _resolution(text: str) -> list[str]:
    """The path and each symlink target it resolves through, in order."""
    hops = [text]
    seen = {text}
    current = text
    while os.path.islink(current):
        target = os.path.join(os.path.dirname(current), os.readlink(current))
        current = os.path.normpath(target)
        if current in seen:
            break
        seen.add(current)
        hops.append(current)
    return hops
