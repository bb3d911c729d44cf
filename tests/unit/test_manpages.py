"""The manual pages: they render without warnings and cover what the code has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from noded.ctl.manpage import nodectl_cli, render
from noded.daemon.config import SETTINGS
from noded.daemon.main import cli as noded_cli
from noded.daemon.metrics import Metrics
from noded.pipeline.schema import DataplaneDoc, DefaultsDoc, EdgeDoc, LimitsDoc, NodeDoc, PipelineDoc

MAN = Path(__file__).resolve().parents[2] / "man"
PAGES = ["noded.8", "noded.toml.5", "noded.pipeline.5", "noded-wire.7"]


def plain(page: str | Path, text: str | None = None) -> str:
    """The page as man shows it (no warnings allowed), with hyphenation and justification off."""
    if shutil.which("groff") is None:
        pytest.fail("groff is missing: packaging/dev-env installs groff-base")
    source = text if text is not None else Path(page).read_text()
    res = subprocess.run(
        ["groff", "-t", "-man", "-Tutf8", "-ww", "-rHY=0", "-dAD=l", "-P-cbou"],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return re.sub(r"[\u2010\u2212]", "-", " ".join(res.stdout.split()))


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_without_warnings(page: str) -> None:
    text = plain(MAN / page)
    assert "SEE ALSO" in text


def test_noded_toml_5_describes_every_setting_and_its_variable() -> None:
    text = plain(MAN / "noded.toml.5")
    for section, key in SETTINGS:
        assert f"{key} =" in text, key
        if section:
            assert f"[{section}]" in text
    assert "NODED_NODE_LIMITS_MEMORY_MAX" in text and "78" in text and "--check-config" in text


def _doc_keys(struct: type) -> set[str]:
    info = struct.__struct_encode_fields__  # type: ignore[attr-defined]
    return set(info)


def test_noded_pipeline_5_describes_every_key_of_the_schema() -> None:
    text = plain(MAN / "noded.pipeline.5")
    keys = set().union(*(_doc_keys(s) for s in (PipelineDoc, NodeDoc, LimitsDoc, DataplaneDoc, EdgeDoc, DefaultsDoc)))
    assert {"class", "from", "depth", "verify_payload", "outputs"} <= keys
    missing = [k for k in sorted(keys) if not re.search(rf"(^|[\s\[{{]){k}\b", text)]
    assert not missing, missing


def test_noded_8_has_every_option_and_every_metric() -> None:
    text = plain(MAN / "noded.8")
    ctx = click.Context(noded_cli, info_name="noded")
    for param in noded_cli.get_params(ctx):
        for opt in param.opts:
            assert opt in text, opt
    metrics = Metrics(max_session_processes=1, per_session=True)
    families = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.registry.collect()}
    assert "noded_max_session_processes" in families and "noded_build_info" in families
    assert "noded_hop_latency_seconds" in families and "noded_edge_blocked_seconds_total" in families
    for name in families:
        expected = "process_*" if name.startswith("process_") else name
        assert expected in text, name


def test_nodectl_1_is_generated_from_every_command_and_option() -> None:
    cli = nodectl_cli()
    text = plain("nodectl.1", render(cli))
    ctx = click.Context(cli, info_name="nodectl")
    seen = 0

    def walk(group: click.Group, parent: click.Context) -> None:
        nonlocal seen
        for name in group.list_commands(parent):
            cmd = group.get_command(parent, name)
            assert cmd is not None
            sub = click.Context(cmd, info_name=name, parent=parent)
            if isinstance(cmd, click.Group):
                walk(cmd, sub)
                continue
            seen += 1
            assert sub.command_path in text, sub.command_path
            assert (cmd.help or "").split("\n")[0].strip()[:40] in text, name
            for param in cmd.get_params(sub):
                if isinstance(param, click.Option) and "--help" not in param.opts and not param.hidden:
                    assert any(opt in text for opt in param.opts), (name, param.opts)

    walk(cli, ctx)
    assert seen >= 8  # status, session *, run, feed, logs
    for code in range(8):
        assert re.search(rf"EXIT STATUS.* {code} ", text)
    assert "NODED_SOCKET" in text and "NODED_JSON" in text and "_NODECTL_COMPLETE=bash_source" in text


# Pages of other packages the manuals refer to, each one that Debian 12 ships (package in
# the comment). A reference to a page that does not exist (zlib(3) once) fails below.
OTHER_PAGES = {
    "systemd.service(5)",  # systemd
    "systemd.exec(5)",  # systemd
    "systemd.resource-control(5)",  # systemd
    "systemd.unit(5)",  # systemd
    "systemd.slice(5)",  # systemd
    "systemd-run(1)",  # systemd
    "systemctl(1)",  # systemd
    "journalctl(1)",  # systemd
    "sd_notify(3)",  # libsystemd-dev
    "zlib(3)",  # zlib1g-dev
    "memcpy(3)",  # manpages-dev
    "python3(1)",  # python3
}


def test_every_page_referred_to_exists() -> None:
    ours = {f"{p.stem}({p.suffix[1:]})" for p in MAN.iterdir()} | {"nodectl(1)"}
    refs: set[str] = set()
    for page in MAN.iterdir():
        refs |= set(re.findall(r"(?<![\w.-])([a-z][^\s(),]*)\s?\(([1-8])\)", re.sub(r"(\w-) ", r"\1", plain(page))))
    refs_text = {f"{name}({sec})" for name, sec in refs}
    unknown = sorted(refs_text - ours - OTHER_PAGES)
    assert not unknown, unknown
