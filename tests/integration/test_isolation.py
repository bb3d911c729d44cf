"""Isolation between sessions and from the host, tried by a real node (the `probe` built-in,
noded/nodes/testing/probe.py) inside real units of real sessions."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noded.contract.client import Client
from noded.dataplane.session import SessionIO, request_attach

from .conftest import Sessions, wait_for

IOX2 = Path("/run/noded/iox2")
DENIED = ("EACCES", "EPERM", "EROFS", "ENOENT")


def probe_pipeline(extra: str = "") -> str:
    return (
        'inputs = ["go"]\noutputs = ["probe.out"]\n'
        f'[[nodes]]\nid = "probe"\nclass = "probe"\ninputs = ["input.go"]\n{extra}\n'
    )


class Probe:
    """A session with one probe node, attached as its client."""

    def __init__(self, client: Client, sessions: Sessions, extra: str = "") -> None:
        info = sessions.create(client, probe_pipeline(extra))
        wait_for(client, info.sid, lambda i: i.state == "ready", 30)
        self.sid = info.sid
        self.root = IOX2 / self.sid
        self.io = SessionIO(request_attach(self.sid))
        # Read from now on. A reader attaching later makes an iceoryx2 node, which cleans up
        # nodes that look dead: the probe, once it has read (and closed) its own node's
        # monitor file, whose POSIX lock that close dropped.
        self.io.reader()

    def ask(self, **request: Any) -> dict[str, Any]:
        self.io.send("go", request)
        msg = self.io.receive(timeout=60)
        assert msg is not None, f"probe of session {self.sid} did not answer"
        answer = msg.json
        del msg
        return answer

    def files(self) -> tuple[list[str], list[str], list[str]]:
        """(regular files, directories, sockets) of the session's iceoryx2 root, as root sees them."""
        files, dirs, socks = [], [str(self.root)], []
        for p in sorted(self.root.rglob("*")):
            (dirs if p.is_dir() else socks if p.is_socket() else files).append(str(p))
        return files, dirs, socks

    def segments(self) -> list[str]:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"noded_{self.sid}_"))

    def close(self) -> None:
        self.io.close()


@pytest.fixture
def probes(client: Client, sessions: Sessions) -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for p in made:
        p.close()


def test_a_node_cannot_open_another_sessions_shared_memory_or_iceoryx2_files(
    client: Client,
    sessions: Sessions,
    probes: list[Probe],
) -> None:
    a, b = Probe(client, sessions), Probe(client, sessions)
    probes += [a, b]
    files, dirs, socks = b.files()
    segments = b.segments()
    assert files and socks and segments, "session B has no iceoryx2 files to try"
    request = {"shm": segments, "read": files + dirs, "connect": socks}

    own = b.ask(**request)  # the control: B's own node opens all of it
    theirs = a.ask(**request)

    assert own["uid"] != theirs["uid"], "two sessions run as the same user"
    for name in segments:
        assert own["shm"][name]["read"] == "ok", (name, own["shm"][name])
        assert theirs["shm"][name] == {"read": "EACCES", "write": "EACCES"}, (name, theirs["shm"][name])
    for path in files + dirs:
        assert theirs["read"][path] in DENIED, (path, theirs["read"][path])
    for path in dirs:
        assert own["read"][path] == "ok", (path, own["read"][path])
    for path in socks:
        assert own["connect"][path] == "ok", (path, own["connect"][path])
        assert theirs["connect"][path] in DENIED, (path, theirs["connect"][path])


def test_a_node_writes_only_its_sessions_root_and_private_tmp_and_cannot_read_root(
    client: Client,
    sessions: Sessions,
    probes: list[Probe],
) -> None:
    p = Probe(client, sessions)
    probes.append(p)
    writable = [str(p.root), "/tmp", "/var/tmp"]  # the two last are the unit's own (PrivateTmp=)
    forbidden = [
        "/",
        "/etc",
        "/usr",
        "/opt",
        "/var",
        "/var/lib",
        "/run",
        "/run/noded",
        str(IOX2),
        "/home",
        "/root",
        "/srv",
    ]
    answer = p.ask(
        write=writable + forbidden,
        read=["/root", "/etc/shadow", "/proc/1/environ"],
        connect=["/run/noded/control.sock"],
    )
    for path in writable:
        assert answer["write"][path] == "ok", (path, answer["write"][path])
    for path in forbidden:
        assert answer["write"][path] in DENIED, (path, answer["write"][path])
    assert os.listdir("/root") is not None  # the control: root can list it
    for path, result in answer["read"].items():
        assert result in DENIED, (path, result)
    assert answer["connect"]["/run/noded/control.sock"] == "EACCES"  # not in group noded


def test_network_sockets_only_when_the_pipeline_grants_them(
    client: Client,
    sessions: Sessions,
    probes: list[Probe],
) -> None:
    closed, open_ = Probe(client, sessions), Probe(client, sessions, "network = true")
    probes += [closed, open_]
    families = ["AF_UNIX", "AF_INET", "AF_INET6"]
    denied = closed.ask(sockets=families)["sockets"]
    granted = open_.ask(sockets=families)["sockets"]
    assert denied == {"AF_UNIX": "ok", "AF_INET": "EAFNOSUPPORT", "AF_INET6": "EAFNOSUPPORT"}
    assert granted == {"AF_UNIX": "ok", "AF_INET": "ok", "AF_INET6": "ok"}


def test_read_only_paths_expose_a_model_below_home_read_only(
    client: Client,
    sessions: Sessions,
    probes: list[Probe],
) -> None:
    home = Path("/home") / f"noded-test-{secrets.token_hex(4)}"
    model = home / "models" / "tiny.bin"
    model.parent.mkdir(parents=True)
    try:
        model.write_bytes(b"weights")
        home.chmod(0o755)
        model.parent.chmod(0o755)
        model.chmod(0o644)
        without = Probe(client, sessions)
        with_ = Probe(client, sessions, f'read_only_paths = ["{model.parent}"]')
        probes += [without, with_]
        request = {"read": [str(model)], "write": [str(model.parent)]}
        hidden, shown = without.ask(**request), with_.ask(**request)
        assert hidden["read"][str(model)] in DENIED
        assert shown["read"][str(model)] == "ok"
        assert shown["write"][str(model.parent)] in ("EROFS", "EACCES")
    finally:
        shutil.rmtree(home)
