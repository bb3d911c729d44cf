"""A session's files: its iceoryx2 root under /run/noded/iox2/ and its /dev/shm segments.

The daemon creates the root before the session's units start (their sandbox makes it
the one writable place besides /dev/shm) and removes everything once the last unit
is gone, including what SIGKILLed nodes could not clean up themselves. At start it
removes whatever an earlier daemon left.
"""

from __future__ import annotations

from pathlib import Path

from nodeworker.sessionfiles import remove_session_resources

SHM = Path("/dev/shm")


def iox2_base(runtime_dir: Path) -> Path:
    """The default iceoryx2 root (``Config.iox2_root``, ``iceoryx2_root`` in noded.toml)."""
    return runtime_dir / "iox2"


def session_root(base: Path, sid: str) -> Path:
    """``base`` is the iceoryx2 root of all sessions (``Config.iox2_root``)."""
    return base / sid


def session_prefix(sid: str) -> str:
    return f"noded_{sid}_"


def prepare_session(base: Path, sid: str) -> Path:
    root = session_root(base, sid)
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    return root


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
