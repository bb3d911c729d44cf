import os
import stat
from pathlib import Path

import pytest

from noded.daemon.resources import (
    prepare_session,
    remove_leftovers,
    remove_session,
    seal_session,
    session_prefix,
)


def test_session_files_are_removed_and_others_kept(tmp_path: Path) -> None:
    run, shm = tmp_path / "run", tmp_path / "shm"
    shm.mkdir()
    root = prepare_session(run / "iox2", "ab12cd34")
    (root / "services").mkdir()
    (root / "services" / "x.service").write_text("x")
    (shm / f"{session_prefix('ab12cd34')}seg1").write_bytes(b"1")
    (shm / f"{session_prefix('ffff0000')}seg1").write_bytes(b"1")
    (shm / "unrelated").write_bytes(b"1")
    removed = remove_session(run / "iox2", "ab12cd34", shm)
    assert len(removed) == 2 and not root.exists()
    assert sorted(p.name for p in shm.iterdir()) == ["noded_ffff0000_seg1", "unrelated"]


def test_leftovers_of_every_session(tmp_path: Path) -> None:
    run, shm = tmp_path / "run", tmp_path / "shm"
    shm.mkdir()
    prepare_session(run / "iox2", "aaaa0000")
    (shm / f"{session_prefix('bbbb1111')}data").write_bytes(b"1")
    (shm / "iox2_other").write_bytes(b"1")
    remove_leftovers(run / "iox2", shm)
    assert not (run / "iox2" / "aaaa0000").exists()
    assert [p.name for p in shm.iterdir()] == ["iox2_other"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chowns to another user: needs root")
def test_a_sessions_root_is_open_until_sealed_for_its_user(tmp_path: Path) -> None:
    base = tmp_path / "iox2"
    root = prepare_session(base, "ab12cd34")
    assert stat.S_IMODE(root.stat().st_mode) == 0o1777 and root.stat().st_uid == 0
    assert stat.S_IMODE(base.stat().st_mode) == 0o711  # no listing of sessions
    assert seal_session(base, "ab12cd34", 64998, 64998) is True
    st = root.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (64998, 64998, 0o700)
    assert seal_session(base, "ab12cd34", 64998, 64998) is False
    remove_session(base, "ab12cd34", shm=tmp_path)
    assert not root.exists()
