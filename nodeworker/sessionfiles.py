"""Removing a session's iceoryx2 files: no iceoryx2 needed, so the daemon can use it too."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("noded.channels")


def remove_session_resources(root: str | os.PathLike[str], prefix: str, shm: str = "/dev/shm") -> list[str]:
    """Remove a session's iceoryx2 files: everything under ``root`` (the directory too)
    and every ``shm`` entry whose name starts with ``prefix``, whatever state the nodes
    that made them were in (SIGKILLed nodes leave theirs: trap 8). Call it only once no
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
