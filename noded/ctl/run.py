"""`nodectl run` and `nodectl feed`: stream files through a session's external ports."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import click
import msgspec

from noded.contract.client import Client, session_info
from noded.contract.protocol import SessionInfo
from noded.contract.spec import DataPlane
from noded.ctl.cli import EXIT_FAILED, Ctx, _follow, cli, err, out, reports_errors
from noded.ctl.mediafiles import InputFile, OutputWriter, paced, read_input
from noded.ctl.render import print_failure
from noded.ctl.runreport import RunReport
from noded.dataplane.session import SessionIO
from noded.errors import NodedError, Stopped


def _pairs(values: tuple[str, ...], names: list[str], what: str) -> dict[str, str]:
    """ "[NAME=]FILE" options against the pipeline's port names: {name: option value}.
    A FILE without a name is for the only port, or for outputs the pipeline's first one
    (voice.toml lists its spoken reply first)."""
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


class _Watcher(threading.Thread):
    """Follows the session's events; on failure, stops the client's blocked sends."""

    def __init__(self, client: Client, sid: str, io: SessionIO) -> None:
        super().__init__(daemon=True)
        self.client, self.sid, self.io = client, sid, io
        self.last: SessionInfo | None = None

    def run(self) -> None:
        try:
            for info in self.client.events():
                if info.sid == self.sid:
                    self.last = info
                    if info.failure is not None or info.state in ("stopped", "failed"):
                        self.io.endpoint.stop()
                        return
        except NodedError:
            self.io.endpoint.stop()


def _feed(
    io: SessionIO, port: str, data: InputFile, realtime: bool, end: bool, report: RunReport | None = None
) -> None:
    """Send the file's chunks, each stamped with the time it was sent (timestamp_ns,
    CLOCK_MONOTONIC: the speech nodes measure from it), then END_OF_STREAM."""
    try:
        for chunk in paced(data.chunks, realtime):
            if report is not None:
                report.fed()
            io.send(port, chunk.value, kind=chunk.kind, timestamp_ns=time.monotonic_ns(), **chunk.fields)
        if end:
            io.end(port)
    except Stopped:  # the session failed or stopped: the main thread reports it
        return


@cli.command()
@click.argument("pipeline_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, help="[NAME=]FILE for an external input (.wav, .npy, text).")
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
    are written as they come. For a speech pipeline (examples/voice.toml) the transcripts
    and replies are printed as they come, then the latencies."""
    try:
        text = pipeline_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NodedError(f"cannot read {pipeline_file}: {exc}") from exc
    # Every input file is read (and refused if bad) before any session starts.
    data = {value: read_input(Path(value.rpartition("=")[2]), chunk_ms) for value in inputs}
    with ctx.client(timeout=None) as c:
        info = session_info(c.request("create", text=text, filename=pipeline_file.name, watch=True))
        try:
            status = _run_session(ctx, c, info, data, outputs, realtime, timeout)
        finally:
            with ctx.client(timeout=None) as stopper:
                final = session_info(stopper.request("stop", sid=info.sid, wait=True))
    if status != 0 or final.state == "failed":
        print_failure(err, final if final.failure else info)
        sys.exit(EXIT_FAILED)


def _run_session(
    ctx: Ctx,
    c: Client,
    info: SessionInfo,
    data: dict[str, InputFile],
    outputs: tuple[str, ...],
    realtime: bool,
    timeout: float,
) -> int:
    plane = msgspec.convert(c.request("attach", sid=info.sid)["dataplane"], DataPlane)
    in_names = [o.port for o in plane.outputs]
    out_names = [i.source for i in plane.inputs]
    files = {name: data[value] for name, value in _pairs(tuple(data), in_names, "input").items()}
    missing = set(in_names) - set(files)
    if missing:
        raise click.UsageError(f"no file for input(s) {', '.join(sorted(missing))}")
    targets = {name: value.rpartition("=")[2] for name, value in _pairs(outputs, out_names, "output").items()}
    writers = {name: OutputWriter(targets.get(name, "-")) for name in out_names}  # unnamed: stdout
    # The client joins the data plane as the session's sandboxed user, whose files exist
    # once the nodes are up (noded.dataplane.sessionuser): its ports open right after READY.
    report = RunReport(out, quiet=ctx.json)
    info = _follow(ctx, c, info, until_ready=True)
    if info.state != "ready":
        return EXIT_FAILED
    report.ready_ns = time.monotonic_ns()
    started = time.monotonic()
    with SessionIO(plane) as io:
        feeders = [
            threading.Thread(target=_feed, args=(io, name, data, realtime, True, report), daemon=True)
            for name, data in files.items()
        ]
        for t in feeders:
            t.start()
        watcher = _Watcher(c, info.sid, io)
        watcher.start()
        first: float | None = None
        try:
            for msg in io.messages(timeout=timeout):
                first = first or time.monotonic()
                if not report.handle(msg) or msg.source in targets:
                    writers[msg.source].add(msg)
                del msg  # not held while waiting: the producer gets its credit back
        except Stopped:
            return EXIT_FAILED
        for t in feeders:
            t.join(timeout=1.0)
        for w in writers.values():
            w.close()
        if watcher.last is not None and watcher.last.failure is not None:
            return EXIT_FAILED
        if not io.all_ended:
            err.print(f"nodectl: no END_OF_STREAM on every output within {timeout:.0f}s", markup=False)
            return EXIT_FAILED
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


@cli.command()
@click.argument("sid")
@click.argument("port")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--chunk-ms", default=20, show_default=True, type=click.IntRange(5, 1000))
@click.option("--realtime", is_flag=True, help="Feed audio no faster than real time.")
@click.option("--no-end", is_flag=True, help="Do not send END_OF_STREAM after the file.")
@click.pass_obj
@reports_errors
def feed(ctx: Ctx, sid: str, port: str, file: Path, chunk_ms: int, realtime: bool, no_end: bool) -> None:
    """Send FILE to external input PORT of session SID (.wav audio, .npy, or text lines)."""
    data = read_input(file, chunk_ms)
    with ctx.client() as c:
        plane = msgspec.convert(c.request("attach", sid=sid)["dataplane"], DataPlane)
    with SessionIO(plane) as io:
        if port not in io.inputs:
            raise click.UsageError(f"session {sid} has no input {port!r} (it has: {', '.join(io.inputs) or 'none'})")
        _feed(io, port, data, realtime, not no_end)
    if ctx.json:
        ctx.emit(
            {"sid": sid, "port": port, "file": str(file), "messages": len(data.chunks), "end_of_stream": not no_end}
        )
    else:
        out.print(f"fed {len(data.chunks)} message(s) from {file} to {sid}:{port}")
