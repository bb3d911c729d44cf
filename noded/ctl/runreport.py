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

Barge-in. The report plays the replies as a speaker would: each from when its first
audio came (or when the one before it ended), at its real-time pace. A flush (the VAD
heard the user speak again: ``noded.contract.flush``) interrupts the reply still being
made or played: it prints "interrupted", and ``take_cuts()`` tells ``nodectl run`` how
much of it was played, which is all of it that goes to the output file.

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

from noded.contract.flush import decode_flush
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
    play_start_ns: int | None = None  # when it began to play (first audio, or the reply before it ended)
    final: bool = False  # the whole reply has come (its text, llm's "final")
    interrupted: bool = False
    played_s: float | None = None  # of an interrupted reply: how much was played
    speculative: bool = False  # heard at the VAD's pause (asr speculate): counts once the VAD ends it
    stamps: dict[str, int] = field(default_factory=dict)  # stage -> CLOCK_MONOTONIC ns (see ``stages``)

    def playing_until(self) -> int | None:
        return None if self.play_start_ns is None else self.play_start_ns + int(self.audio_seconds * 1e9)

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
    flushes: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # key -> what it did
    _cuts: list[tuple[int, float]] = field(default_factory=list)  # (reply key, seconds played)
    _playing_until_ns: int = 0
    _flushed_ports: set[str] = field(default_factory=set)  # outputs that have brought a flush
    _pending: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # port -> flushes still to come on it

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
                if not u.interrupted and self._pending.get(msg.source):
                    self._interrupt(u, now, "barge-in")  # made before the flush came by: stale
                if u.interrupted:
                    return False  # the rest of an interrupted reply: not played (the writer drops it)
                if u.first_audio_ns is None:
                    u.first_audio_ns = now
                    u.play_start_ns = max(now, self._playing_until_ns)
                    u.stamp("tts_first_chunk", _sent_ns(msg))
                u.audio_seconds += msg.array.shape[0] / (msg.sample_rate or 1)
                self._playing_until_ns = max(self._playing_until_ns, u.playing_until() or 0)
            return False
        if getattr(msg, "flush", False):
            self.flushed(msg, now)
            return True
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
            if not u.interrupted and self._pending.get(msg.source):
                self._interrupt(u, now, "barge-in")  # made before the flush came by: stale
            clause = str(info.get("text") or "")
            u.stamp("llm_received", info.get("received_ns"))
            if clause:
                u.stamp("llm_first_clause", _sent_ns(msg))
                u.reply = f"{u.reply} {clause}" if u.reply else clause
                self._say(f"[{u.index}] says: {clause!r}")
            if info["final"]:
                u.final = True
                if info.get("interrupted") and not u.interrupted:  # cut before the client saw it start
                    self._interrupt(u, now, "barge-in")
                if u.reply:
                    cut = " (interrupted)" if u.interrupted else ""
                    self._say(f"[{u.index}] reply: {u.reply!r}{cut}")
        elif "heard" in info and "text" in info:
            u = self._utterance(info, msg.timestamp_ns)
            u.reply, u.final = str(info["text"]), True
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

    def flushed(self, msg: Any, now: int) -> None:
        """A flush reached the client on ``msg.source``: the first time, interrupt the
        reply still being made or played; each time, note how long it took."""
        flush = decode_flush(msg.data)
        key = flush.key if flush.origin else ("", len(self.flushes))
        took = (now - msg.timestamp_ns) / 1e6 if msg.timestamp_ns else None
        self._pending.setdefault(msg.source, set()).discard(key)
        seen = self.flushes.get(key)
        if seen is not None:
            seen["ports"][msg.source] = took
            self._flushed_ports.add(msg.source)
            return
        # It will come on every output that brought one before, after what was made before
        # it: a reply that comes there first is stale (interrupted), even if it had not begun.
        for port in self._flushed_ports - {msg.source}:
            self._pending.setdefault(port, set()).add(key)
        self._flushed_ports.add(msg.source)
        seen = self.flushes[key] = {
            "origin": flush.origin, "reason": flush.reason, "ports": {msg.source: took}, "interrupted": [],
        }  # fmt: skip
        for u in self.utterances.values():
            if u.interrupted or (u.heard is None and u.reply is None and u.first_audio_ns is None):
                continue
            until = u.playing_until()
            if u.final and (until is None or until <= now):
                continue  # answered and played out: nothing to interrupt
            seen["interrupted"].append(u.index)
            after = f", {took:.0f} ms after the new speech was fed" if took is not None else ""
            self._interrupt(u, now, flush.reason, after)

    def _interrupt(self, u: Utterance, now: int, reason: str, after: str = "") -> None:
        u.interrupted = True
        start = u.play_start_ns
        u.played_s = 0.0 if start is None else min(max(0.0, (now - start) / 1e9), u.audio_seconds)
        self._playing_until_ns = now
        self._cuts.append((u.speech_end_ns, u.played_s))
        why = f" ({reason})" if reason else ""
        played = (
            f"played {u.played_s:.1f} s of {u.audio_seconds:.1f} s of its audio, the rest is dropped"
            if u.audio_seconds
            else "none of it was played"
        )
        self._say(f"[{u.index}] interrupted{why}: the user spoke again{after}; {played}")

    def take_cuts(self) -> list[tuple[int, float]]:
        """The replies interrupted since the last call: (their audio's timestamp_ns, the
        seconds of it played); what came or comes after that is not to be written."""
        cuts, self._cuts = self._cuts, []
        return cuts

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
                "interrupted": u.interrupted, "played_s": None if u.played_s is None else round(u.played_s, 3),
                "end_of_speech_to_transcript_ms": u.after_end(u.transcript_ns),
                "end_of_speech_to_first_audio_ms": u.after_end(u.first_audio_ns),
                "endpoint_to_transcript_ms": u.after_endpoint(u.transcript_ns),
                "endpoint_to_first_audio_ms": u.after_endpoint(u.first_audio_ns),
                "stages_ms": u.stages(),
            } for u in rows],
            "flushes": [{
                "origin": f["origin"], "reason": f["reason"], "interrupted": f["interrupted"],
                "ms_to_client_by_output": f["ports"],
            } for f in self.flushes.values()],
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
