"""Users' own node code: a class in a file (``class = "nodes/asr.py:Transcriber"``) or
in folders put on the node's ``sys.path`` (``code = ["./nodes"]``, ``class = "asr:T"``).

Pure: paths are resolved against the folder the client sent with the pipeline (the
pipeline file's folder, or its current directory for a pipeline read from stdin) and
checked; ``noded.pipeline.checks`` looks for the class in the source without running it,
the daemon's sandbox binds the paths read-only into the node's mount namespace and hides
what sits next to them, and the worker puts ``sys_path`` first on its ``sys.path``.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from noded.pipeline.grants import FORBIDDEN_READ_ONLY, HOME_DIRS, is_below

# Never given to a node as code, nor hidden behind a tmpfs to show the code alone:
# what every node needs (the interpreter, its libraries, the system's configuration).
SYSTEM_DIRS = tuple(
    PurePosixPath(p) for p in ("/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/var", "/run")
)
# Code below these is the system's, readable by every node anyway: nothing is hidden
# around it (a tmpfs over /usr/lib or /var/lib would take what nodes run on).
SYSTEM_TREES = tuple(PurePosixPath(p) for p in ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/var", "/boot"))


def is_file_class(name: str) -> bool:
    """``class`` names a file ("nodes/asr.py:Transcriber") rather than a module."""
    module = name.partition(":")[0]
    return "/" in module or module.endswith(".py")


def resolve_path(text: str, base_dir: str | None) -> str:
    """An absolute, normalised path for a path written in a pipeline; ValueError if it
    cannot be one."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a non-empty path")
    if "\0" in text or "\n" in text or ":" in text:
        raise ValueError(f"{text!r} contains a NUL, a newline or a ':'")
    if not os.path.isabs(text):
        if base_dir is None or not os.path.isabs(base_dir):
            raise ValueError(f"{text!r} is relative, and the client sent no folder to resolve it against")
        text = os.path.join(base_dir, text)
    path = PurePosixPath(os.path.normpath(text))
    if path in SYSTEM_DIRS:
        raise ValueError(f"{str(path)!r} is a system directory: name the folder that holds the node's code")
    if is_below(path, FORBIDDEN_READ_ONLY):
        raise ValueError(
            f"{str(path)!r} is below {', '.join(map(str, FORBIDDEN_READ_ONLY))}, which nodes may not be given"
        )
    return str(path)


def check_code_dir(text: str, base_dir: str | None) -> str:
    """A ``code`` entry: an existing folder, resolved."""
    path = resolve_path(text, base_dir)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} does not exist")
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a folder (name a file's class as 'file.py:Class')")
    return path


def check_class_file(text: str, base_dir: str | None) -> str:
    """The file of a ``"file.py:Class"`` class, resolved: an existing Python file."""
    if not text.endswith(".py"):
        raise ValueError(f"{text!r} is not a Python file: its name must end in .py")
    path = resolve_path(text, base_dir)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} does not exist")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a file")
    module = PurePosixPath(path).stem
    if not module.isidentifier():
        raise ValueError(f"{path!r}: {module!r} is not a Python module name (use letters, digits, underscores)")
    return path


def hidden_parents(binds: tuple[str, ...], keep: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The folders to cover with an empty read-only tmpfs so that only ``binds`` show
    through (systemd mounts them back on top): for each bind, its highest ancestor that
    is not a system folder and holds no path of ``keep`` (the interpreter, noded).
    Under /home, /root and /run/user, ProtectHome=tmpfs hides the rest already."""
    keep_paths = [PurePosixPath(k) for k in keep]
    hidden: list[PurePosixPath] = []
    for bind in map(PurePosixPath, binds):
        if is_below(bind, HOME_DIRS) or is_below(bind, SYSTEM_TREES):
            continue
        for ancestor in reversed(bind.parents):
            if ancestor in SYSTEM_DIRS or any(is_below(k, (ancestor,)) for k in keep_paths):
                continue
            if ancestor not in hidden:
                hidden.append(ancestor)
            break
    # One below another is covered by it already (its binds are remade inside).
    return tuple(str(h) for h in hidden if not any(o != h and is_below(h, (o,)) for o in hidden))
