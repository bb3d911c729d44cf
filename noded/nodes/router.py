"""The assistant's command router: rules for what rules know (lights, the time, timers,
the weather, stop), so a small language model never answers "turn off the lights in the
kitchen" (SmolLM2-135M said "I'm sorry for your loss"). Pure: ``route(text)`` is the
rule's answer, or None for the model.
"""

from __future__ import annotations

import re

from noded.nodes.responder import reply as rule_reply

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "sixty": 60,
}  # fmt: skip
_TIMER = re.compile(r"\b(?:set|start)\b.*\btimer\b.*?\b(\d+|[a-z]+)\s+(second|minute|hour)s?\b|\btimer\b")
# "turn off the lights in the kitchen": the room after the lights.
_LIGHTS_IN = re.compile(r"\b(?:turn|switch) (on|off) (?:the |my )?lights? in (?:the |my )?(\w+(?: room)?)")
_LIGHTS = re.compile(
    r"\b(?:turn|switch) (on|off) (?:the |my )?(\w+(?: room)?) lights?\b"
    r"|\b(?:turn|switch) (on|off) (?:the |my )?lights?\b"
)


def route(text: str) -> str | None:
    """The command's answer, or None when the language model should answer."""
    text = " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())
    if not text:
        return None
    if match := _LIGHTS_IN.search(text):
        return f"Turning {match[1]} the {match[2]} lights."
    if match := _LIGHTS.search(text):
        if match[1]:
            return f"Turning {match[1]} the {match[2]} lights."
        return f"Turning {match[3]} the lights."
    if match := _TIMER.search(text):
        if match[1] is None:
            return "For how long? Say, set a timer for five minutes."
        count = int(match[1]) if match[1].isdigit() else _NUMBERS.get(match[1])
        if count is None:
            return "For how long? Say, set a timer for five minutes."
        unit = match[2] + ("s" if count != 1 else "")
        return f"Timer set for {count} {unit}."
    if re.search(r"\bjoke\b|\bhello\b|\bthank", text):
        return None  # small talk: the model's
    return rule_reply(text, echo=False)
