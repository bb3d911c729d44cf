"""devices, gpu and cpus of a node: parsing and checking (pure, with a fake /dev)."""

from __future__ import annotations

from pathlib import Path

import pytest

from noded.pipeline.devices import cpu_mask, expand_gpu, format_cpus, parse_cpus


def test_cpus_parse_and_format() -> None:
    assert parse_cpus("2-3", {0, 1, 2, 3}) == (2, 3)
    assert parse_cpus("0,2,4-5", set(range(8))) == (0, 2, 4, 5)
    assert format_cpus((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert cpu_mask((0, 9)) == bytes([0b1, 0b10])


@pytest.mark.parametrize(
    ("text", "reason"),
    [("4", "CPU 4 is not available on this host (it has 0-3)"), ("x", "is not a CPU list"), ("3-1", "range")],
)
def test_bad_cpus(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_cpus(text, {0, 1, 2, 3})


def test_gpu_expands_to_the_nvidia_nodes_present(tmp_path: Path) -> None:
    for name in ("nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1"):
        (tmp_path / name).touch()
    devices, env = expand_gpu("nvidia:1", str(tmp_path))
    assert devices == (str(tmp_path / "nvidiactl"), str(tmp_path / "nvidia-uvm"), str(tmp_path / "nvidia1"))
    assert env == {"CUDA_VISIBLE_DEVICES": "1"}
    assert expand_gpu("nvidia", str(tmp_path))[1] == {"CUDA_VISIBLE_DEVICES": "0,1"}
    with pytest.raises(ValueError, match="NVIDIA GPU 2 is not on this host"):
        expand_gpu("nvidia:2", str(tmp_path))


def test_no_gpu_and_bad_gpu_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no NVIDIA GPU on this host"):
        expand_gpu("nvidia", str(tmp_path))
    with pytest.raises(ValueError, match="is not a GPU"):
        expand_gpu("amd", str(tmp_path))
