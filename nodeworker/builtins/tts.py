"""``tts``: text to speech, streamed: audio goes out in ``chunk_ms`` chunks while the rest
of the reply is still being synthesized.

Input: JSON replies (``{"text": ...}``, as ``responder`` sends) or TEXT. Output on "out":
mono float32 AUDIO at the voice's rate, each chunk with the reply's ``timestamp_ns`` (the
utterance's end of speech). Empty text makes no audio.

Backends (param ``backend``):

* ``espeak`` (default): espeak-ng, the Debian package (``/usr/bin/espeak-ng``, voices in
  /usr/share/espeak-ng-data), run per reply as ``espeak-ng --stdout``; its WAV stream is
  read as it is written. ``voice`` (default "en-us") and ``speed`` (words per minute).
  Needs no network, device or writable path.
* ``piper``: Piper neural TTS (``pip install 'noded[piper]'``); ``model`` is the path of a
  voice's .onnx file (its .onnx.json beside it). NOT TESTED HERE: no voice can be
  downloaded on the machines this project is built on; the loading code is real and
  follows piper-tts 1.3 (``PiperVoice.load``, ``synthesize`` yielding AudioChunks).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np

from nodeworker.builtins.params import check_params
from nodeworker.builtins.streams import StreamNode, send_audio
from nodeworker.errors import ParamError
from nodeworker.node import Context
from nodeworker.wire import Kind

WAV_HEADER = 44


class Espeak:
    def __init__(self, voice: str, speed: int, chunk_ms: int) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise ParamError("espeak-ng is not installed", hint="apt-get install espeak-ng (packaging/dev-env does)")
        self.command = [exe, "--stdout", "-v", voice, "-s", str(speed)]
        self.chunk_ms = chunk_ms
        self.rate = 0
        for _ in self.speak("ready"):  # checks the voice, learns the rate, warms the page cache
            pass

    def speak(self, text: str) -> Iterator[np.ndarray]:
        """Chunks of float32 samples as espeak-ng writes them."""
        proc = subprocess.Popen([*self.command, "--", text], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, bufsize=0)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            header = self._read(proc.stdout, WAV_HEADER)
            if len(header) < WAV_HEADER or header[:4] != b"RIFF":
                proc.wait()
                raise RuntimeError(f"espeak-ng failed: {proc.stderr.read().decode(errors='replace').strip()}")
            self.rate = struct.unpack_from("<I", header, 24)[0]
            size = max(2, self.rate * self.chunk_ms // 1000 * 2)
            while chunk := self._read(proc.stdout, size):
                usable = len(chunk) // 2 * 2
                yield np.frombuffer(chunk[:usable], "<i2").astype(np.float32) / 32768.0
        finally:
            proc.stdout.close()
            proc.stderr.close()
            proc.wait()

    @staticmethod
    def _read(stream: Any, size: int) -> bytes:
        parts, got = [], 0
        while got < size:
            part = stream.read(size - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)


class Piper:
    def __init__(self, model: str | None) -> None:
        if not model:
            raise ParamError("backend 'piper' needs the param model", hint="the path of a Piper voice .onnx file")
        try:
            from piper import PiperVoice
        except ImportError as exc:
            raise ParamError("backend 'piper' needs piper-tts", hint="pip install 'noded[piper]'") from exc
        try:
            self.voice = PiperVoice.load(model)
        except (OSError, ValueError) as exc:
            raise ParamError(f"piper voice {model!r} could not be loaded: {exc}",
                             hint="give a voice .onnx with its .onnx.json beside it, readable by the node") from exc
        self.rate = int(self.voice.config.sample_rate)

    def speak(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text):  # one AudioChunk per sentence
            yield np.asarray(chunk.audio_float_array, np.float32)


class Tts(StreamNode):
    kinds = frozenset({Kind.JSON, Kind.TEXT})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = check_params(self, {
            "backend": (str, "espeak"), "voice": (str, "en-us"), "speed": (int, 160), "chunk_ms": (int, 40),
            "model": (str, None),
        }, {"backend": ("espeak", "piper")})  # fmt: skip
        self.engine: Any = None

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.progress(0.1, f"loading {self.p['backend']}")
        if self.p["backend"] == "piper":
            self.engine = Piper(self.p["model"])
        else:
            self.engine = Espeak(self.p["voice"], self.p["speed"], max(5, self.p["chunk_ms"]))
        ctx.progress(1.0, f"{self.p['backend']} ready at {self.engine.rate} Hz")

    def handle(self, msg: Any) -> None:
        text = str(msg.json.get("text", "")) if msg.kind is Kind.JSON else msg.text
        if not text.strip():
            return
        for samples in self.engine.speak(text):
            send_audio(self.ctx, "out", samples, self.engine.rate, msg.timestamp_ns)
