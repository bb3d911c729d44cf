"""The node sandbox (noded/daemon/sandbox.py) and what a pipeline file may grant a node."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from noded.daemon.config import Config
from noded.daemon.sandbox import sandbox_properties
from noded.daemon.units import service_properties, worker_argv
from noded.errors import PipelineError
from noded.pipeline.checks import parse_pipeline
from noded.pipeline.grants import NodeGrants

ROOT = PurePosixPath("/run/noded/iox2/ab12cd34")


def props(sid: str = "ab12cd34", node: str = "asr", sandbox: NodeGrants = NodeGrants()) -> dict[str, list]:
    cfg = Config(worker_python="/opt/noded/venv/bin/python")
    out: dict[str, list] = {}
    for name, sig, value in service_properties(
        sid=sid,
        node_id=node,
        node_class="passthrough",
        argv=worker_argv(cfg, "{}"),
        config=cfg,
        iox2_root=Path(f"/run/noded/iox2/{sid}"),
        sandbox=sandbox,
    ):
        out.setdefault(name, []).append((sig, value))
    return out


def one(p: dict[str, list], name: str):  # type: ignore[no-untyped-def]
    (value,) = p[name]
    return value


def test_nodes_of_a_session_share_its_dynamic_user_and_sessions_differ() -> None:
    a1, a2, b = props(node="asr"), props(node="tts"), props(sid="ffff0000")
    assert one(a1, "DynamicUser") == ("b", True)
    assert one(a1, "User") == one(a2, "User") == ("s", "noded-ab12cd34")
    assert one(b, "User") == ("s", "noded-ffff0000")


def test_default_sandbox_is_strict_and_offline() -> None:
    p = props()
    for name in (
        "PrivateTmp",
        "PrivateDevices",
        "PrivateNetwork",
        "PrivateUsers",
        "NoNewPrivileges",
        "LockPersonality",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "MemoryDenyWriteExecute",
    ):
        assert one(p, name) == ("b", True), name
    assert one(p, "ProtectSystem") == ("s", "strict")
    assert one(p, "ProtectHome") == ("s", "yes")
    assert one(p, "CapabilityBoundingSet") == ("t", 0)
    assert one(p, "RestrictNamespaces") == ("t", 0)
    assert one(p, "RestrictAddressFamilies") == ("(bas)", (True, ["AF_UNIX"]))
    assert p["SystemCallFilter"] == [
        ("(bas)", (True, ["@system-service"])),
        ("(bas)", (False, ["@privileged", "@resources"])),
    ]
    assert one(p, "ReadWritePaths") == ("as", [str(ROOT).encode()])
    assert "IPAddressDeny" in p and "BindReadOnlyPaths" not in p


def test_network_and_read_only_paths_are_granted_per_node() -> None:
    p = props(sandbox=NodeGrants(network=True, read_only_paths=("/home/u/models", "/srv/m")))
    assert one(p, "RestrictAddressFamilies") == ("(bas)", (True, ["AF_UNIX", "AF_INET", "AF_INET6"]))
    assert one(p, "PrivateNetwork") == ("b", False)
    assert "IPAddressDeny" not in p
    assert one(p, "BindReadOnlyPaths") == (
        "a(ssbt)",
        [("/home/u/models", "/home/u/models", False, 0), ("/srv/m", "/srv/m", False, 0)],
    )
    # A bind below /home needs a traversable (tmpfs) /home instead of an inaccessible one.
    assert one(p, "ProtectHome") == ("s", "tmpfs")
    assert one(props(sandbox=NodeGrants(read_only_paths=("/srv/m",))), "ProtectHome") == ("s", "yes")


def test_sandbox_properties_are_the_ones_the_unit_gets() -> None:
    names = {name for name, _, _ in sandbox_properties("ab12cd34", ROOT)}
    assert names <= set(props())


def node(extra: str) -> str:
    return f'[[nodes]]\nid = "a"\nclass = "passthrough"\n{extra}\n'


def test_pipeline_grants_network_and_read_only_paths() -> None:
    (spec,) = parse_pipeline(
        node('network = true\nread_only_paths = ["/usr/share/", "/usr/share", "/opt"]'), "p.toml"
    ).nodes
    assert spec.sandbox == NodeGrants(network=True, read_only_paths=("/usr/share", "/opt"))
    (spec,) = parse_pipeline(node(""), "p.toml").nodes
    assert spec.sandbox == NodeGrants()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"usr/share"', "not an absolute path"),
        ('"/usr/../etc"', "'..'"),
        ('"/nonexistent-noded-model"', "does not exist"),
        ('"/proc/1"', "may not be given"),
        ('"/run/noded/iox2"', "may not be given"),
        ('"/"', "readable already"),
        ('""', "non-empty absolute path"),
    ],
)
def test_bad_read_only_paths_are_reported_with_a_hint(value: str, reason: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(node(f"read_only_paths = [{value}]"), "p.toml")
    (problem,) = err.value.problems
    assert problem.node == "a" and problem.field == "read_only_paths[0]" and reason in problem.reason
    assert err.value.hint is not None and "read_only_paths" in err.value.hint


@pytest.mark.parametrize("extra", ['network = "yes"', 'read_only_paths = "/usr"', "read_only_paths = [1]"])
def test_wrongly_typed_sandbox_keys_are_reported(extra: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(node(extra), "p.toml")
    assert err.value.problems and all(p.node == "a" for p in err.value.problems)
