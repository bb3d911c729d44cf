"""Who may do what with a session (noded.daemon.owners), with the accounts this machine has."""

from __future__ import annotations

import os
import pwd

import pytest

from noded.daemon.owners import ROOT, Peer, authorize, run_as
from noded.errors import NotPermitted

NOBODY = pwd.getpwnam("nobody")
PEER = Peer(pid=os.getpid(), uid=NOBODY.pw_uid, gid=NOBODY.pw_gid)


def test_root_runs_as_a_dynamic_user_or_the_pipelines_account() -> None:
    assert run_as(ROOT, None, "noded").user is None
    assert run_as(ROOT, "nobody", "noded").user == "nobody"
    with pytest.raises(NotPermitted, match="user 'nosuch-xyz' .* does not exist"):
        run_as(ROOT, "nosuch-xyz", "noded")
    with pytest.raises(NotPermitted, match="may not run as root"):
        run_as(ROOT, "root", "noded")


def test_only_root_may_name_another_user() -> None:
    with pytest.raises(NotPermitted, match="only root may run a pipeline as another user"):
        run_as(PEER, "daemon", "noded")


def test_a_user_outside_the_group_may_not_create() -> None:
    with pytest.raises(NotPermitted, match="is not in group 'nosuch-group-xyz'"):
        run_as(PEER, None, "nosuch-group-xyz")


def test_a_member_runs_as_themselves() -> None:
    group = pwd.getpwuid(NOBODY.pw_uid).pw_name
    member = Peer(pid=0, uid=NOBODY.pw_uid, gid=NOBODY.pw_gid)
    import grp

    name = grp.getgrgid(NOBODY.pw_gid).gr_name  # the user's own primary group counts
    assert run_as(member, None, name).user == group


def test_authorize() -> None:
    authorize(ROOT, NOBODY.pw_uid, "stop", "s1")
    authorize(PEER, NOBODY.pw_uid, "stop", "s1")
    with pytest.raises(NotPermitted, match="session s1 belongs to 'root': 'nobody' may not stop it"):
        authorize(PEER, 0, "stop", "s1")
