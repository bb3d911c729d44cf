"""Ask a node's ``python`` (the pipeline key) whether it can host a worker of this daemon.

At create, before any unit starts, each distinct interpreter a pipeline names is run once
with a short script: is noded importable there, and does it speak this daemon's wire
format and worker spec?  A mismatch would otherwise show up as a node that fails at
start (or worse, misreads headers).  Each create asks afresh (about 0.1 s, off the event
loop): noded may have been reinstalled in the venv since.
"""

from __future__ import annotations

import asyncio
import json

from noded import __version__
from noded.contract.spec import spec_fingerprint
from noded.contract.wire import VERSION as WIRE_VERSION
from noded.errors import PipelineError, Problem
from noded.pipeline.schema import Pipeline

PROBE = (
    "import json, noded\n"
    "from noded.contract import spec, wire\n"
    "print(json.dumps({'version': noded.__version__, 'wire': wire.VERSION, 'spec': spec.spec_fingerprint()}))\n"
)
PROBE_TIMEOUT = 30.0
HINT = (
    "the node's python must be a venv with this daemon's noded installed: "
    "packaging/models-env makes one (or pip install the same noded into it)"
)


async def probe(python: str) -> str | None:
    """Why ``python`` cannot host this daemon's workers, or None when it can."""
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-I",
            "-c",
            PROBE,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"{python!r} could not be run: {exc.strerror or exc}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{python!r} did not answer within {PROBE_TIMEOUT:.0f} s"
    return _verdict(python, proc.returncode, out, err)


def _verdict(python: str, status: int | None, out: bytes, err: bytes) -> str | None:
    if status != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {status}"
        if "No module named 'noded" in last or "No module named 'msgspec" in last:
            return f"noded is not installed in {python!r} ({last})"
        return f"{python!r} cannot import noded: {last}"
    try:
        answer = json.loads(out)
    except ValueError:
        return f"{python!r} gave an unreadable answer: {out[:200]!r}"
    if answer.get("wire") != WIRE_VERSION:
        return f"noded in {python!r} speaks wire version {answer.get('wire')}, this daemon {WIRE_VERSION}"
    if answer.get("spec") != spec_fingerprint():
        return (
            f"noded {answer.get('version')} in {python!r} reads another worker spec than this daemon's "
            f"noded {__version__}"
        )
    return None


async def check_interpreters(pipeline: Pipeline, filename: str) -> None:
    """PipelineError naming each node whose ``python`` cannot host its worker."""
    reasons = {python: await probe(python) for python in {n.python for n in pipeline.nodes if n.python}}
    problems = [
        Problem(filename, node.id, "python", reason)
        for node in pipeline.nodes
        if node.python and (reason := reasons[node.python]) is not None
    ]
    if problems:
        raise PipelineError(problems, hint=HINT)
