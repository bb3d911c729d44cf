"""A normal session's life leaves no iceoryx2 warning in any log.

Full create, stream and stop cycles, through the three clients a user has (``noded.connect``
in a ``with`` block, ``nodectl run``, ``nodectl session create`` + ``feed`` + ``session
stop``): the clients' stderr and the journal of the cycle (the session's units and
noded.service) must hold no iceoryx2 output, such as "The static storage was already
removed. This could be caused by a corrupted system." (a file removed while something
still held it). Output that bypasses Python's logging (journald's stdout transport, where
iceoryx2's console logger writes) is refused too, whatever its words.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from noded.wavfile import write_wav

from .conftest import Sessions, nodectl
from .test_dataplane import io_chain

ICEORYX2 = re.compile(r"static storage|corrupted system|iceoryx2|iox2|\[W\]|\[E\]", re.IGNORECASE)


def journal_cursor() -> str:
    res = subprocess.run(["journalctl", "--show-cursor", "-n", "0", "-q"], capture_output=True, text=True)
    return res.stdout.strip().removeprefix("-- cursor: ")


def journal_after(cursor: str) -> list[dict[str, Any]]:
    res = subprocess.run(
        ["journalctl", "--no-pager", "-o", "json", "--after-cursor", cursor], capture_output=True, text=True
    )
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def message(entry: dict[str, Any]) -> str:
    text = entry.get("MESSAGE", "")
    return bytes(text).decode(errors="replace") if isinstance(text, list) else str(text)


def cycle_journal(cursor: str, sids: list[str], ends: tuple[str, ...] = ("stopped",)) -> list[dict[str, Any]]:
    """The cycle's entries of the sessions' units and of noded.service, once journald has
    the daemon's last word on each session (one of ``ends``)."""
    deadline = time.monotonic() + 30
    while True:
        found = journal_after(cursor)
        ours = [e for e in found if e.get("NODED_SESSION") in sids or e.get("_SYSTEMD_UNIT") == "noded.service"]
        done = all(any(f"session {sid}: {end}" in message(e) for e in ours for end in ends) for sid in sids)
        if done or time.monotonic() > deadline:
            assert done, [message(e) for e in ours]
            return ours


def bad_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if ICEORYX2.search(line)]


