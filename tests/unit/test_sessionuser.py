"""A root client joins a session's user for its iceoryx2 calls (noded/dataplane/sessionuser.py).

Real credentials, no mocks: needs root (as tests/run is)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from noded.dataplane.sessionuser import JoinError, SessionUser, as_session_user

UID = 64999  # an unused uid in systemd's dynamic-user range

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes file-system credentials: needs root")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder the session's user can reach (pytest's own is below a 0700 one)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="noded-sessionuser-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def root_of(tmp_path: Path, owner: int) -> Path:
    """A session's iceoryx2 root: 1777 and root's until the daemon seals it for ``owner``."""
    root = tmp_path / "iox2"
    root.mkdir(parents=True)
    root.chmod(0o1777)
    if owner:
        os.chown(root, owner, owner)
        root.chmod(0o700)
    return root


def test_a_root_client_creates_files_as_the_sessions_user_and_is_root_again_after(tmp_path: Path) -> None:
    user = SessionUser.of_root(root_of(tmp_path, UID))
    assert user is not None and (user.uid, user.gid) == (UID, UID)

    class Client:
        session_user = user

        @as_session_user
        def create(self, path: Path) -> None:
            path.write_bytes(b"x")

        @as_session_user
        def fail(self) -> None:
            raise RuntimeError("boom")

    Client().create(tmp_path / "iox2" / "joined")
    with pytest.raises(RuntimeError):
        Client().fail()
    (tmp_path / "iox2" / "after").write_bytes(b"x")
    assert (tmp_path / "iox2" / "joined").stat().st_uid == UID
    assert (tmp_path / "iox2" / "after").stat().st_uid == 0  # restored, even after the exception


def test_while_joined_root_has_no_dac_override(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0o600)
    with SessionUser(UID, UID).joined(), pytest.raises(PermissionError):
        secret.read_bytes()
    assert secret.read_bytes() == b"x"


def test_a_client_waits_for_the_sessions_root_to_be_sealed(tmp_path: Path) -> None:
    with pytest.raises(JoinError, match="not up yet"):
        SessionUser.of_root(root_of(tmp_path / "a", 0))
    with pytest.raises(JoinError, match="still running"):
        SessionUser.of_root(tmp_path / "gone")
