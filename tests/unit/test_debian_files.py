"""The Debian packaging's own files: pinned dependencies, generated copyright, overrides
with reasons. (tests/integration/test_debian_package.py builds, lints and installs it.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, list[str]]]:
    """packaging/requirements.lock: name -> (version, sha256 hashes)."""
    text = (PACKAGING / "requirements.lock").read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            spec, *options = line.split()
            name, sep, version = spec.partition("==")
            assert sep and version, line
            hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")]
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line
            assert len(hashes) == len(options), f"only --hash options after the pin: {line!r}"
            pins[_norm(name)] = (version, hashes)
    return pins


def test_the_lock_pins_every_dependency_of_the_package_with_a_hash() -> None:
    """Each direct dependency of noded[speech] is in the lock, each line pinned with == and
    a sha256: pip --require-hashes would refuse anything less."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["speech"]]
    names = {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in direct}
    pins = locked()
    assert names <= set(pins), sorted(names - set(pins))
    assert "noded" not in pins


def test_the_package_install_uses_the_lock_with_hashes() -> None:
    script = (PACKAGING / "install").read_text()
    assert '--require-hashes --no-deps -r "$repo/packaging/requirements.lock"' in script


def test_every_lintian_override_has_a_reason() -> None:
    lines = (PACKAGING / "debian" / "noded.lintian-overrides").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("noded: "):
            j = i - 1
            while j >= 0 and lines[j].startswith("noded: "):
                j -= 1
            assert j >= 0 and lines[j].startswith("# "), f"no reason above {line!r}"


def test_rules_build_xz_with_shlibdeps_and_no_byte_code() -> None:
    rules = (PACKAGING / "debian" / "rules").read_text()
    assert "-Zxz" in rules and "zstd" not in rules.replace("zstd members", "")
    assert "override_dh_shlibdeps:" in rules and "dh_shlibdeps" in rules.split("override_dh_shlibdeps:")[1]
    assert "__pycache__" in rules
    control = (PACKAGING / "debian" / "control").read_text()
    assert "${shlibs:Depends}" in control and "localhost.invalid" not in control
    assert "compileall" in (PACKAGING / "debian" / "postinst").read_text()
    assert "__pycache__" in (PACKAGING / "debian" / "prerm").read_text()


def test_copyright_lists_the_bundled_projects() -> None:
    venv = Path(sys.prefix)
    res = subprocess.run(
        [sys.executable, str(PACKAGING / "debian-copyright"), str(venv)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    paragraphs = res.stdout.split("\n\n")
    assert paragraphs[0].startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
    found = {p.split("\n")[0] for p in paragraphs if p.startswith("Files: usr/lib/noded/venv/")}
    for project in ("numpy", "click", "msgspec", "pystemd"):
        assert f"Files: usr/lib/noded/venv/lib/*/site-packages/{project}*" in found
    for p in paragraphs[1:]:
        license_line = next(line for line in p.split("\n") if line.startswith("License: "))
        assert " " not in license_line.removeprefix("License: ").replace(" or ", "_").replace(" and ", "_")