API_CYCLE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import noded

    with noded.connect() as nd:
        with nd.create(sys.argv[1]) as session:
            session.wait_ready(timeout=60)
            for i in range(8):  # fewer than the edges hold: nothing is read until the end
                session.feed("data", np.full(256, i, np.uint8))
            session.end("data")
            got = sum(1 for _ in session.outputs(timeout=30))
            print("sid", session.sid, "got", got)
    """
)


def test_a_full_cycle_through_every_client_leaves_no_iceoryx2_warning(sessions: Sessions, tmp_path: Path) -> None:
    pipeline = sessions.write(io_chain(3))
    cursor = journal_cursor()
    sids: list[str] = []

    # noded.connect() in a with block: create, stream, stop on leaving.
    script = tmp_path / "cycle.py"
    script.write_text(API_CYCLE)
    api = subprocess.run([sys.executable, str(script), str(pipeline)], capture_output=True, text=True, timeout=120)
    assert api.returncode == 0, api.stderr
    sid, got = api.stdout.split()[1], int(api.stdout.split()[3])
    sessions.created.append(sid)
    sids.append(sid)
    assert got == 8  # every message (the end of stream ends the iteration)
    assert bad_lines(api.stderr) == [], api.stderr

    # nodectl run: create, stream a file, write the output, stop.
    src = tmp_path / "in.wav"
    write_wav(src, np.zeros((16000, 1), np.float32), 16000)
    run = nodectl("--json", "run", str(pipeline), "-i", str(src), "-o", str(tmp_path / "out.wav"), "--fast")
    assert run.returncode == 0, run.stderr
    sid = json.loads(run.stdout.splitlines()[-1])["sid"]
    sessions.created.append(sid)
    sids.append(sid)
    assert bad_lines(run.stderr) == [], run.stderr

    # nodectl session create, feed twice, session stop.
    no_outputs = sessions.write(io_chain(2).replace('outputs = ["n1.out"]\n', ""), "feed.toml")
    created = nodectl("--json", "session", "create", str(no_outputs), "--wait")
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["sid"]
    sessions.created.append(sid)
    sids.append(sid)
    data = tmp_path / "t.npy"
    np.save(data, np.arange(64, dtype=np.int16))
    outputs = [created.stderr]
    for extra in (["--no-end"], []):
        fed = nodectl("feed", sid, "data", str(data), *extra)
        assert fed.returncode == 0, fed.stderr
        outputs.append(fed.stderr)
    stopped = nodectl("session", "stop", sid)
    assert stopped.returncode == 0, stopped.stderr
    outputs.append(stopped.stderr)
    assert bad_lines("\n".join(outputs)) == [], outputs

    entries = cycle_journal(cursor, sids)
    iceoryx2 = [message(e) for e in entries if ICEORYX2.search(message(e))]
    assert iceoryx2 == [], iceoryx2
    # What a node writes around Python's logging (iceoryx2's console logger, a library's
    # print) reaches journald on stdout: none in a normal life of passthrough nodes.
    raw = [message(e) for e in entries if e.get("_TRANSPORT") == "stdout"]
    assert raw == [], raw
    warnings = [message(e) for e in entries if int(e.get("PRIORITY", 6)) <= 4]
    assert warnings == [], warnings


# A client that is still attached when its session ends, and takes a moment to notice:
# the session fails under it (a node crashes mid-stream), another client stops it, or it
# stops the session itself. The daemon must not remove the session's iceoryx2 files
# before this client has closed its ports, or closing them warns ("The static storage
# was already removed").
LATE_CLIENT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import noded
    from noded.dataplane.channels import ConsumerGone

    with noded.connect() as nd:
        with nd.create(sys.argv[1]) as session:
            session.wait_ready(timeout=60)
            print("sid", session.sid, flush=True)
            try:
                if sys.argv[2] == "self":  # stops its own session while attached
                    session.feed("data", np.zeros(256, np.uint8))
                    session.stop(wait=True)
                    print("stopped", flush=True)
                elif sys.argv[2] == "crash":
                    for i in range(10_000):
                        session.feed("data", np.full(256, i % 256, np.uint8))
                        time.sleep(0.01)
                else:
                    for _ in session.outputs(timeout=60):
                        pass
            except (noded.Stopped, ConsumerGone):  # the session's end, or its first node gone
                print("stopped", flush=True)
            time.sleep(1.0)  # busy elsewhere: the ports stay open a while after the end
    """
)


def late_client_cycle(sessions: Sessions, tmp_path: Path, toml: str, mode: str) -> tuple[str, str, str]:
    pipeline = sessions.write(toml, f"{mode}.toml")
    script = tmp_path / "late.py"
    script.write_text(LATE_CLIENT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pipeline), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:1] == ["sid"], (first, proc.stderr.read() if proc.stderr else "")
        sid = first[1]
        sessions.created.append(sid)
        if mode == "stop":
            time.sleep(0.5)
            stopped = nodectl("session", "stop", sid)
            assert stopped.returncode == 0, stopped.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return sid, out, err


def test_a_client_attached_when_its_session_fails_or_is_stopped_leaves_no_iceoryx2_warning(
    sessions: Sessions, tmp_path: Path
) -> None:
    cursor = journal_cursor()
    crash = io_chain(1).replace('outputs = ["n0.out"]\n', "") + textwrap.dedent(
        """
        [[nodes]]
        id = "boom"
        class = "chaos"
        params = { crash = "sigkill", at = "message", nth = 20 }
        inputs = ["n0.out"]
        """
    )
    sid_crash, out, err = late_client_cycle(sessions, tmp_path, crash, "crash")
    assert "stopped" in out, (out, err)
    assert bad_lines(err) == [], err
    sid_stop, out, err = late_client_cycle(sessions, tmp_path, io_chain(2), "stop")
    assert "stopped" in out, (out, err)
    assert bad_lines(err) == [], err
    sid_self, out, err = late_client_cycle(sessions, tmp_path, io_chain(2), "self")
    assert "stopped" in out, (out, err)
    assert bad_lines(err) == [], err

    entries = cycle_journal(cursor, [sid_crash, sid_stop, sid_self], ends=("stopped", "failed"))
    iceoryx2 = [message(e) for e in entries if ICEORYX2.search(message(e))]
    assert iceoryx2 == [], iceoryx2
    raw = [message(e) for e in entries if e.get("_TRANSPORT") == "stdout"]
    assert raw == [], raw
