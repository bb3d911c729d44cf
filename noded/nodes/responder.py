"""``responder``: a rule-based reply to each transcript. It answers the commands it knows
(the time, lights on and off, greetings, a joke, the weather, thanks, stop) and echoes
anything else ("You said: ...").

Input: the ``asr`` node's JSON transcripts. Output on "out": JSON ``{"utterance",
"heard", "text", "speech_end_ns", "endpoint_ns"}`` with the transcript's ``timestamp_ns``. An empty
transcript gets no reply.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from noded.contract.wire import Kind
from noded.nodes.params import Param, check_declared
from noded.nodes.streams import StreamNode

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def say_time(t: datetime.time) -> str:
    """The time as a person says it (and espeak-ng reads it): "It is 9 oh 5 AM."."""
    hour, half = t.hour % 12 or 12, "AM" if t.hour < 12 else "PM"
    if t.minute == 0:
        return f"It is {hour} o'clock."
    minute = f"oh {t.minute}" if t.minute < 10 else str(t.minute)
    return f"It is {hour} {minute} {half}."


def _clock(_: re.Match[str]) -> str:
    return say_time(datetime.datetime.now().time())


RULES: list[Rule] = [
    (re.compile(r"\bwhat time\b|\bthe time\b"), _clock),
    (re.compile(r"\bturn (on|off) (?:the )?(\w+(?: \w+)?)"), lambda m: f"Turning {m[1]} the {m[2]}."),
    (re.compile(r"\bjoke\b"), lambda m: "Why did the robot go on holiday? It needed to recharge."),
    (re.compile(r"\bweather\b"), lambda m: "I cannot see outside, but I hope it is sunny."),
    (re.compile(r"\bthank"), lambda m: "You are welcome."),
    (re.compile(r"\b(?:stop|cancel)\b"), lambda m: "Stopping."),
    (re.compile(r"\b(?:hello|hi|hey)\b"), lambda m: "Hello! How can I help you?"),
]


def reply(text: str, echo: bool = True) -> str | None:
    """The answer to ``text`` (a normalised transcript), or None when there is none."""
    text = " ".join(text.lower().split())
    if not text:
        return None
    for pattern, answer in RULES:
        match = pattern.search(text)
        if match:
            return answer(match)
    return f"You said: {text}." if echo else None


class Responder(StreamNode):
    SUMMARY = "Answers asr's transcripts by rules (commands it knows); the reply text on port out."
    PARAMS = {"echo": Param(bool, True, "Repeat a transcript that is no known command (false: stay silent).")}
    EXAMPLE = 'class = "responder"\ninputs = ["asr.out"]'
    kinds = frozenset({Kind.JSON})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.echo: bool = check_declared(self, self.PARAMS)["echo"]

    def handle(self, msg: Any) -> None:
        heard = msg.json
        text = reply(heard.get("text", ""), self.echo)
        if text is not None:
            self.ctx.send(
                "out",
                {
                    "utterance": heard.get("utterance"),
                    "heard": heard.get("text", ""),
                    "text": text,
                    "speech_end_ns": heard.get("speech_end_ns", 0),
                    "endpoint_ns": heard.get("endpoint_ns", 0),
                },
                timestamp_ns=msg.timestamp_ns,
            )
