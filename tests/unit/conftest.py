"""Fixtures shared by the data-plane unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.dataplane_support import CLEAN_LEFTOVER_SUFFIXES, Session


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A Session whose files must all be gone afterwards (but for iceoryx2's global
    management file when every node closed cleanly)."""
    s = Session(tmp_path)
    yield s
    left = s.close()
    if not s.killed:
        assert all(p.endswith(CLEAN_LEFTOVER_SUFFIXES) for p in left), left
    assert s.leftovers() == []
