"""The speech and video built-in nodes, with their real models, in this process
(noded.testing.FakeContext, noded.nodes.chain.LocalChain)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest

from noded.contract.wire import Flags, Kind, PixelFormat
from noded.errors import NodeLoadError, ParamError
from noded.node import Node
from noded.nodes.asr import Asr, normalise, vocabulary_grammar
from noded.nodes.audio import Resample, Resampler, WavSink, WavSource
from noded.nodes.chain import LocalChain
from noded.nodes.llm import Clauses
from noded.nodes.params import REQUIRED, check_params
from noded.nodes.responder import reply, say_time
from noded.nodes.speculative import Held
from noded.nodes.streams import LocalMessage, as_messages
from noded.nodes.tts import Tts
from noded.nodes.vad import Segmenter, Vad
from noded.nodes.video import Gray, to_gray
from noded.testing import run_setup
from noded.wavfile import read_wav, write_wav
from tests.unit.speech_support import chunks, spoken, voice_nodes, with_silence

RATE = 16000


def test_check_params_names_the_node_and_the_problem() -> None:
    node = Node(node_id="n1", params={"a": 1, "zz": 2})
    with pytest.raises(ParamError, match=r"n1.*unknown params \['zz'\]"):
        check_params(node, {"a": (int, 0)})
    node = Node(node_id="n1", params={"a": True})
    with pytest.raises(ParamError, match="must be a int"):
        check_params(node, {"a": (int, 0)})
    node = Node(node_id="n1", params={"a": "x"})
    with pytest.raises(ParamError, match="one of"):
        check_params(node, {"a": (str, "y")}, {"a": ("y", "z")})
    with pytest.raises(ParamError, match="required"):
        check_params(Node(node_id="n1"), {"b": (str, REQUIRED)})
    assert check_params(Node(node_id="n1", params={"f": 2}), {"f": (float, 1.0), "o": (list, None)}) == {
        "f": 2.0,
        "o": None,
    }


def test_resampler_keeps_a_tone_and_the_length_across_chunks() -> None:
    src = 22050
    t = np.arange(src) / src
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    r = Resampler(RATE)
    out = np.concatenate([r(tone[i : i + 441], src) for i in range(0, src, 441)] + [r.flush()])
    assert abs(len(out) - RATE) <= 2
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * RATE / len(out) - 440) < 2


def test_resample_node_sends_16k_mono_with_the_timestamps_and_ends_the_stream() -> None:
    node, ctx = run_setup(Resample, {"rate": RATE})
    stereo = np.zeros((441, 2), np.float32)
    for i in range(10):
        node.process(LocalMessage.audio(stereo, 22050, timestamp_ns=100 + i))
    node.process(LocalMessage.end())
    msgs = as_messages(ctx.sent, "resample")
    audio = [m for m in msgs if m.kind is Kind.AUDIO]
    assert all(m.sample_rate == RATE and m.channels == 1 and m.array.ndim == 1 for m in audio)
    assert abs(sum(len(m.array) for m in audio) - 3200) <= 2
    assert {m.timestamp_ns for m in audio} <= set(range(100, 110))
    (first,) = [m.json for m in msgs if m.source == "resample.events" and m.kind is Kind.JSON]
    assert (first["event"], first["node"], first["fed_ns"]) == ("first_audio", "test", 100)  # run_setup names it "test"
    ends = [m.source for m in msgs if m.end_of_stream]
    assert ends == ["resample.out", "resample.events"]  # every port it reports on ends


def test_segmenter_starts_after_enough_speech_ends_after_silence_and_drops_blips() -> None:
    seg = Segmenter(threshold=0.5, speech_windows=3, silence_windows=4)
    probs = [0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1] + [0.9] * 5 + [0.4] + [0.1] * 5
    events = [(e.kind, e.window, e.timestamp_ns) for i, p in enumerate(probs) for e in seg.push(p, i)]
    # the blip at window 1 never started; speech 7..11 (0.4 stays voiced once speaking: 12)
    assert events == [("start", 7, 0), ("end", 12, 12)]
    assert seg.push(0.9, 99) == [] and seg.finish() == []  # one window is not an utterance


def test_vad_finds_each_utterance_and_sends_its_audio_between_start_and_end() -> None:
    speech = with_silence(spoken("turn on the kitchen light"), spoken("what time is it"))
    for backend in ("silero", "webrtc"):
        node, ctx = run_setup(Vad, {"backend": backend})
        for msg in chunks(speech):
            node.process(msg)
        out = [m for m in as_messages(ctx.sent, "vad") if m.source == "vad.out"]
        events = [m.json for m in out if m.kind is Kind.JSON]
        assert [(e["event"], e["utterance"]) for e in events] == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
        first_end = events[1]["at_s"]
        assert 0.8 + 1.0 < first_end < 0.8 + len(spoken("turn on the kitchen light")) / RATE + 0.1, backend
        voiced = sum(len(m.array) for m in out if m.kind is Kind.AUDIO) / RATE
        assert 2.0 < voiced < len(speech) / RATE, backend
        assert events[1]["speech_end_ns"] < events[1]["endpoint_ns"]
        assert out[-1].end_of_stream


def test_vad_says_nothing_about_silence_or_noise() -> None:
    node, ctx = run_setup(Vad, {})
    quiet = np.random.default_rng(1).normal(0, 0.003, 3 * RATE).astype(np.float32)
    for msg in chunks(quiet):
        node.process(msg)
    sent = as_messages(ctx.sent, "vad")
    assert [m.json["event"] for m in sent if m.kind is Kind.JSON] == ["first_audio"]
    assert not [m for m in sent if m.kind is Kind.AUDIO]


def test_vad_refuses_audio_at_another_rate() -> None:
    node, _ = run_setup(Vad, {})
    with pytest.raises(ValueError, match="resample"):
        node.process(LocalMessage.audio(np.zeros(441, np.float32), 22050))


def _transcribe(params: dict, samples: np.ndarray) -> list[dict]:
    node, ctx = run_setup(Asr, params)
    node.process(LocalMessage({"event": "start", "utterance": 0}))
    for msg in chunks(samples, end=False):
        node.process(msg)
    node.process(LocalMessage({"event": "end", "utterance": 0, "speech_end_ns": 7, "endpoint_ns": 9}))
    node.process(LocalMessage.end())
    sent = as_messages(ctx.sent, "asr")
    assert sent[-1].end_of_stream
    return [m.json for m in sent if m.kind is Kind.JSON]


def test_asr_grammar_recognises_a_spoken_command() -> None:
    grammar = dict(voice_nodes()[2][2])["grammar"]
    (got,) = _transcribe({"grammar": grammar}, spoken("turn on the kitchen light"))
    assert got["text"] == "turn on the kitchen light"
    assert (got["utterance"], got["speech_end_ns"], got["endpoint_ns"]) == (0, 7, 9)


def test_asr_vocabulary_and_keyphrase_modes() -> None:
    words = "turn on off the kitchen light".split()
    (got,) = _transcribe({"vocabulary": words}, spoken("turn on the kitchen light"))
    assert {"turn", "kitchen"} <= set(got["text"].split())
    (got,) = _transcribe({"keyphrases": ["kitchen", "bedroom"]}, spoken("turn on the kitchen light"))
    assert got["text"] == "kitchen"


def test_asr_sends_nothing_for_an_empty_transcript_and_checks_its_params() -> None:
    assert _transcribe({"grammar": dict(voice_nodes()[2][2])["grammar"]}, np.zeros(RATE // 2, np.float32)) == []
    with pytest.raises(ParamError, match="not in the pocketsphinx dictionary: \\['zzqx'\\]"):
        run_setup(Asr, {"vocabulary": ["hello", "zzqx"]})
    with pytest.raises(ParamError, match="not usable JSGF"):
        run_setup(Asr, {"grammar": "#JSGF V1.0;\ngrammar g;\npublic <a> = zzqxword;\n"})
    with pytest.raises(ParamError, match="at most one"):
        Asr(node_id="a", params={"vocabulary": ["a"], "keyphrases": ["a"]})


def test_asr_whisper_backend_says_how_to_get_it() -> None:
    # faster-whisper lives in the models venv, not the test venv: the error says how to get it
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        with pytest.raises(NodeLoadError, match="faster-whisper") as info:
            run_setup(Asr, {"backend": "whisper"})
        assert info.value.hint is not None and "models-env" in info.value.hint
    else:  # installed: a model that is not there is named
        with pytest.raises(ParamError, match="could not be loaded"):
            run_setup(Asr, {"backend": "whisper", "model": "/nonexistent/model"})


def test_normalise_and_vocabulary_grammar() -> None:
    assert normalise("Turn ON(2) <sil> the [noise] light") == "turn on the light"
    assert "( kitchen | light | turn )+" in vocabulary_grammar(["turn", "Kitchen", "light", "turn"])


@pytest.mark.parametrize(("heard", "answer"), [
    ("turn on the kitchen light", "Turning on the kitchen light."),
    ("turn off the bedroom lights", "Turning off the bedroom lights."),
    ("hello computer", "Hello! How can I help you?"),
    ("computer tell me a joke", "Why did the robot go on holiday? It needed to recharge."),
    ("bananas are yellow", "You said: bananas are yellow."),
])  # fmt: skip
def test_responder_answers_commands_and_echoes_the_rest(heard: str, answer: str) -> None:
    assert reply(heard) == answer


def test_responder_tells_the_time_and_ignores_nothing() -> None:
    assert reply("what time is it").startswith("It is ")
    assert [say_time(datetime.time(h, m)) for h, m in ((0, 25), (9, 5), (13, 0), (23, 59))] == [
        "It is 12 25 AM.",
        "It is 9 oh 5 AM.",
        "It is 1 o'clock.",
        "It is 11 59 PM.",
    ]
    assert reply("   ") is None and reply("bananas", echo=False) is None


def test_tts_streams_speech_in_chunks_with_the_reply_timestamp() -> None:
    node, ctx = run_setup(Tts, {"chunk_ms": 40})
    node.process(LocalMessage({"text": "Turning on the kitchen light."}, timestamp_ns=42))
    node.process(LocalMessage({"text": ""}, timestamp_ns=43))
    node.process(LocalMessage.end())
    sent = as_messages(ctx.sent, "tts")
    audio = [m for m in sent if m.kind is Kind.AUDIO]
    assert len(audio) > 10 and {m.timestamp_ns for m in audio} == {42}
    sizes = {len(m.array) for m in audio[:-1]}  # about chunk_ms each (espeak rounds up)
    assert min(sizes) >= 22050 * 40 // 1000 and max(sizes) <= 22050 * 60 // 1000, sizes
    samples = np.concatenate([m.array for m in audio])
    assert 1.0 < len(samples) / audio[0].sample_rate < 4.0
    assert np.sqrt(np.mean(samples**2)) > 0.02  # speech, not silence
    assert sent[-1].end_of_stream


def test_tts_checks_its_backend_and_voice() -> None:
    try:
        import piper  # noqa: F401
    except ImportError:  # it lives in the models venv: the error says how to get it
        with pytest.raises(NodeLoadError, match="piper-tts") as info:
            run_setup(Tts, {"backend": "piper"})
        assert info.value.hint is not None and "models-env" in info.value.hint
    with pytest.raises(ParamError, match="no voice 'xx-nosuch'"):
        run_setup(Tts, {"voice": "xx-nosuch"})


def test_tts_stops_synthesizing_when_sending_fails() -> None:
    node, ctx = run_setup(Tts, {})

    def refuse(*_: object) -> None:
        raise KeyError("consumer gone")

    ctx._send = refuse  # type: ignore[method-assign]
    with pytest.raises(KeyError, match="consumer gone"):
        node.process(LocalMessage({"text": "A sentence that would take a while to say."}))


def test_to_gray_matches_the_bt601_formula() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (108, 192, 3), dtype=np.uint8)
    out = np.empty((54, 96), np.uint8)
    to_gray(frame, 2, out)
    f = frame[::2, ::2].astype(np.int64)
    assert np.array_equal(out, ((77 * f[..., 0] + 150 * f[..., 1] + 29 * f[..., 2]) >> 8).astype(np.uint8))


def test_gray_node_turns_a_1080p_frame_into_a_loan_and_ends_the_stream() -> None:
    node, ctx = run_setup(Gray, {"scale": 2})
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    node.process(LocalMessage(frame, Kind.VIDEO, pixel_format=PixelFormat.RGB24, timestamp_ns=5))
    node.process(LocalMessage.end())
    (port, gray, kind, fields), end = ctx.sent
    assert (port, kind, gray.shape, fields["pixel_format"]) == ("out", Kind.VIDEO, (540, 960), PixelFormat.GRAY8)
    assert np.all(gray == 200) and end[3]["flags"]


def test_the_voice_pipeline_in_one_process_answers_each_command() -> None:
    # Sentences that pocketsphinx's grammar mode gets right from espeak-ng's voice (it
    # hears "hello computer" through soxr as just "computer", and "what time is it" as
    # "what time": synthetic speech is not what its acoustic model was trained on).
    speech = with_silence(spoken("computer tell me a joke"), spoken("turn on the kitchen light"))
    chain = LocalChain(voice_nodes())
    out = chain.run(chunks(speech))
    heard = [m.json["text"] for m in chain["asr"].sent if m.kind is Kind.JSON]
    assert heard == ["computer tell me a joke", "turn on the kitchen light"]
    replies = [m.json["text"] for m in chain["responder"].sent if m.kind is Kind.JSON]
    assert replies == ["Why did the robot go on holiday? It needed to recharge.", "Turning on the kitchen light."]
    audio = [m for m in out if m.kind is Kind.AUDIO]
    assert len({m.timestamp_ns for m in audio}) == 2 and out[-1].end_of_stream
    chain.close()


def test_wav_source_plays_a_file_and_wav_sink_writes_it_back(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone = (0.25 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    write_wav(src, tone, 8000)
    source, ctx = run_setup(WavSource, {"path": str(src), "chunk_ms": 100, "realtime": False})
    source.run(ctx)
    sent = as_messages(ctx.sent, "source")
    assert len(sent) == 11 and sent[-1].end_of_stream and {m.sample_rate for m in sent[:-1]} == {8000}
    sink, _ = run_setup(WavSink, {"path": str(dst)})
    for msg in sent:
        sink.process(msg)
    back, rate = read_wav(dst)
    assert rate == 8000 and np.allclose(back[:, 0], tone, atol=1e-4)
    with pytest.raises(ParamError, match="required"):
        WavSource(node_id="s", params={})


def test_segmenter_pauses_once_per_silence_of_a_started_utterance() -> None:
    seg = Segmenter(threshold=0.5, speech_windows=2, silence_windows=5, pause_windows=2)
    probs = [0.9] * 3 + [0.1] * 2 + [0.9] + [0.1] * 5
    kinds = [(e.kind, i) for i, p in enumerate(probs) for e in seg.push(p, i)]
    assert kinds == [("start", 1), ("pause", 4), ("pause", 7), ("end", 10)]


def test_early_endpoint_ends_a_whole_command_at_the_pause_and_only_then() -> None:
    grammar = dict(voice_nodes()[2][2])["grammar"]
    node, ctx = run_setup(Asr, {"grammar": grammar, "early_endpoint": True})
    command = spoken("turn on the kitchen light")
    half = len(command) // 2  # "turn on the" ... : not a whole command yet
    node.process(LocalMessage({"event": "start", "utterance": 0}))
    for msg in chunks(command[:half], end=False):
        node.process(msg)
    node.process(LocalMessage({"event": "pause", "utterance": 0, "speech_end_ns": 1, "endpoint_ns": 2}))
    assert ctx.sent == []  # not complete: it waits
    for msg in chunks(command[half:], end=False):
        node.process(msg)
    node.process(LocalMessage({"event": "pause", "utterance": 0, "speech_end_ns": 3, "endpoint_ns": 4}))
    ((port, got, _, fields),) = ctx.sent
    assert got["text"] == "turn on the kitchen light" and (got["speech_end_ns"], got["endpoint_ns"]) == (3, 4)
    node.process(LocalMessage({"event": "end", "utterance": 0, "speech_end_ns": 3, "endpoint_ns": 9}))
    assert len(ctx.sent) == 1  # the VAD's end of that utterance adds nothing
    with pytest.raises(ParamError, match="early_endpoint needs"):
        Asr(node_id="a", params={"vocabulary": ["hello"], "early_endpoint": True})


def test_the_voice_pipeline_answers_at_the_pause_with_the_same_words() -> None:
    speech = with_silence(spoken("computer tell me a joke"), spoken("turn on the kitchen light"))
    chain = LocalChain(voice_nodes())
    chain.run(chunks(speech))
    got = [m.json for m in chain["asr"].sent if m.kind is Kind.JSON]
    assert [g["text"] for g in got] == ["computer tell me a joke", "turn on the kitchen light"]
    # timestamps are sample offsets here: ended 128 ms (4 windows of 32 ms) into the silence, not 300
    assert all(100 * 16 <= g["endpoint_ns"] - g["speech_end_ns"] <= 160 * 16 for g in got), got


def test_held_releases_at_its_end_and_drops_what_speech_overtook() -> None:
    held = Held()
    held.hold(5, "a")
    held.hold(5, "b")
    held.hold(9, "c")
    assert held.confirm(9) == ["c"] and held.dropped == 2  # speech went on after the pause at 5
    assert held.is_confirmed(9) and not held.is_confirmed(5)
    held.hold(12, "d")
    held.clear()
    assert held.dropped == 3 and held.confirm(12) == []


def test_tts_holds_a_speculative_reply_until_the_vads_end() -> None:
    tts, ctx = run_setup(Tts, {"chunk_ms": 40})
    reply = {"text": "It is noon.", "speculative": True}
    tts.process(LocalMessage(reply, timestamp_ns=5, source="llm.out"))
    assert ctx.sent == []  # synthesised, held
    tts.process(LocalMessage({"event": "pause", "speech_end_ns": 5}, timestamp_ns=5, source="vad.events"))
    assert ctx.sent == []
    tts.process(LocalMessage({"event": "end", "speech_end_ns": 5}, timestamp_ns=5, source="vad.events"))
    released = len(ctx.sent)
    assert released > 5 and {f["timestamp_ns"] for _, _, _, f in ctx.sent} == {5}
    # The end came first: the next clause of that reply goes at once.
    tts.process(LocalMessage({**reply, "text": "Lunch time."}, timestamp_ns=5, source="llm.out"))
    assert len(ctx.sent) > released
    # Speech went on after a pause: the reply made at that pause is never heard.
    ctx.sent.clear()
    tts.process(LocalMessage({**reply, "text": "Half a question."}, timestamp_ns=7, source="llm.out"))
    tts.process(LocalMessage({"event": "end", "speech_end_ns": 8}, timestamp_ns=8, source="vad.events"))
    assert ctx.sent == [] and tts.held.dropped > 0
    # A reply not marked speculative goes at once, as before.
    tts.process(LocalMessage({"text": "Hello."}, timestamp_ns=8, source="llm.out"))
    assert ctx.sent
    # The VAD's events end first: the stream ends with the text input, once.
    ctx.sent.clear()
    tts.process(LocalMessage.end(source="vad.events"))
    assert ctx.sent == []
    tts.process(LocalMessage.end(source="llm.out"))
    assert [fields.get("flags") for _, _, _, fields in ctx.sent] == [Flags.END_OF_STREAM]


def test_clauses_cut_the_first_after_first_words_and_the_rest_at_punctuation() -> None:
    pieces = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " big", "."]

    def cut(first_words: int) -> list[str]:
        clauses = Clauses(4, first_words)
        out = [c for p in pieces for c in clauses.feed(p)]
        return [*out, clauses.rest()]

    assert cut(0) == ["The capital of France is Paris.", "It is big."]
    assert cut(4) == ["The capital of France", "is Paris.", "It is big."]
    assert cut(9) == ["The capital of France is Paris.", "It is big."]  # punctuation came first
