"""A full /dev/shm: the error says so.

The test mounts a small tmpfs of its own on /dev/shm inside the sandbox (whose /dev/shm is
already its own, never the host's) and unmounts it after. iceoryx2 sizes segments up front
but sparse, so a session starts on a nearly full /dev/shm and the node that writes the
first message tmpfs cannot back dies of SIGBUS: the failure must name /dev/shm. A session
whose largest message cannot fit at all is refused at create.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from noded.contract.client import Client, RemoteError

from .conftest import Sessions, ended, nodectl, noded_units, systemctl, wait_for

SHM = Path("/dev/shm")


def restart_noded() -> None:
    """noded.service runs in a mount namespace of its own, made when it starts: restarted,
    it sees /dev/shm as the nodes do (and cleans up there)."""
    systemctl("restart", "noded.service", check=True)
    assert systemctl("is-active", "noded.service").stdout.strip() == "active"


@pytest.fixture
def small_shm() -> Iterator[Path]:
    """An 8 MiB tmpfs on /dev/shm for the test's duration."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M,mode=1777", "noded-test-shm", str(SHM)], check=True)
    try:
        restart_noded()
        yield SHM
    finally:
        subprocess.run(["umount", str(SHM)], check=False)
        if "noded-test-shm" in subprocess.run(["findmnt", str(SHM)], capture_output=True, text=True).stdout:
            subprocess.run(["umount", "--lazy", str(SHM)], check=True)
        restart_noded()


BIG = """inputs = ["data"]
[dataplane]
max_payload = "6M"
depth = 2
[[nodes]]
id = "n0"
class = "passthrough"
inputs = ["input.data"]
[[nodes]]
id = "n1"
class = "passthrough"
inputs = ["n0.out"]
[[nodes]]
id = "n2"
class = "slow_sink"
params = { ms = 1.0 }
inputs = ["n1.out"]
"""


def test_a_node_that_cannot_back_a_message_names_a_full_dev_shm(
    small_shm: Path, sessions: Sessions, client: Client, tmp_path: Path
) -> None:
    info = sessions.create(client, BIG)
    wait_for(client, info.sid, lambda i: i.state == "ready", 60)
    data = tmp_path / "big.npy"
    # 5 MiB: n0 holds the client's copy while it writes its own; both do not fit in 8.
    np.save(data, np.ones(5 * 2**20, np.uint8))
    fed = nodectl("feed", info.sid, "data", str(data))
    done = wait_for(client, info.sid, ended, 60)
    assert done.state == "failed" and done.failure is not None, (done, fed.stderr)
    reason = done.failure.reason
    assert "SIGBUS" in reason and "/dev/shm is full" in reason, reason
    assert "could not be backed" in reason, reason
    assert noded_units(f"noded-{info.sid}*") == []
    assert not [p for p in small_shm.iterdir() if info.sid in p.name]  # cleaned up before the unmount


def test_a_session_whose_message_cannot_fit_is_refused_at_create(small_shm: Path, client: Client) -> None:
    filler = small_shm / "noded-test-filler"
    with filler.open("wb") as f:
        f.write(b"\0" * (7 * 2**20 + 512 * 1024))  # 0.5 MiB left; a message of BIG takes 6 MiB
    try:
        with pytest.raises(RemoteError) as info:
            client.request("create", text=BIG, filename="big.toml", watch=False)
        assert info.value.code == "limit_exceeded", info.value
        assert "/dev/shm is full" in info.value.message and "of 8.0 MiB free" in info.value.message
        assert info.value.hint and "max_payload" in info.value.hint
        res = nodectl("--json", "session", "list")
        assert all(s["pipeline"] != "big" for s in json.loads(res.stdout) if s["state"] not in ("stopped", "failed"))
    finally:
        filler.unlink()
    assert noded_units() == []
