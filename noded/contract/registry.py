"""Short names of the built-in nodes, and the rule for resolving a node class name.

``NODES`` are the nodes users run: hints and the manual offer these. ``TEST_NODES`` serve
tests and benchmarks: they resolve like the others but are never offered. ``BUILTINS``
is both, what a short name may name.
"""

from __future__ import annotations

TEST_NODES: dict[str, str] = {
    # noded/nodes/testing/basic.py
    "sleep": "noded.nodes.testing.basic:SleepSetup",
    "fail_setup": "noded.nodes.testing.basic:FailSetup",
    "crash": "noded.nodes.testing.basic:Crash",
    "alloc": "noded.nodes.testing.basic:Allocate",
    "passthrough": "noded.nodes.testing.basic:PassThrough",
    "source": "noded.nodes.testing.basic:Source",
    "slow_sink": "noded.nodes.testing.basic:SlowSink",
    "flaky": "noded.nodes.testing.basic:Flaky",
    "drip": "noded.nodes.testing.basic:Drip",
    "hang": "noded.nodes.testing.basic:Hang",
    # crash scenarios (noded/nodes/testing/chaos.py)
    "chaos": "noded.nodes.testing.chaos:Chaos",
    # tries what the sandbox forbids (noded/nodes/testing/probe.py)
    "probe": "noded.nodes.testing.probe:Probe",
}

NODES: dict[str, str] = {
    # audio, speech and video (noded/nodes/{audio,vad,asr,responder,tts,video}.py)
    "resample": "noded.nodes.audio:Resample",
    "wav_source": "noded.nodes.audio:WavSource",
    "wav_sink": "noded.nodes.audio:WavSink",
    "vad": "noded.nodes.vad:Vad",
    "asr": "noded.nodes.asr:Asr",
    "responder": "noded.nodes.responder:Responder",
    "llm": "noded.nodes.llm:Llm",
    "tts": "noded.nodes.tts:Tts",
    "video_source": "noded.nodes.video:VideoSource",
    "gray": "noded.nodes.video:Gray",
}

BUILTINS: dict[str, str] = {**NODES, **TEST_NODES}


def resolve_class_name(name: str) -> str:
    """Expand a built-in short name; a "module:Class" path is returned as is.

    Raises ValueError when the name is neither.
    """
    if name in BUILTINS:
        return BUILTINS[name]
    module, sep, cls = name.partition(":")
    if not sep or not module or not cls:
        known = ", ".join(sorted(NODES))
        raise ValueError(f"{name!r} is neither a built-in node ({known}) nor a 'package.module:Class' path")
    return name
