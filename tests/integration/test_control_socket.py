"""The control socket: who may use it, and what malformed requests do to the daemon.

A real unprivileged user (made by the test, removed after) is refused; the same user in
group ``noded`` is served. Thousands of hypothesis-made requests (malformed JSON,
truncated, wrongly typed, unknown operations, invalid UTF-8, deep nesting, oversized)
each get an error reply, and the daemon stays the same process with the same sessions.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from noded.contract.client import Client
from noded.contract.protocol import MAX_LINE, List, Status, Watch, decode_request
from tests.fuzzing import fuzz

from .conftest import NODECTL, Sessions, chain, noded_main_pid, systemctl, wait_for

SOCKET = "/run/noded/control.sock"
STATUS = json.dumps({"op": "status", "id": 7}) + "\n"
# Asks the daemon for its status as whoever runs it; prints the outcome as JSON.
ASK_STATUS = f"""
import json, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect({SOCKET!r})
except OSError as e:
    print(json.dumps({{"error": type(e).__name__}}))
else:
    s.sendall({STATUS.encode()!r})
    print(s.makefile("rb").readline().decode().strip())
"""


@pytest.fixture
def stranger() -> Iterator[pwd.struct_passwd]:
    """A real system user that is neither root nor in group noded."""
    name = f"ndtest{secrets.token_hex(3)}"
    for _attempt in range(5):  # /etc is shared with other sandboxes: its lock may be taken a moment
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        if made.returncode == 0:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"useradd failed: {made.stderr}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=True, capture_output=True)


def as_user(user: pwd.struct_passwd, argv: list[str], groups: list[int]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=groups,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_only_root_and_the_noded_group_may_use_the_socket(stranger: pwd.struct_passwd) -> None:
    noded = grp.getgrnam("noded").gr_gid
    refused = as_user(stranger, [sys.executable, "-c", ASK_STATUS], groups=[])
    assert json.loads(refused.stdout) == {"error": "PermissionError"}, refused
    cli = as_user(stranger, [*NODECTL, "status"], groups=[])
    assert cli.returncode == 3, cli  # the daemon cannot be reached
    assert "permission denied" in cli.stderr and "noded" in cli.stderr, cli.stderr

    member = as_user(stranger, [sys.executable, "-c", ASK_STATUS], groups=[noded])
    reply = json.loads(member.stdout)
    assert reply["ok"] is True and reply["id"] == 7, member
    with Client() as c:  # and root
        assert c.request("status")["protocol"] == reply["result"]["protocol"]


# -- fuzzing -------------------------------------------------------------------------

OPS = ["status", "create", "list", "show", "stop", "watch", "attach"]
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.dictionaries(
    st.sampled_from(["sid", "text", "filename", "watch", "wait", "stats", "args"]) | st.text(max_size=6),
    _json,
    max_size=4,
)
_requests = st.builds(
    lambda fields, base: {**fields, **base},
    _fields,
    st.fixed_dictionaries(
        {},
        optional={
            "op": st.sampled_from(OPS) | st.text(max_size=12) | _json,
            "id": st.integers() | _json,
        },
    ),
)


def _valid_request(line: bytes) -> bool:
    """Would the daemon carry this out (rather than reply with an error)?"""
    try:
        req = decode_request(line)
    except Exception:
        return False
    return isinstance(req, (Status, List)) or (isinstance(req, Watch) and req.sid is None)


@st.composite
def bad_lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "request", "truncated", "nested", "utf8"]))
    if kind == "bytes":
        line = draw(st.binary(max_size=512))
    elif kind == "json":
        line = json.dumps(draw(_json)).encode()
    elif kind == "request":
        line = json.dumps(draw(_requests)).encode()
    elif kind == "truncated":
        whole = json.dumps({"op": draw(st.sampled_from(OPS)), "id": 1, **draw(_fields)}).encode()
        line = whole[: draw(st.integers(0, len(whole) - 1))]
    elif kind == "nested":
        depth = draw(st.integers(1, 5000))
        line = draw(st.sampled_from([b"[", b'{"a":'])) * depth
    else:
        line = b'{"op": "show", "id": 3, "sid": "' + draw(st.binary(min_size=1, max_size=8)) + b'"}'
    line = line.replace(b"\n", b" ")
    assume(not _valid_request(line))
    return line


def live_state(c: Client) -> list[tuple[str, str]]:
    return [(s["sid"], s["state"]) for s in c.request("list") if s["state"] not in ("stopped", "failed")]


def daemon_facts() -> tuple[int, str]:
    return noded_main_pid(), systemctl("show", "-P", "NRestarts", "noded.service").stdout.strip()


def read_reply(f: Any) -> dict[str, Any]:
    line = f.readline()
    assert line.endswith(b"\n"), f"no reply line (got {line!r})"
    reply = json.loads(line)
    assert reply["type"] == "reply", reply
    return reply


def test_malformed_requests_each_get_an_error_and_change_nothing(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(1))
    wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    facts, state = daemon_facts(), live_state(client)
    codes: dict[str, int] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(SOCKET)
        f = sock.makefile("rb")

        @fuzz(3000)
        @given(bad_lines())
        def each_gets_an_error(line: bytes) -> None:
            sock.sendall(line + b"\n")
            reply = read_reply(f)
            assert reply["ok"] is False and reply["error"]["message"], (line[:200], reply)
            assert reply["error"]["code"] != "internal", (line[:200], reply)  # an unexpected exception
            codes[reply["error"]["code"]] = codes.get(reply["error"]["code"], 0) + 1

        try:
            each_gets_an_error()
        finally:
            f.close()
    assert set(codes) >= {"bad_request", "session_not_found"}, codes  # the fuzz reached the handlers
    assert daemon_facts() == facts, "the daemon restarted"
    assert live_state(client) == state


@pytest.mark.parametrize(
    "payload",
    [
        b"x" * (MAX_LINE + 1),
        json.dumps({"op": "create", "id": 1, "text": "#" * MAX_LINE, "filename": "big.toml"}).encode(),
        b"[" * (MAX_LINE + 10),
    ],
)
def test_an_oversized_request_gets_an_error_and_the_connection_ends(client: Client, payload: bytes) -> None:
    facts = daemon_facts()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(SOCKET)
        try:
            sock.sendall(payload + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon stopped reading once the line was too long
        with sock.makefile("rb") as f:
            reply = read_reply(f)
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
            assert "longer than" in reply["error"]["message"]
            assert f.readline() == b""  # closed
    assert daemon_facts() == facts
    assert client.request("status")["version"]


@fuzz(200)
@given(st.binary(max_size=256))
def test_connections_cut_mid_request_leave_the_daemon_serving(prefix: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(SOCKET)
        sock.sendall(prefix.replace(b"\n", b" "))
    with Client(timeout=60) as c:
        assert c.request("status")["version"]


def test_a_group_member_that_is_not_root_cannot_join_a_sandboxed_session(
    stranger: pwd.struct_passwd,
    client: Client,
    sessions: Sessions,
) -> None:
    """Only root can take on a session's dynamic user (noded/dataplane/sessionuser.py): a member
    of group noded may look at root's sessions but gets one clear line, not a traceback, when
    it tries to exchange data with one: the daemon refuses to attach it (noded.daemon.owners)."""
    info = sessions.create(
        client, 'inputs = ["go"]\n[[nodes]]\nid = "p"\nclass = "passthrough"\ninputs = ["input.go"]\n'
    )
    wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:  # readable by the user, unlike tmp_path
        os.chmod(folder, 0o755)
        data = os.path.join(folder, "in.txt")
        with open(data, "w") as f:
            f.write("hello\n")
        os.chmod(data, 0o644)
        fed = as_user(stranger, [*NODECTL, "feed", info.sid, "go", data], groups=[grp.getgrnam("noded").gr_gid])
    assert fed.returncode == 1, fed
    assert f"session {info.sid} belongs to 'root'" in fed.stderr and "Traceback" not in fed.stderr, fed.stderr
    assert f"'{stranger.pw_name}' may not feed or read it" in fed.stderr
