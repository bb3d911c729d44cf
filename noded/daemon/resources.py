"""A session's files: its iceoryx2 root under /run/noded/iox2/ and its /dev/shm segments.

The daemon creates the root before the session's units start (their sandbox makes it
the one writable place besides /dev/shm) and removes everything once the last unit
is gone, including what SIGKILLed nodes could not clean up themselves. At start it
removes whatever an earlier daemon left.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from noded.contract.sessionfiles import remove_session_resources, session_prefix

SHM = Path("/dev/shm")


def iox2_base(runtime_dir: Path) -> Path:
    """The default iceoryx2 root (``Config.iox2_root``, ``iceoryx2_root`` in noded.toml)."""
    return runtime_dir / "iox2"


def session_root(base: Path, sid: str) -> Path:
    """``base`` is the iceoryx2 root of all sessions (``Config.iox2_root``)."""
    return base / sid


def prepare_session(base: Path, sid: str) -> Path:
    """Create the session's root: sticky and writable for all (1777), as the nodes'
    dynamic uid is not known before they start (noded.daemon.sandbox says why that is safe).
    ``base`` is made traverse-only (0711): a node cannot list the sessions."""
    base.mkdir(mode=0o711, parents=True, exist_ok=True)
    base.chmod(0o711)
    root = session_root(base, sid)
    root.mkdir(exist_ok=True)
    root.chmod(0o1777)
    return root


def seal_session(base: Path, sid: str, uid: int, gid: int) -> bool:
    """Hand the session's root to its nodes' dynamic user, private (0700); True when it
    changed. Called once the first node is up, with the uid systemd reports for it
    (not the owner of a file in the root: until now anyone could have made that)."""
    root = session_root(base, sid)
    current = os.lstat(root)
    if not stat.S_ISDIR(current.st_mode):
        raise OSError(f"{root} is not a directory")
    if (current.st_uid, current.st_gid, stat.S_IMODE(current.st_mode)) == (uid, gid, 0o700):
        return False
    os.chown(root, uid, gid, follow_symlinks=False)
    os.chmod(root, 0o700)
    return True


def remove_session(base: Path, sid: str, shm: Path = SHM) -> list[str]:
    """Remove the session's root and shared-memory segments; returns what was removed."""
    return remove_session_resources(session_root(base, sid), session_prefix(sid), str(shm))


def remove_leftovers(base: Path, shm: Path = SHM) -> list[str]:
    """Everything of sessions an earlier daemon ran (call before any session starts)."""
    removed: list[str] = []
    sids = {p.name for p in base.iterdir() if p.is_dir()} if base.exists() else set()
    sids |= {p.name.split("_")[1] for p in shm.glob("noded_*_*")}
    for sid in sorted(sids):
        removed += remove_session(base, sid, shm)
    return removed
