"""A local client joins a sandboxed session as the session's own user.

The nodes of a session run as its dynamic user (``User=noded-<sid>``,
``DynamicUser=yes``), and iceoryx2 makes every file and shared-memory segment
owner-only; once the first node is up, the daemon hands the session's iceoryx2 root to
that user (``noded.daemon.resources.seal_session``), which tells a client whom to act as. A root
client could open the nodes' files anyway
(CAP_DAC_OVERRIDE), but the nodes could not open the ones the client creates (its
node, inbox, external-input services, connections): so the client makes its iceoryx2
calls with its *file-system* uid and gid set to the session's (``setfsuid(2)``), and
everything it creates belongs to the session's user, as if a node had made it.

``setfsuid`` changes the calling thread only, and while it is not 0 the kernel drops
the thread's file capabilities: the call runs exactly as the session's user would, and
the thread is root again afterwards (reading and writing the user's own files as root).
A client that is neither root nor the session's user cannot join.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from noded.errors import WorkerError

P = ParamSpec("P")
R = TypeVar("R")

_libc = ctypes.CDLL(None, use_errno=True)
_setfsuid, _setfsgid = _libc.setfsuid, _libc.setfsgid
_QUERY = ctypes.c_uint(-1 & 0xFFFFFFFF).value  # setfs[ug]id(-1) changes nothing and returns the current id


class JoinError(WorkerError):
    """This process cannot take part in the session's data plane."""


class SessionUser:
    """The session's uid and gid, taken on by the calling thread while in ``joined()``."""

    def __init__(self, uid: int, gid: int) -> None:
        self.uid, self.gid = uid, gid

    @classmethod
    def of_root(cls, root: str | os.PathLike[str]) -> SessionUser | None:
        """Whom a client must act as to use the session whose iceoryx2 root is ``root``
        (once its first node is up, the daemon hands the root to the session's user);
        None when this process is that user."""
        try:
            st = os.stat(root)
        except OSError as exc:
            raise JoinError(
                f"cannot use the session's iceoryx2 root {os.fspath(root)}: {exc.strerror}",
                hint="is the session still running ('nodectl session list')?",
            ) from exc
        euid = os.geteuid()
        if st.st_uid == 0:
            raise JoinError(
                f"the session's nodes are not up yet ({os.fspath(root)} is not their user's yet)",
                hint="attach once the session is ready",
            )
        if st.st_uid == euid:
            return None
        if euid != 0:
            raise _cannot_join(st.st_uid, euid)
        user = cls(st.st_uid, st.st_gid)
        user.check()
        return user

    def check(self) -> None:
        """Raise JoinError unless this thread can take on the user (done once, up front)."""
        with self.joined():
            if _setfsuid(_QUERY) != self.uid:
                raise JoinError(f"cannot act as the session's user (uid {self.uid})", hint="attach as root")

    @contextmanager
    def joined(self) -> Iterator[None]:
        old_gid, old_uid = _setfsgid(self.gid), _setfsuid(self.uid)
        try:
            yield
        finally:
            _setfsuid(old_uid)
            _setfsgid(old_gid)


def _cannot_join(owner: int, euid: int) -> JoinError:
    return JoinError(
        f"the session's shared memory belongs to its sandboxed user (uid {owner}); this process (uid {euid}) "
        "cannot open it",
        hint="attach as root (e.g. 'sudo nodectl run ...'): only root can join a session's user",
    )


def as_session_user(method: Callable[P, R]) -> Callable[P, R]:
    """Run a method of an object with a ``session_user`` attribute as that user."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        user: SessionUser | None = getattr(args[0], "session_user", None)
        if user is None:
            return method(*args, **kwargs)
        # joined(), spelt out: this wraps every send and receive of a client.
        old_gid, old_uid = _setfsgid(user.gid), _setfsuid(user.uid)
        try:
            return method(*args, **kwargs)
        finally:
            _setfsuid(old_uid)
            _setfsgid(old_gid)

    return wrapper
