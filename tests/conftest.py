"""Markers by folder: every test under tests/integration/ is an ``integration`` test.

A ``pytestmark`` in a conftest.py marks nothing (it applies to the tests of its own module
only), so the marker is added here, at collection, before ``-m`` deselects: ``pytest -m
"not integration"`` runs the unit tests alone, without systemd.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"


@pytest.hookimpl(tryfirst=True)  # before the -m deselection (pytest's own hook)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
