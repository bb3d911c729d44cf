"""What the daemon tells a worker about the node it hosts (``--spec`` on its argv)."""

from __future__ import annotations

from typing import Any

import msgspec


class WorkerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    session: str
    node: str
    # Fully resolved "package.module:Class" (built-in short names already expanded).
    cls: str
    params: dict[str, Any] = {}


def encode_spec(spec: WorkerSpec) -> str:
    return msgspec.json.encode(spec).decode()


def decode_spec(text: str) -> WorkerSpec:
    return msgspec.json.decode(text.encode(), type=WorkerSpec)
