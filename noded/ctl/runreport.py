"""What `nodectl run` tells a person about a speech session while it streams: the
transcripts and replies as they come, and the timings.

It reads the JSON that the speech nodes send on outputs the user did not redirect to a
file (``noded/nodes/streams.py`` has the conventions):

* ``resample.events``, ``vad.events``: ``first_audio`` (when that node began on the
  stream's first chunk) and the VAD's ``start``/``pause``/``end`` of each utterance;
* a transcript (``{"text", "asr_ms", ...}``, or ``"partial": true`` for the text so far)
  and a reply (``{"heard", "text", ...}``, or clause by clause with ``"final"``: llm);

and the header ``timestamp_ns`` of AUDIO output messages: the CLOCK_MONOTONIC time at
which the end of speech of the utterance they answer was fed. All times are
CLOCK_MONOTONIC nanoseconds, which are the same in every process of the machine.

``stages`` breaks each utterance's end of speech -> first audio into the times the nodes
stamp (JSON fields, and the header's ``sent_ns``), in ms after the end of speech:
``endpoint`` (the chunk whose silence ended the utterance was fed), ``vad_end`` (the VAD
sent its end event), ``asr_decode_start``/``asr_decode_end`` (the final transcript's
decode; before ``vad_end`` when it was decoded at the VAD's pause), ``asr_sent``,
``llm_received``, ``llm_first_clause``, ``tts_first_chunk`` (sent) and ``client`` (the
first reply audio received here).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from noded.contract.wire import Kind

STAGES = (
    "endpoint", "vad_end", "asr_decode_start", "asr_decode_end", "asr_sent", "llm_received",
    "llm_first_clause", "tts_first_chunk", "client",
)  # fmt: skip


def _sent_ns(msg: Any) -> int:
    """The header's sent_ns: when the producer sent ``msg`` (0 when unknown)."""
    return int(getattr(getattr(msg, "header", None), "sent_ns", 0) or 0)


@dataclass
class Utterance:
    speech_end_ns: int
    endpoint_ns: int = 0
    index: int | None = None
    heard: str | None = None
    reply: str | None = None
    transcript_ns: int | None = None  # when the transcript reached the client
    first_audio_ns: int | None = None  # when the first reply audio reached the client
    audio_seconds: float = 0.0
    speculative: bool = False  # heard at the VAD's pause (asr speculate): counts once the VAD ends it
    stamps: dict[str, int] = field(default_factory=dict)  # stage -> CLOCK_MONOTONIC ns (see ``stages``)

    def stamp(self, stage: str, t: Any) -> None:
        if isinstance(t, int) and t > 0 and stage not in self.stamps:
            self.stamps[stage] = t

    def stages(self) -> dict[str, float]:
        """Each stage's time in ms after the end of speech, in the order of the path."""
        stamps = dict(self.stamps)
        if self.endpoint_ns:
            stamps["endpoint"] = self.endpoint_ns
        if self.first_audio_ns is not None:
            stamps["client"] = self.first_audio_ns
        return {s: round((stamps[s] - self.speech_end_ns) / 1e6, 1) for s in STAGES if s in stamps}

    def after_end(self, t: int | None) -> float | None:
        return None if t is None else (t - self.speech_end_ns) / 1e6

    def after_endpoint(self, t: int | None) -> float | None:
        return None if t is None or not self.endpoint_ns else (t - self.endpoint_ns) / 1e6


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


