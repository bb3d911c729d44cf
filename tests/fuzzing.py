"""How much the fuzz tests generate: CI's share stays around a minute in all.

Each fuzz test states its CI example count through ``fuzz(n)``; ``NODED_FUZZ_SCALE``
multiplies every count (``NODED_FUZZ_SCALE=20 tests/run tests/unit/test_pipeline.py``
for a long run). No example database is written, and there is no deadline per example
(the machine is shared: timing is not what these tests check).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("NODED_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )
