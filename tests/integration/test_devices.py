"""Device and CPU grants in real units: a device node the test makes in the sandbox's
/dev opens in a node granted it and not in one that is not; cpus pins a node; each
grant is reported by nodectl session show."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from noded.contract.client import Client

from .conftest import Sessions, nodectl
from .test_isolation import DENIED, Probe

ZERO = (1, 5)  # major, minor of /dev/zero


@pytest.fixture
def device() -> Iterator[Path]:
    path = Path("/dev") / f"noded-test-{secrets.token_hex(4)}"
    os.mknod(path, 0o666 | 0o020000, os.makedev(*ZERO))  # S_IFCHR
    os.chmod(path, 0o666)
    try:
        yield path
    finally:
        path.unlink()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for p in made:
        p.close()


def test_a_granted_device_opens_and_an_ungranted_one_does_not(
    client: Client, sessions: Sessions, probes: list[Probe], device: Path
) -> None:
    without = Probe(client, sessions)
    with_ = Probe(client, sessions, f'devices = ["{device}"]\ncpus = "0"')
    probes += [without, with_]
    assert without.ask(read=[str(device), "/dev/zero"])["read"] == {str(device): "ENOENT", "/dev/zero": "ok"}
    granted = with_.ask(read=[str(device)])
    assert granted["read"][str(device)] == "ok"
    assert granted["cpus"] == [0] and without.ask()["cpus"] == sorted(os.sched_getaffinity(0))
    shown = json.loads(nodectl("--json", "session", "show", with_.sid).stdout)
    assert shown["nodes"][0]["grants"] == [f"device={device}", "cpus=0"]
    text = nodectl("session", "show", with_.sid).stdout
    assert f"probe is granted: device={device}, cpus=0" in text
    assert DENIED


def test_bad_device_gpu_and_cpu_values_fail_at_create_naming_node_and_field(device: Path) -> None:
    toml = (
        'inputs = ["go"]\n[[nodes]]\nid = "p"\nclass = "probe"\ninputs = ["input.go"]\n'
        'devices = ["/dev/nosuch-xyz", "/etc/passwd"]\ngpu = "nvidia:7"\ncpus = "4096"\n'
    )
    path = Path("/var/tmp") / f"noded-test-{secrets.token_hex(4)}.toml"
    path.write_text(toml)
    try:
        res = nodectl("session", "create", str(path))
    finally:
        path.unlink()
    assert res.returncode == 4, res.stderr
    for field in ("devices[0]", "devices[1]", "gpu", "cpus"):
        assert f"field '{field}'" in res.stderr, res.stderr
    assert "does not exist on this host" in res.stderr and "no NVIDIA GPU on this host" in res.stderr
