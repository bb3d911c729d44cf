"""Short names of the built-in nodes, and the rule for resolving a node class name."""

from __future__ import annotations

BUILTINS: dict[str, str] = {
    # test nodes (nodeworker/builtins/testing_nodes.py)
    "sleep": "nodeworker.builtins.testing_nodes:SleepSetup",
    "fail_setup": "nodeworker.builtins.testing_nodes:FailSetup",
    "crash": "nodeworker.builtins.testing_nodes:Crash",
    "alloc": "nodeworker.builtins.testing_nodes:Allocate",
    "passthrough": "nodeworker.builtins.testing_nodes:PassThrough",
    "source": "nodeworker.builtins.testing_nodes:Source",
    "slow_sink": "nodeworker.builtins.testing_nodes:SlowSink",
    "flaky": "nodeworker.builtins.testing_nodes:Flaky",
    # crash scenarios (nodeworker/builtins/chaos_nodes.py)
    "chaos": "nodeworker.builtins.chaos_nodes:Chaos",
    # tries what the sandbox forbids (nodeworker/builtins/probe.py)
    "probe": "nodeworker.builtins.probe:Probe",
    # audio, speech and video (nodeworker/builtins/{audio,vad,asr,responder,tts,video}.py)
    "resample": "nodeworker.builtins.audio:Resample",
    "wav_source": "nodeworker.builtins.audio:WavSource",
    "wav_sink": "nodeworker.builtins.audio:WavSink",
    "vad": "nodeworker.builtins.vad:Vad",
    "asr": "nodeworker.builtins.asr:Asr",
    "responder": "nodeworker.builtins.responder:Responder",
    "tts": "nodeworker.builtins.tts:Tts",
    "video_source": "nodeworker.builtins.video:VideoSource",
    "gray": "nodeworker.builtins.video:Gray",
}


def resolve_class_name(name: str) -> str:
    """Expand a built-in short name; a "module:Class" path is returned as is.

    Raises ValueError when the name is neither.
    """
    if name in BUILTINS:
        return BUILTINS[name]
    module, sep, cls = name.partition(":")
    if not sep or not module or not cls:
        known = ", ".join(sorted(BUILTINS))
        raise ValueError(f"{name!r} is neither a built-in node ({known}) nor a 'package.module:Class' path")
    return name
