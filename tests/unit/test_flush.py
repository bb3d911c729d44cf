"""Barge-in: the flush control message (noded.contract.flush), its handling by real
workers (``python -m noded.worker``, no systemd), the speech nodes that raise and obey it,
and what the client does with it (nodectl run's report and WAV writer)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from noded.contract.flush import Flush, Seen, decode_flush, encode_flush
from noded.contract.wire import Flags, Kind
from noded.ctl.mediafiles import OutputWriter, read_wav
from noded.ctl.runreport import RunReport
from noded.dataplane.endpoint import Endpoint
from noded.nodes.streams import LocalMessage, as_messages
from noded.nodes.tts import Tts
from noded.nodes.vad import Vad
from noded.testing import run_setup
from tests.unit.dataplane_support import Session, receive
from tests.unit.speech_support import chunks, spoken, with_silence

# -- the payload and the once-per-flush rule (pure) ---------------------------------------


def test_a_flush_payload_round_trips_and_a_bad_one_is_still_a_flush() -> None:
    flush = Flush(origin="vad", id=3, reason="barge-in", utterance=2)
    assert decode_flush(encode_flush(flush)) == flush
    assert encode_flush(Flush(origin="c", id=1)) == b'{"origin":"c","id":1}'
    assert decode_flush(b"") == Flush() and decode_flush(b"not json") == Flush() and decode_flush(b"[1]") == Flush()


def test_seen_handles_each_flush_once_and_forgets_the_oldest() -> None:
    seen = Seen(size=2)
    a, b, c = (Flush(origin="vad", id=i) for i in (1, 2, 3))
    assert seen.first(a) and not seen.first(a) and seen.first(Flush(origin="other", id=1))
    assert seen.first(b) and seen.first(c) and seen.first(a)  # a was forgotten: only 2 kept
    assert seen.first(Flush()) and seen.first(Flush())  # anonymous: always new


# -- real workers -------------------------------------------------------------------------


def _flush(ep: Endpoint, port: str, id: int) -> None:
    payload = encode_flush(Flush(origin="src", id=id, reason="test"))
    ep.send(port, payload, kind=Kind.CONTROL, flags=Flags.FLUSH, timestamp_ns=time.monotonic_ns())


def _until_end(ep: Endpoint, timeout: float = 30.0) -> list[tuple[str, Flush | None, Any]]:
    """(source, the Flush or None, the JSON) of each message until an end marker; copies,
    so that the producer gets its credit back."""
    got: list[tuple[str, Flush | None, Any]] = []
    while True:
        msg = receive(ep, timeout)
        if msg.end_of_stream:
            return got
        if msg.flush:
            got.append((msg.source, decode_flush(msg.data), None))
        else:
            got.append((msg.source, None, msg.json))
        del msg


def test_a_flush_stops_the_work_in_hand_drops_what_is_queued_and_reaches_the_end(session: Session) -> None:
    # src -> pass (ignores flushes: passes them on) -> drip (stops on one) -> sink
    planes = session.plan([("src.out", "pass"), ("pass.out", "drip"), ("drip.out", "sink")], depth=8)
    workers = [session.worker("pass", "passthrough", planes["pass"])]
    workers.append(session.worker("drip", "drip", planes["drip"], {"count": 100, "interval": 0.05}))
    for w in workers:
        w.wait_ready()
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    src.send("out", {"label": "A"})
    first = receive(sink)  # drip is writing A's reply (100 x 50 ms: 5 s)
    assert first.json == {"label": "A", "i": 0}
    for label in "BC":  # queued behind A at drip: stale once the flush comes
        src.send("out", {"label": label})
    _flush(src, "out", 1)
    src.send("out", {"label": "D"})  # after the flush: answered in full
    src.send("out", b"", kind=Kind.CONTROL, flags=Flags.END_OF_STREAM)
    got: list[tuple[str, Flush | None, Any]] = [("drip.out", None, first.json)]
    del first
    got += _until_end(sink)
    flushes = [(source, flush) for source, flush, _ in got if flush is not None]
    assert flushes == [("drip.out", Flush(origin="src", id=1, reason="test"))]
    i = got.index(("drip.out", None, {"flushed": "A"}))  # on_flush's output goes out before the flush
    assert got[i + 1][1] is not None
    a = [data["i"] for _, _, data in got[:i]]
    assert a == list(range(len(a))) and len(a) < 99, "A was not interrupted"
    assert [data for _, _, data in got[i + 2 :]] == [{"label": "D", "i": k} for k in range(100)]
    assert session.stop(workers[1]) == 0
    assert "1 flushes passed on (2 messages dropped before them)" in workers[1].stderr


def test_a_flush_that_comes_on_two_inputs_is_handled_once(session: Session) -> None:
    planes = session.plan([("src.out", "a"), ("src.out", "b"), ("a.out", "m"), ("b.out", "m"), ("m.out", "sink")])
    workers = [session.worker(n, "passthrough", planes[n]) for n in ("a", "b", "m")]
    for w in workers:
        w.wait_ready()
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    _flush(src, "out", 7)
    src.send("out", np.arange(3))
    src.send("out", b"", kind=Kind.CONTROL, flags=Flags.END_OF_STREAM)
    got = []
    ends = 0
    while ends < 2:  # m passes on each input's end marker
        msg = receive(sink)
        ends += msg.end_of_stream
        got.append((msg.flush, msg.kind))
        del msg
    assert got.count((True, Kind.CONTROL)) == 1, got
    assert got.count((False, Kind.TENSOR)) == 2, got


# -- the speech nodes ---------------------------------------------------------------------


def test_the_vad_raises_a_flush_before_each_utterance_with_barge_in() -> None:
    speech = with_silence(spoken("turn on the kitchen light"), spoken("what time is it"))
    for barge_in in (True, False):
        node, ctx = run_setup(Vad, {"barge_in": barge_in}, node_id="vad")
        for msg in chunks(speech):
            node.process(msg)
        for port in ("vad.out", "vad.events"):
            out = [m for m in as_messages(ctx.sent, "vad") if m.source == port]
            flushes = [(i, decode_flush(m.data)) for i, m in enumerate(out) if m.flush]
            if not barge_in:
                assert flushes == []
                continue
            assert [f for _, f in flushes] == [
                Flush(origin="vad", id=1, reason="barge-in", utterance=0),
                Flush(origin="vad", id=2, reason="barge-in", utterance=1),
            ]
            for i, _ in flushes:  # each right before its utterance's start, stamped with a fed chunk's time
                assert out[i + 1].json["event"] == "start" and out[i].timestamp_ns > 0


def test_tts_stops_speaking_when_interrupted() -> None:
    text = "This is a long reply that goes on and on, so that it takes several seconds to say."
    node, ctx = run_setup(Tts, {"chunk_ms": 40})
    node.process(LocalMessage({"text": text}))
    whole = len(ctx.sent)
    assert whole > 20
    ctx.sent.clear()
    ctx.interrupt(after=3)
    node.process(LocalMessage({"text": text}))
    assert 1 <= len(ctx.sent) <= 4, len(ctx.sent)
    ctx.interrupt(False)
    ctx.sent.clear()
    node.process(LocalMessage({"text": "Next."}))
    assert ctx.sent, "an interruption is not for good"


# -- the client: nodectl run's report and WAV writer ----------------------------------------


def _audio(seconds: float, key: int, rate: int = 22050, value: float = 0.5) -> LocalMessage:
    msg = LocalMessage(np.full(int(seconds * rate), value, np.float32), Kind.AUDIO, source="tts.out")
    msg.sample_rate, msg.timestamp_ns = rate, key
    return msg


def _flush_msg(source: str, id: int, fed_ns: int) -> LocalMessage:
    payload = encode_flush(Flush(origin="vad", id=id, reason="barge-in", utterance=id - 1))
    return LocalMessage(payload, Kind.CONTROL, source=source, flags=Flags.FLUSH, timestamp_ns=fed_ns)


def _reply(index: int, key: int, **more: Any) -> LocalMessage:
    info = {"utterance": index, "heard": "q", "speech_end_ns": key, "final": False, "text": "An answer.", "by": "model"}
    return LocalMessage({**info, **more}, source="llm.out", timestamp_ns=key)


def test_the_report_interrupts_the_reply_being_played_and_the_wav_keeps_what_was_played(tmp_path: Path) -> None:
    text = io.StringIO()
    report = RunReport(Console(file=text, width=400))
    writer = OutputWriter(str(tmp_path / "reply.wav"))
    key1, key2 = 1_000, 2_000

    def handle(msg: Any) -> None:
        if not report.handle(msg) and msg.source == "tts.out":
            writer.add(msg)
        for key, played in report.take_cuts():
            writer.cut(key, played)

    handle(_flush_msg("vad.events", 1, time.monotonic_ns()))  # the first question: nothing to interrupt
    assert report.take_cuts() == [] and "interrupted" not in text.getvalue()
    handle(_reply(0, key1))
    handle(_reply(0, key1, text="", final=True))
    handle(_audio(3.0, key1))  # 3 s of reply: it plays for 3 s from now
    time.sleep(0.5)
    handle(_flush_msg("vad.events", 2, time.monotonic_ns() - 250_000_000))  # the user speaks again
    handle(_audio(1.0, key1))  # still in flight: dropped
    handle(_flush_msg("tts.out", 2, 0))  # the same flush at the end of the pipeline
    handle(_reply(1, key2))
    handle(_audio(1.0, key2, value=-0.5))
    writer.close()
    (said,) = [line for line in text.getvalue().splitlines() if "interrupted" in line]
    assert said.startswith("[0] interrupted (barge-in)") and "ms after the new speech was fed" in said
    u0, u1 = report.as_dict()["utterances"]
    assert u0["interrupted"] and 0.45 <= u0["played_s"] < 3.0 and not u1["interrupted"]
    (flush2,) = [f for f in report.as_dict()["flushes"] if f["interrupted"]]
    assert set(flush2["ms_to_client_by_output"]) == {"vad.events", "tts.out"}
    samples, rate = read_wav(tmp_path / "reply.wav")
    played = int(round(u0["played_s"] * rate))
    # the played part of reply 0 (played_s is rounded to the ms), then reply 1
    assert abs(len(samples) - rate - played) <= rate // 1000 + 1, (len(samples), played)
    assert (samples[: played - 25] > 0).all() and (samples[-rate:] < 0).all() and (samples[:-rate] > 0).all()


def test_a_reply_played_out_is_not_interrupted() -> None:
    report = RunReport(Console(file=io.StringIO()), quiet=True)
    report.handle(_reply(0, 5))
    report.handle(_reply(0, 5, text="", final=True))
    report.handle(_audio(0.05, 5))
    time.sleep(0.1)
    report.handle(_flush_msg("vad.events", 1, 0))
    assert report.take_cuts() == [] and not report.as_dict()["utterances"][0]["interrupted"]


def test_a_reply_the_llm_cut_before_the_client_saw_it_counts_as_interrupted() -> None:
    report = RunReport(Console(file=io.StringIO()), quiet=True)
    report.handle(_flush_msg("vad.events", 1, 0))
    report.handle(_reply(0, 9, text="", final=True, interrupted=True))
    assert report.take_cuts() == [(9, 0.0)] and report.as_dict()["utterances"][0]["interrupted"]


def _client(report: RunReport, writer: OutputWriter, msg: Any) -> None:
    """What nodectl run does with each output message."""
    if not report.handle(msg) and msg.source == "tts.out":
        writer.add(msg)
    for key, played in report.take_cuts():
        writer.cut(key, played)


def test_a_reply_that_comes_before_the_flush_reaches_its_output_is_stale(tmp_path: Path) -> None:
    text = io.StringIO()
    report = RunReport(Console(file=text, width=400))
    writer = OutputWriter(str(tmp_path / "reply.wav"))
    for port in ("vad.events", "llm.out", "tts.out"):  # the first flush: these outputs carry flushes
        _client(report, writer, _flush_msg(port, 1, 0))
    heard = {"utterance": 0, "text": "tell me about the moon", "speech_end_ns": 7, "asr_ms": 1}
    _client(report, writer, LocalMessage(heard, source="asr.out", timestamp_ns=7))
    _client(report, writer, _flush_msg("vad.events", 2, 0))  # the user speaks before any of the reply came
    assert report.as_dict()["utterances"][0]["interrupted"]  # the reply had not come: interrupted already
    for msg in (_reply(0, 7), _audio(2.0, 7)):  # made before the flush came by: dropped
        _client(report, writer, msg)
    for port in ("llm.out", "tts.out"):
        _client(report, writer, _flush_msg(port, 2, 0))
    later = {"utterance": 1, "text": "how many legs", "speech_end_ns": 8, "asr_ms": 1}
    _client(report, writer, LocalMessage(later, source="asr.out", timestamp_ns=8))
    for msg in (_reply(1, 8), _audio(1.0, 8)):  # after the flush on its output: played
        _client(report, writer, msg)
    writer.close()
    u0, u1 = report.as_dict()["utterances"]
    assert u0["interrupted"] and u0["played_s"] == 0.0 and not u1["interrupted"]
    assert "[0] interrupted (barge-in): the user spoke again" in text.getvalue()
    assert "none of it was played" in text.getvalue()
    samples, rate = read_wav(tmp_path / "reply.wav")
    assert len(samples) == rate  # reply 1 only


def test_a_reply_made_before_the_flush_but_not_heard_yet_is_stale(tmp_path: Path) -> None:
    # The transcript comes after the flush (outputs are read in turn): the reply is still
    # stale, because it comes on llm.out and tts.out before the flush does.
    report = RunReport(Console(file=io.StringIO()), quiet=True)
    writer = OutputWriter(str(tmp_path / "reply.wav"))
    for port in ("vad.events", "llm.out", "tts.out"):
        _client(report, writer, _flush_msg(port, 1, 0))
    _client(report, writer, _flush_msg("vad.events", 2, 0))
    heard = {"utterance": 0, "text": "tell me about the moon", "speech_end_ns": 7, "asr_ms": 1}
    _client(report, writer, LocalMessage(heard, source="asr.out", timestamp_ns=7))
    for msg in (_reply(0, 7), _reply(0, 7, text="", final=True), _audio(2.0, 7)):
        _client(report, writer, msg)
    writer.close()
    assert report.as_dict()["utterances"][0]["interrupted"]
    assert writer.count == 0 and (tmp_path / "reply.wav").stat().st_size == 44  # a WAV header, no audio
