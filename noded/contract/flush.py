"""Flush: the data plane's control message for an interruption (a barge-in).

A flush is a CONTROL message with ``Flags.FLUSH`` in its header. It means: "what you hold
or are making of the current stream is stale: drop it, and tell your consumers". Its
payload is a small UTF-8 JSON object (``Flush``):

    {"origin": "vad", "id": 3, "reason": "barge-in", "utterance": 3}

``origin`` (the node or client that raised it) and ``id`` (unique per origin) name it:
a flush that reaches a node on two inputs is handled once (``Seen``). ``timestamp_ns``
in the header is the CLOCK_MONOTONIC time of what caused it (for a barge-in, when the
chunk in which the VAD heard the new speech was fed), so that any consumer can measure
how long the flush took to reach it.

How a worker handles it (``noded.worker.loop``): the node's ``on_flush(msg)`` hook (the
default does nothing) and what it returns are sent, then the flush goes on, unchanged,
on every output port of the node. A node that does long work per message (a language
model writing a reply, a synthesiser speaking it) asks ``ctx.interrupted()`` as it goes:
that looks into its inbox without blocking; when a flush waits there, the messages that
came before it on the same input are dropped (except end-of-stream markers) and the node
should stop the work in hand. The full specification is noded-wire(7), "FLUSH".

Pure: no data plane here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

REASON_BARGE_IN = "barge-in"


class Flush(msgspec.Struct, frozen=True, omit_defaults=True):
    """The payload of a flush message."""

    origin: str = ""
    id: int = 0
    reason: str = ""
    utterance: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.origin, self.id)


_DECODER = msgspec.json.Decoder(Flush)


def encode_flush(flush: Flush) -> bytes:
    return msgspec.json.encode(flush)


def decode_flush(payload: Any) -> Flush:
    """The Flush in a flush message's payload (bytes or a buffer). A payload that is empty
    or not a Flush (a sender that writes none, or an older one) gives ``Flush()``, which
    is handled like any other: a flush is never refused."""
    data = bytes(payload)
    if not data:
        return Flush()
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Flush()


class Seen:
    """The flushes already handled, by key, the ``size`` newest: ``first(flush)`` is True
    once per key. A key-less flush (``Flush()``) is always new."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, int], None] = OrderedDict()

    def first(self, flush: Flush) -> bool:
        if not flush.origin:
            return True
        key = flush.key
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True
