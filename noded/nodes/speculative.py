"""Speculative replies: what a node makes of a transcript sent at the VAD's pause (``asr``'s
``speculate``), held until the VAD's end event confirms that utterance, so that a reply can
be ready when the end comes instead of starting then. Pure.

An utterance is known by its ``speech_end_ns`` (the header ``timestamp_ns`` of everything
made for it). The VAD's end event with the same ``speech_end_ns`` releases what is held for
it; an end with a later one means speech went on after that pause: what is held for the
earlier one is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Held:
    def __init__(self, keep: int = 16) -> None:
        self.held: dict[int, list[Any]] = {}  # speech_end_ns -> items, in order
        self.confirmed: deque[int] = deque(maxlen=keep)  # recent ends: what comes later for them goes at once
        self.dropped = 0  # items dropped: their utterance went on

    def is_confirmed(self, speech_end_ns: int) -> bool:
        return speech_end_ns in self.confirmed

    def hold(self, speech_end_ns: int, item: Any) -> None:
        self.held.setdefault(speech_end_ns, []).append(item)

    def confirm(self, speech_end_ns: int) -> list[Any]:
        """The VAD's end of the utterance whose speech ended at ``speech_end_ns``: what is
        held for it, to send now (earlier utterances' held items are dropped)."""
        self.confirmed.append(speech_end_ns)
        for key in [k for k in self.held if k < speech_end_ns]:
            self.dropped += len(self.held.pop(key))
        return self.held.pop(speech_end_ns, [])

    def clear(self) -> None:
        """The stream ended: what was never confirmed is dropped."""
        self.dropped += sum(len(items) for items in self.held.values())
        self.held.clear()
        self.confirmed.clear()
