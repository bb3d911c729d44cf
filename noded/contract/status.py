"""The STATUS= text a worker sends through sd_notify, and its parser.

This is the contract between a node process and the daemon: the worker formats
its phase and load progress into the unit's ``StatusText``; systemd forwards every
change as a ``PropertiesChanged`` signal, and the daemon parses it back. Both sides
import this module, so the format lives in exactly one place.

Format: ``<phase>[ <percent>%][: <text>]``, for example
``initializing 42%: loading weights``, ``ready``, ``processing``, ``error: boom``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    INITIALIZING = "initializing"
    READY = "ready"
    PROCESSING = "processing"
    IDLE = "idle"
    STOPPING = "stopping"
    ERROR = "error"


@dataclass(frozen=True)
class Status:
    phase: Phase
    fraction: float | None = None
    text: str = ""


_STATUS_RE = re.compile(r"^(?P<phase>[a-z]+)(?: (?P<pct>\d{1,3}(?:\.\d)?)%)?(?:: (?P<text>.*))?$", re.S)


def format_status(status: Status) -> str:
    out = str(status.phase)
    if status.fraction is not None and not math.isnan(status.fraction):
        # (NaN would print "nan%", which parse_status rejects: show no percentage instead.)
        pct = min(max(status.fraction, 0.0), 1.0) * 100.0
        out += f" {pct:.1f}%"
    if status.text:
        # One line: the journal and `systemctl status` show StatusText on one line.
        out += ": " + " ".join(status.text.split())
    return out


def parse_status(text: str) -> Status | None:
    """Parse a StatusText; None when it is empty or not ours."""
    m = _STATUS_RE.match(text or "")
    if m is None:
        return None
    try:
        phase = Phase(m["phase"])
    except ValueError:
        return None
    pct = m["pct"]
    fraction = min(float(pct) / 100.0, 1.0) if pct is not None else None
    return Status(phase, fraction, m["text"] or "")
