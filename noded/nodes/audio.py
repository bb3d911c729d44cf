"""Audio nodes: ``resample`` (soxr), ``wav_source`` and ``wav_sink``.

``Resample`` (which reports ``first_audio`` on "events") turns any AUDIO stream into
mono float32 at ``rate`` Hz with libsoxr's
streaming resampler (no hand-written DSP), keeping each chunk's timestamp. It flushes
the resampler's tail on END_OF_STREAM and passes the end on. ``quality`` is soxr's:
the default "LQ" hands out every 20 ms chunk at once (after the first); "HQ" and "VHQ"
filter more steeply but release audio in blocks, holding back 2 to 5 chunks of 20 ms:
latency a live pipeline pays on every utterance.

``WavSource`` plays an audio file (``path``: WAV, FLAC, OGG) into "out" in ``chunk_ms`` chunks, in real time
when ``realtime``, then ends the stream. ``WavSink`` writes the AUDIO it receives to
``path`` when the stream ends. Both read or write the path from inside their unit: it
must be readable (source) or writable (sink) under the unit's sandboxing.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from noded.contract.wire import Kind
from noded.node import Context, Node
from noded.nodes.extras import speech_module
from noded.nodes.params import REQUIRED, Param, check_declared
from noded.nodes.streams import StreamNode, audio_samples, send_audio, send_end
from noded.wavfile import read_wav, write_wav

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class Resampler:
    """A soxr stream from one rate to another (mono float32); rebuilt if the rate changes."""

    def __init__(self, rate: int, quality: str = "LQ") -> None:
        self.rate, self.quality = rate, quality
        self.in_rate = 0
        self._stream: Any = None

    def __call__(self, samples: np.ndarray, in_rate: int, last: bool = False) -> np.ndarray:
        if in_rate != self.in_rate:
            soxr = speech_module("soxr", "resample")
            tail = self.flush() if self._stream is not None else np.zeros(0, np.float32)
            self.in_rate = in_rate
            self._stream = (
                None
                if in_rate == self.rate
                else soxr.ResampleStream(in_rate, self.rate, 1, dtype="float32", quality=self.quality)
            )
            if tail.size:
                return np.concatenate([tail, self(samples, in_rate, last)])
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)

    def flush(self) -> np.ndarray:
        """What the resampler still holds (its filter delay), ending the stream."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream, self.in_rate = None, 0
        return out


class Resample(StreamNode):
    SUMMARY = (
        "Resamples audio of any rate and channel count to mono float32 at one rate (soxr); in and out on port out."
    )
    PARAMS = {
        "rate": Param(int, 16000, "The output sample rate, in Hz."),
        "quality": Param(str, "LQ", "soxr's quality: quick, low, medium, high or very high.", QUALITIES),
    }
    EXAMPLE = 'class = "resample"\nparams = { rate = 16000 }\ninputs = ["input.audio"]'
    kinds = frozenset({Kind.AUDIO})
    reports_first = True  # the first node of commands.toml: "events" says when the stream began

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = check_declared(self, self.PARAMS)
        self.rate: int = p["rate"]
        self.resampler = Resampler(self.rate, p["quality"])
        self.timestamp_ns = 0

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        soxr = speech_module("soxr", f"resample ({self.node_id})")
        # The first resampling allocates and plans: done before READY, not on the first chunk.
        soxr.resample(np.zeros(4410, np.float32), 44100, self.rate)

    def on_end(self) -> None:
        tail = self.resampler.flush()
        if tail.size:
            send_audio(self.ctx, "out", tail, self.rate, self.timestamp_ns)

    def handle(self, msg: Any) -> None:
        self.timestamp_ns = msg.timestamp_ns
        out = self.resampler(audio_samples(msg), msg.sample_rate)
        if out.size:
            send_audio(self.ctx, "out", out, self.rate, msg.timestamp_ns)


class WavSource(Node):
    SUMMARY = "Reads an audio file (WAV, FLAC, OGG: libsndfile) and sends it on port out in chunks, then END_OF_STREAM."
    PARAMS = {
        "path": Param(str, REQUIRED, "The WAV file (the node must be allowed to read it: read_only_paths)."),
        "chunk_ms": Param(int, 20, "Milliseconds of audio per message."),
        "realtime": Param(bool, True, "Send no faster than real time (false: as fast as the consumer takes it)."),
    }
    EXAMPLE = (
        'class = "wav_source"\nparams = { path = "/srv/audio/in.wav", chunk_ms = 20 }\nread_only_paths = ["/srv/audio"]'
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = check_declared(self, self.PARAMS)
        self.path: str = p["path"]
        self.chunk_ms: int = max(1, p["chunk_ms"])
        self.realtime: bool = p["realtime"]

    def setup(self, ctx: Context) -> None:
        self.samples, self.rate = read_wav(self.path)
        ctx.progress(1.0, f"{self.path}: {len(self.samples) / self.rate:.1f} s at {self.rate} Hz")

    def run(self, ctx: Context) -> None:
        step = max(1, self.rate * self.chunk_ms // 1000)
        start = time.monotonic()
        for i in range(0, len(self.samples), step):
            if self.realtime:
                delay = start + i / self.rate - time.monotonic()
                if delay > 0 and ctx.stopping.wait(delay):
                    return
            chunk = np.ascontiguousarray(self.samples[i : i + step])
            ctx.send(
                "out",
                chunk,
                kind=Kind.AUDIO,
                sample_rate=self.rate,
                channels=chunk.shape[1],
                timestamp_ns=time.monotonic_ns(),
            )
        send_end(ctx)


class WavSink(StreamNode):
    SUMMARY = "Writes the audio it receives to a PCM WAV file, closed at END_OF_STREAM."
    PARAMS = {
        "path": Param(
            str, REQUIRED, "The WAV file to write, in a directory of [node_sandbox] read_write_paths (noded.toml(5))."
        )
    }
    EXAMPLE = 'class = "wav_sink"\nparams = { path = "/var/lib/voice/out.wav" }\ninputs = ["tts.out"]'
    kinds = frozenset({Kind.AUDIO})
    end_ports = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path: str = check_declared(self, self.PARAMS)["path"]
        self.parts: list[np.ndarray] = []
        self.rate = 0

    def handle(self, msg: Any) -> None:
        self.parts.append(audio_samples(msg))
        self.rate = msg.sample_rate or self.rate

    def on_end(self) -> None:
        self.write()

    def write(self) -> None:
        audio = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        write_wav(self.path, audio, self.rate or 16000)
        self.logger.info("wrote %.2f s of audio to %s", len(audio) / (self.rate or 16000), self.path)
        self.parts = []
