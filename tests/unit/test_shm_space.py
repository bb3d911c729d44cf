"""noded.daemon.shm: a session whose largest message /dev/shm cannot hold is refused."""

from __future__ import annotations

import pytest

from noded.daemon.shm import Space, message_bytes, refuse_if_full, space
from noded.errors import LimitError
from noded.pipeline.checks import parse_pipeline

PIPELINE = """
name = "big"
[dataplane]
max_payload = "1M"
[[nodes]]
id = "a"
class = "passthrough"
[[nodes]]
id = "b"
class = "passthrough"
max_payload = "4M"
inputs = ["a.out"]
"""


def test_the_largest_message_is_what_must_fit() -> None:
    pipeline = parse_pipeline(PIPELINE, "big.toml")
    assert message_bytes(pipeline) == 4 * 2**20 + 128
    refuse_if_full(pipeline, Space(free=4 * 2**20 + 128, size=2**30))
    refuse_if_full(pipeline, None)  # not known: not refused
    with pytest.raises(LimitError) as info:
        refuse_if_full(pipeline, Space(free=2**20, size=8 * 2**20))
    assert str(info.value.message) == (
        "/dev/shm is full: 1.0 MiB of 8.0 MiB free, and a message of pipeline 'big' needs up to 4.0 MiB there"
    )
    assert info.value.hint and "max_payload" in info.value.hint


def test_space_reads_statvfs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    got = space(str(tmp_path))
    assert got is not None and 0 <= got.free <= got.size
    assert space(str(tmp_path / "missing")) is None
