"""Who a client is (``SO_PEERCRED``), whom its session's nodes run as, and what it may do.

- A session belongs to the user who created it.
- Created by root: its nodes run as the session's dynamic user (``DynamicUser=``), or
  as the static account the pipeline names (``user = "asr"``, root only).
- Created by a member of the control socket's group (``noded``): its nodes run as that
  user (``User=``), so that user's own processes feed and read the session.
- Root may act on every session; any other user may list, show and watch every session
  but stop or attach to (feed, read) only their own.

Pure but for the password and group databases.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any

from noded.errors import NotPermitted

_UCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a control connection, as the kernel saw it at connect."""

    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


ROOT = Peer(pid=0, uid=0, gid=0)  # what a connection without credentials counts as (tests)


def peer_of(sock: socket.socket | Any) -> Peer:
    """``SO_PEERCRED`` of a connected Unix socket."""
    if sock is None:
        return ROOT
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid=pid, uid=uid, gid=gid)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True, slots=True)
class RunAs:
    """Whom a session's nodes run as: ``user`` None is the session's dynamic user."""

    owner: int  # uid of the client that created it
    user: str | None = None


def run_as(peer: Peer, pipeline_user: str | None, group: str) -> RunAs:
    """The identity of a new session's nodes; NotPermitted when the client may not."""
    if peer.is_root:
        if pipeline_user is not None:
            try:
                account = pwd.getpwnam(pipeline_user)
            except KeyError:
                raise NotPermitted(
                    f"user {pipeline_user!r} (the pipeline's 'user') does not exist",
                    hint="create the service account (useradd --system), or remove 'user' to run as a dynamic user",
                ) from None
            if account.pw_uid == 0:
                raise NotPermitted("a pipeline's nodes may not run as root", hint="name an unprivileged account")
        return RunAs(owner=0, user=pipeline_user)
    name = user_name(peer.uid)
    if pipeline_user is not None and pipeline_user != name:
        raise NotPermitted(
            f"only root may run a pipeline as another user ('user = {pipeline_user!r}'); you are {name!r}",
            hint="remove 'user' from the pipeline: your sessions run as you",
        )
    if not in_group(peer, name, group):
        raise NotPermitted(
            f"user {name!r} is not in group {group!r}, whose members may run sessions",
            hint=f"ask an administrator: usermod -aG {group} {name}",
        )
    return RunAs(owner=peer.uid, user=name)


def in_group(peer: Peer, name: str, group: str) -> bool:
    """The client is in ``group``: its process's groups (as the socket's 0660 saw them),
    else the group database."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    return peer.gid == gid or gid in (_process_groups(peer.pid) or os.getgrouplist(name, peer.gid))


def _process_groups(pid: int) -> list[int] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return [int(g) for g in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return None


def authorize(peer: Peer, owner: int, what: str, sid: str) -> None:
    """Raise NotPermitted unless ``peer`` may ``what`` ("stop", "attach to") session ``sid``."""
    if peer.is_root or peer.uid == owner:
        return
    raise NotPermitted(
        f"session {sid} belongs to {user_name(owner)!r}: {user_name(peer.uid)!r} may not {what} it",
        hint="list and show every session; stop, feed or read only your own (or as root)",
    )
