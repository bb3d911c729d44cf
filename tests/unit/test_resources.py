from pathlib import Path

from daemon.resources import prepare_session, remove_leftovers, remove_session, session_prefix


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