@dataclass
class RunReport:
    console: Console
    quiet: bool = False
    ready_ns: int = 0
    first_fed_ns: int | None = None
    first_processed_ns: dict[str, int] = field(default_factory=dict)  # node -> when it began
    last_output_ns: int | None = None
    utterances: dict[int, Utterance] = field(default_factory=dict)

    def _utterance(self, info: dict[str, Any], ts: int) -> Utterance:
        key = int(info.get("speech_end_ns") or ts)
        u = self.utterances.setdefault(key, Utterance(key))
        endpoint = int(info.get("endpoint_ns") or 0)  # the earliest: the ASR may end before the VAD
        u.endpoint_ns = min(endpoint, u.endpoint_ns) if endpoint and u.endpoint_ns else endpoint or u.endpoint_ns
        if info.get("utterance") is not None:
            u.index = int(info["utterance"])
        return u

    def fed(self) -> None:
        """The client sent its first chunk now."""
        if self.first_fed_ns is None:
            self.first_fed_ns = time.monotonic_ns()

    def handle(self, msg: Any) -> bool:
        """Take what the report knows from ``msg``; True if it was a speech JSON message
        (then it need not be written anywhere else)."""
        now = self.last_output_ns = time.monotonic_ns()
        if msg.kind is Kind.AUDIO:
            if msg.timestamp_ns:
                u = self.utterances.setdefault(msg.timestamp_ns, Utterance(msg.timestamp_ns))
                if u.first_audio_ns is None:
                    u.first_audio_ns = now
                    u.stamp("tts_first_chunk", _sent_ns(msg))
                u.audio_seconds += msg.array.shape[0] / (msg.sample_rate or 1)
            return False
        if msg.kind is not Kind.JSON:
            return False
        info = msg.json
        if not isinstance(info, dict):
            return False
        event = info.get("event")
        if event == "first_audio":
            self.first_processed_ns[str(info.get("node", msg.source))] = int(info["received_ns"])
        elif event == "end":
            self._utterance(info, msg.timestamp_ns).stamp("vad_end", _sent_ns(msg))
        elif event is not None:
            pass  # "start": nothing to show yet
        elif "heard" in info and "final" in info:  # a reply streamed clause by clause (llm)
            u = self._utterance(info, msg.timestamp_ns)
            clause = str(info.get("text") or "")
            u.stamp("llm_received", info.get("received_ns"))
            if clause:
                u.stamp("llm_first_clause", _sent_ns(msg))
                u.reply = f"{u.reply} {clause}" if u.reply else clause
                self._say(f"[{u.index}] says: {clause!r}")
            if info["final"] and u.reply:
                self._say(f"[{u.index}] reply: {u.reply!r}")
        elif "heard" in info and "text" in info:
            u = self._utterance(info, msg.timestamp_ns)
            u.reply = str(info["text"])
            self._say(f"[{u.index}] reply: {u.reply!r}")
        elif info.get("partial") and "text" in info:  # the transcript so far (asr interval_ms)
            self._say(f"[{info.get('utterance')}] hearing: {str(info['text'])!r}")
        elif "asr_ms" in info and "text" in info:
            u = self._utterance(info, msg.timestamp_ns)
            u.heard, u.transcript_ns = str(info["text"]), now
            u.speculative = bool(info.get("speculative"))
            u.stamp("asr_decode_start", info.get("decode_start_ns"))
            u.stamp("asr_decode_end", info.get("decode_end_ns"))
            u.stamp("asr_sent", _sent_ns(msg))
            self._say(f"[{u.index}] heard: {u.heard!r} ({_ms(u.after_end(now))} after the end of speech)")
        else:
            return False
        return True

    def _say(self, line: str) -> None:
        if not self.quiet:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def first_chunk(self) -> dict[str, Any]:
        """From READY to the first chunk fed, and to the start of its processing: in the
        first node that reported it (``processing_ms``), and in each (``by_node``)."""

        def since_ready(t: int | None) -> float | None:
            return None if t is None or not self.ready_ns else (t - self.ready_ns) / 1e6

        by_node = {node: since_ready(t) for node, t in sorted(self.first_processed_ns.items(), key=lambda i: i[1])}
        first = min(self.first_processed_ns.values()) if self.first_processed_ns else None
        return {"fed_ms": since_ready(self.first_fed_ns), "processing_ms": since_ready(first), "by_node": by_node}

    def rows(self) -> list[Utterance]:
        """The utterances, in order; not those heard speculatively at a pause after which
        the speaker went on (no end of the VAD's came for them)."""
        rows = sorted(self.utterances.values(), key=lambda u: u.speech_end_ns)
        return [u for u in rows if not (u.speculative and "vad_end" not in u.stamps and u.first_audio_ns is None)]

    def as_dict(self) -> dict[str, Any]:
        rows = self.rows()
        stream = (
            None
            if self.first_fed_ns is None or self.last_output_ns is None
            else ((self.last_output_ns - self.first_fed_ns) / 1e9)
        )
        return {
            "first_chunk_after_ready": self.first_chunk(),
            "stream_seconds": stream,  # from the first chunk fed to the last output received
            "utterances": [{
                "index": u.index, "heard": u.heard, "reply": u.reply, "reply_audio_s": round(u.audio_seconds, 3),
                "end_of_speech_to_transcript_ms": u.after_end(u.transcript_ns),
                "end_of_speech_to_first_audio_ms": u.after_end(u.first_audio_ns),
                "endpoint_to_transcript_ms": u.after_endpoint(u.transcript_ns),
                "endpoint_to_first_audio_ms": u.after_endpoint(u.first_audio_ns),
                "stages_ms": u.stages(),
            } for u in rows],
        }  # fmt: skip

    def summary(self) -> None:
        """The timings, at the end of the run."""
        first = self.first_chunk()
        if first["processing_ms"] is not None:
            fed = "-" if first["fed_ms"] is None else f"{first['fed_ms']:.1f} ms"
            nodes = ", ".join(f"{n} {ms:.1f} ms" for n, ms in first["by_node"].items() if ms is not None)
            self._say(
                f"first chunk: fed {fed} after ready; its processing began after ready in {nodes} (target: <= 50 ms)"
            )
        rows = [u for u in self.rows() if u.heard is not None or u.first_audio_ns is not None]
        if not rows:
            if self.first_processed_ns:
                self._say("no speech detected: no reply")
            return

        def median(values: list[float | None]) -> str:
            got = [v for v in values if v is not None]
            return _ms(statistics.median(got)) if got else "-"

        self._say(
            f"latency over {len(rows)} utterance(s), median: end of speech -> transcript "
            f"{median([u.after_end(u.transcript_ns) for u in rows])}, -> first audio out "
            f"{median([u.after_end(u.first_audio_ns) for u in rows])}; from the endpoint (when the "
            f"utterance counted as ended): {median([u.after_endpoint(u.transcript_ns) for u in rows])} and "
            f"{median([u.after_endpoint(u.first_audio_ns) for u in rows])}"
        )
