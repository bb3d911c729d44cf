"""A session's iceoryx2 files: how they are named, and removing them.

No iceoryx2 needed, so the daemon can use it too; the topology names every service
with ``session_prefix`` so that cleanup finds them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

log = logging.getLogger("noded.channels")


def session_prefix(sid: str) -> str:
    """The iceoryx2 prefix of session ``sid``'s shared-memory files (the daemon plans it,
    nodes and clients use it, the daemon removes what it names)."""
    return f"noded_{sid}_"


def remove_session_resources(root: str | os.PathLike[str], prefix: str, shm: str = "/dev/shm") -> list[str]:
    """Remove a session's iceoryx2 files: everything under ``root`` (the directory too)
    and every ``shm`` entry whose name starts with ``prefix``, whatever state the nodes
    that made them were in (a SIGKILLed node's files stay until someone removes them:
    docs/dataplane.md, "Dead nodes' files stay until cleanup"). Call it only once no
    process uses the session. ``prefix`` must not be a prefix of another session's.
    Returns the removed paths. Needs no iceoryx2 call."""
    if not prefix:
        raise ValueError("an empty prefix would match every shared-memory segment")
    removed: list[str] = []
    base = Path(root)
    if base.exists():
        removed += [str(p) for p in base.rglob("*") if not p.is_dir()]
        shutil.rmtree(base, ignore_errors=True)
    for name in os.listdir(shm):
        if not name.startswith(prefix):
            continue
        entry = os.path.join(shm, name)
        try:
            os.unlink(entry)
            removed.append(entry)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", entry, e)
    return removed


def restrict_shared_files(prefix: str, shm: str = "/dev/shm") -> list[str]:
    """Make this user's ``shm`` entries starting with ``prefix`` owner-only.

    iceoryx2 makes every segment owner-only except its per-prefix node counter
    (``*.global_mgmt``, mode 0666): without this, a node of another session could open
    and overwrite that counter. Every user of a session runs as the session's uid, so
    0600 takes nothing from them. Returns the paths changed."""
    if not prefix:
        raise ValueError("an empty prefix would match every shared-memory segment")
    changed: list[str] = []
    uid = os.geteuid()
    for name in os.listdir(shm):
        if not name.startswith(prefix):
            continue
        entry = os.path.join(shm, name)
        try:
            st = os.lstat(entry)
            if stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_mode & 0o077:
                os.chmod(entry, 0o600)
                changed.append(entry)
        except OSError:
            pass  # gone, or not ours
    return changed
