"""`nodectl run` and `nodectl feed`: stream files through a session's external ports,
through ``noded.api`` (numpy and the data plane are imported by the commands)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from noded.contract.exitcodes import CliExit
from noded.contract.states import SessionState
from noded.ctl.common import Ctx, err, fail, out, reports_errors
from noded.ctl.render import print_failure
from noded.errors import NodedError, Stopped
from noded.pipeline.bounds import refuse_too_large

if TYPE_CHECKING:
    from noded.api import Session
    from noded.ctl.mediafiles import InputFile
    from noded.ctl.runreport import RunReport


def _pairs(values: tuple[str, ...], names: list[str], what: str) -> dict[str, str]:
    """ "[NAME=]FILE" options against the pipeline's port names: {name: option value}.
    A FILE without a name is for the only port, or for outputs the pipeline's first one
    (commands.toml lists its spoken reply first)."""
    out_: dict[str, str] = {}
    for value in values:
        name, sep, _path = value.rpartition("=")
        if not sep:
            if len(names) != 1 and not (what == "output" and names and len(values) == 1):
                raise click.UsageError(
                    f"the pipeline has {what}s {', '.join(names) or 'none'}: give --{what} NAME=FILE"
                )
            name = names[0]
        if name not in names:
            raise click.UsageError(f"the pipeline has no {what} {name!r} (it has: {', '.join(names) or 'none'})")
        out_[name] = value
    return out_


def say_stall(what: str) -> None:
    """A feed that cannot progress says what it waits for, on stderr, and goes on waiting."""
    err.print(f"nodectl: still waiting: {what}", markup=False, highlight=False)


def _feed(
    session: Session, port: str, data: InputFile, realtime: bool, end: bool, report: RunReport | None = None
) -> None:
    """Send the file's chunks, each stamped with the time it was sent (timestamp_ns,
    CLOCK_MONOTONIC: the speech nodes measure from it), then END_OF_STREAM."""
    from noded.ctl.mediafiles import paced

    try:
        for chunk in paced(data.chunks, realtime):
            if report is not None:
                report.fed()
            fields: dict[str, Any] = chunk.fields  # header fields: sample_rate, channels
            session.feed(port, chunk.value, kind=chunk.kind, timestamp_ns=time.monotonic_ns(), **fields)
        if end:
            session.end(port)
    except Stopped:  # the session failed or stopped: the main thread reports it
        return


@click.command()
@click.argument("pipeline_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, help="[NAME=]FILE for an external input (audio, .npy, text).")
@click.option(
    "--output",
    "-o",
    "outputs",
    multiple=True,
    help="[NODE.PORT=]FILE for an external output (no NODE.PORT: the first); - is stdout.",
)
@click.option("--chunk-ms", default=20, show_default=True, type=click.IntRange(5, 1000), help="Audio chunk size.")
@click.option(
    "--realtime/--fast",
    default=True,
    show_default=True,
    help="Feed audio at its real-time pace, or as fast as the pipeline takes it.",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for output once input has ended.")
@click.pass_obj
@reports_errors
def run(
    ctx: Ctx,
    pipeline_file: Path,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    chunk_ms: int,
    realtime: bool,
    timeout: float,
) -> None:
    """Run PIPELINE_FILE on input files: create a session, stream, write outputs, stop.

    Audio goes in as chunks of --chunk-ms, at its real-time pace unless --fast; outputs
    are written as they come. For a speech pipeline (examples/commands.toml) the transcripts
    and replies are printed as they come, then the latencies."""
    from noded.ctl.mediafiles import read_input

    try:
        text = pipeline_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NodedError(f"cannot read {pipeline_file}: {exc}") from exc
    refuse_too_large(text, str(pipeline_file))
    # Every input file is read (and refused if bad) before any session starts.
    data = {value: read_input(Path(value.rpartition("=")[2]), chunk_ms) for value in inputs}
    with ctx.connect() as nd:
        folder = str(pipeline_file.absolute().parent)
        session = nd.create(text, filename=pipeline_file.name, wait=False, directory=folder)
        first = session.info
        with session:  # stopped (waiting until every unit is gone) on leaving
            status = _run_session(ctx, session, data, outputs, realtime, timeout)
        final = session.info
    if status != 0 or final.state is SessionState.FAILED:
        print_failure(err, final if final.failure else first)
        fail()


def _run_session(
    ctx: Ctx,
    session: Session,
    data: dict[str, InputFile],
    outputs: tuple[str, ...],
    realtime: bool,
    timeout: float,
) -> int:
    from noded.ctl.mediafiles import OutputWriter, for_port
    from noded.ctl.runreport import RunReport

    in_names, out_names = session.inputs, session.output_names
    files = {name: data[value] for name, value in _pairs(tuple(data), in_names, "input").items()}
    missing = set(in_names) - set(files)
    if missing:
        raise click.UsageError(f"no file for input(s) {', '.join(sorted(missing))}")
    targets = {name: value.rpartition("=")[2] for name, value in _pairs(outputs, out_names, "output").items()}
    writers = {name: OutputWriter(targets.get(name, "-")) for name in out_names}  # unnamed: stdout
    # The client joins the data plane as the session's sandboxed user, whose files exist
    # once the nodes are up (noded.dataplane.sessionuser): its ports open right after READY.
    report = RunReport(out, quiet=ctx.json)
    info = ctx.follow(session, until_ready=True)
    if info.state is not SessionState.READY:
        return CliExit.FAILED
    report.ready_ns = time.monotonic_ns()
    started = time.monotonic()
    session.on_stall = say_stall
    session.attach()  # from here a guard stops blocked sends if the session fails
    files = {name: for_port(session, name, data) for name, data in files.items()}  # resampled if asked
    feeders = [
        threading.Thread(target=_feed, args=(session, name, data, realtime, True, report), daemon=True)
        for name, data in files.items()
    ]
    for t in feeders:
        t.start()
    first: float | None = None
    try:
        for msg in session.outputs(timeout=timeout):
            first = first or time.monotonic()
            if not report.handle(msg) or (msg.source in targets and not msg.flush):
                writers[msg.source].add(msg)
            for key, played in report.take_cuts():  # a barge-in: the rest of that reply is not written
                for w in writers.values():
                    w.cut(key, played)
            del msg  # not held while waiting: the producer gets its credit back
    except Stopped:
        return CliExit.FAILED
    for t in feeders:
        t.join(timeout=1.0)
    for w in writers.values():
        w.close()
    if session.info.failure is not None:
        return CliExit.FAILED
    if not session.all_ended:
        err.print(f"nodectl: no END_OF_STREAM on every output within {timeout:.0f}s", markup=False)
        return CliExit.FAILED
    session.detach()
    summary = ", ".join(
        f"{n}: {w.count} message(s) -> {w.target}" for n, w in writers.items() if w.count or n in targets
    )
    latency = f"; first output after {1000 * (first - started):.0f} ms" if first else ""
    err.print(f"session {info.sid}: {summary or 'no output'}{latency}", markup=False, highlight=False, soft_wrap=True)
    if ctx.json:
        ctx.emit({"sid": info.sid, **report.as_dict()})
    else:
        report.summary()
    return 0


@click.command()
@click.argument("sid")
@click.argument("port")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--chunk-ms",
    default=20,
    show_default=True,
    type=click.IntRange(5, 1000),
    help="Audio chunk size in milliseconds: each message carries this much of a .wav file.",
)
@click.option("--realtime", is_flag=True, help="Feed audio no faster than real time.")
@click.option("--no-end", is_flag=True, help="Do not send END_OF_STREAM after the file.")
@click.pass_obj
@reports_errors
def feed(ctx: Ctx, sid: str, port: str, file: Path, chunk_ms: int, realtime: bool, no_end: bool) -> None:
    """Send FILE to external input PORT of session SID (audio: WAV, FLAC, OGG; .npy; or text lines)."""
    from noded.ctl.mediafiles import for_port, read_input

    data = read_input(file, chunk_ms)
    with ctx.connect() as nd, nd.session(sid) as session:
        session.on_stall = say_stall
        if port not in session.inputs:
            raise click.UsageError(
                f"session {sid} has no input {port!r} (it has: {', '.join(session.inputs) or 'none'})"
            )
        data = for_port(session, port, data)  # resampled and downmixed if its consumer asks
        _feed(session, port, data, realtime, not no_end)
    if ctx.json:
        ctx.emit(
            {"sid": sid, "port": port, "file": str(file), "messages": len(data.chunks), "end_of_stream": not no_end}
        )
    else:
        out.print(f"fed {len(data.chunks)} message(s) from {file} to {sid}:{port}", markup=False, highlight=False)
