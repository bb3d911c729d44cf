"""The Debian package, end to end: build it, install it into this systemd, run a session
through the installed noded and nodectl, purge it, and find nothing left.

The sandbox shares the host's /usr, /etc, /opt and dpkg database, so the test is careful:
it refuses to run if a package noded or an /etc/noded is already there (it would remove
them), the package lives under /usr/lib/noded (the development venvs under /opt/noded*
stay untouched), the development noded.service (in the sandbox's private
/run/systemd/system, which would shadow the package's unit) is set aside for the test and
put back afterwards, and the package is purged at the end even when the test fails.
NODED_SKIP_PACKAGE_TEST=1 skips it (for quick local runs; CI runs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import noded_units, systemctl
from .service_support import wait_active

REPO = Path(__file__).resolve().parents[2]
DEV_UNIT = Path("/run/systemd/system/noded.service")
ASIDE = Path("/run/noded-package-test")
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y"]
ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

pytestmark = pytest.mark.skipif(os.environ.get("NODED_SKIP_PACKAGE_TEST") == "1", reason="NODED_SKIP_PACKAGE_TEST=1")

PIPELINE = """
name = "smoke"
inputs = ["text"]
outputs = ["second.out"]

[[nodes]]
id = "first"
class = "passthrough"
inputs = ["input.text"]

[[nodes]]
id = "second"
class = "passthrough"
inputs = ["first.out"]
"""


def run(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=ENV)
    if check:
        assert res.returncode == 0, res
    return res


def installed() -> bool:
    res = run("dpkg-query", "-W", "-f=${db:Status-Status}", "noded", check=False)
    return res.returncode == 0 and res.stdout.strip() not in ("", "not-installed")  # config-files counts


@contextmanager
def dev_unit_set_aside() -> Iterator[None]:
    """The sandbox's own noded.service out of the way, and back (running) afterwards."""
    systemctl("stop", "noded.service", check=True)
    ASIDE.mkdir(exist_ok=True)
    shutil.move(DEV_UNIT, ASIDE / "noded.service")
    systemctl("daemon-reload", check=True)
    try:
        yield
    finally:
        systemctl("stop", "noded.service")
        shutil.move(ASIDE / "noded.service", DEV_UNIT)
        ASIDE.rmdir()
        systemctl("daemon-reload", check=True)
        systemctl("reset-failed", "noded.service")
        systemctl("start", "noded.service")
        wait_active()


@contextmanager
def purged_at_the_end() -> Iterator[None]:
    try:
        yield
    finally:
        if installed():
            run(*APT, "purge", "noded", timeout=600)


# Building the package fills a venv from PyPI and runs lintian: minutes, more on a busy
# machine (the suite's default of 180 s per test is for tests of the runtime).
@pytest.mark.timeout(2400)
def test_the_package_installs_runs_a_session_and_purges_without_a_trace(tmp_path: Path) -> None:
    if installed():
        pytest.fail(
            "a package noded is installed (or its configuration is left): the test would purge it; "
            "run 'apt purge noded' first"
        )
    if Path("/etc/noded").exists():
        pytest.fail("/etc/noded exists and is not the package's: the test's purge would remove it")
    began = time.monotonic()
    deb = run(str(REPO / "packaging/build-deb"), "--out", str(tmp_path), timeout=1200).stdout.strip()
    built = time.monotonic() - began
    check_lintian(Path(deb))
    check_contents(Path(deb))
    if os.environ.get("NODED_TEST_REPRODUCIBLE") == "1":  # a second build: 5-10 min more
        again = run(str(REPO / "packaging/build-deb"), "--out", str(tmp_path / "again"), timeout=1200).stdout.strip()
        assert manifest(Path(again)) == manifest(Path(deb))

    with dev_unit_set_aside(), purged_at_the_end():
        run(*APT, "install", "--no-install-recommends", deb, timeout=600)
        files = [f for f in run("dpkg", "-L", "noded").stdout.splitlines() if f and not Path(f).is_dir()]
        check_installed()
        smoke(tmp_path)
        # An edited configuration survives a reinstall (dpkg's conffile handling).
        config = Path("/etc/noded/noded.toml")
        # (a comment: other checkouts' daemons on this machine would read a setting meanwhile)
        config.write_text(config.read_text() + "\n# edited by tests/integration/test_debian_package.py\n")
        edited = config.read_text()
        run(*APT, "install", "--reinstall", "--no-install-recommends", deb, timeout=600)
        assert config.read_text() == edited
        assert installed()
    # Purged: every file of the package, its venv, configuration and enablement are gone.
    assert not installed()
    left = [f for f in files if os.path.lexists(f)]
    left += [
        p
        for p in (
            "/usr/lib/noded",
            "/etc/noded",
            "/etc/systemd/system/multi-user.target.wants/noded.service",
            "/var/lib/systemd/deb-systemd-helper-enabled/noded.service.dsh-also",
        )
        if os.path.lexists(p)
    ]
    assert left == [], left
    assert noded_units() == []
    print(f"package built in {built:.0f} s, whole test {time.monotonic() - began:.0f} s")


def check_lintian(deb: Path) -> None:
    """Debian's own checker: no error tag but the ones debian/noded.lintian-overrides
    expects (each with its reason there)."""
    if shutil.which("lintian") is None:
        run(*APT, "install", "--no-install-recommends", "lintian", timeout=900)
    res = run("lintian", "--no-tag-display-limit", "--show-overrides", str(deb), timeout=1800, check=False)
    tags = [line for line in res.stdout.splitlines() if line[:3] in ("E: ", "W: ", "O: ", "I: ")]
    errors = [line for line in tags if line.startswith("E: ")]
    overridden = [line for line in tags if line.startswith("O: ")]
    print(f"lintian: {len(errors)} errors, {len(overridden)} overridden, {len(tags)} tags in all")
    assert errors == [], "\n".join(errors[:40])
    assert res.returncode == 0 or not errors, res.stderr


def manifest(deb: Path) -> list[str]:
    """The package's files with their modes, sizes and dates: two builds of one commit agree
    (the venv from the hashed lock, SOURCE_DATE_EPOCH from debian/changelog). The venv's
    direct_url.json names the scratch folder noded was built in, so its size is left out."""
    rows = []
    for line in run("dpkg-deb", "--contents", str(deb)).stdout.splitlines():
        mode, _owner, size, day, clock, path = line.split(None, 5)
        rows.append(f"{mode} {'-' if path.endswith('direct_url.json') else size} {day} {clock} {path}")
    return sorted(rows)


def check_contents(deb: Path) -> None:
    """No byte code in the package (postinst compiles it), xz members, real Depends."""
    listing = run("dpkg-deb", "--contents", str(deb)).stdout
    assert "__pycache__" not in listing and ".pyc" not in listing
    members = run("ar", "t", str(deb)).stdout.split()
    assert "data.tar.xz" in members and "control.tar.xz" in members, members
    depends = run("dpkg-deb", "--field", str(deb), "Depends").stdout
    for name in ("libc6", "libsystemd0", "python3"):
        assert name in depends, depends
    maintainer = run("dpkg-deb", "--field", str(deb), "Maintainer").stdout
    assert "localhost.invalid" not in maintainer, maintainer


def check_installed() -> None:
    props = dict(
        line.split("=", 1)
        for line in systemctl(
            "show", "-p", "FragmentPath,ActiveState,ExecMainPID,UnitFileState", "noded.service"
        ).stdout.splitlines()
    )
    assert props["FragmentPath"] in ("/lib/systemd/system/noded.service", "/usr/lib/systemd/system/noded.service")
    assert props["UnitFileState"] == "enabled", props
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists() and run(str(policy), "noded.service", "start", check=False).returncode == 101:
        # This machine (a container image) forbids package scripts to start services.
        assert props["ActiveState"] == "inactive", props
        systemctl("start", "noded.service", check=True)
    else:
        assert props["ActiveState"] in ("active", "activating"), props  # the postinst started it
    wait_active()
    cmdline = Path(f"/proc/{systemctl('show', '-P', 'MainPID', 'noded.service').stdout.strip()}/cmdline").read_bytes()
    assert b"/usr/lib/noded/venv/bin/noded" in cmdline, cmdline
    assert run("getent", "group", "noded").stdout.startswith("noded:")
    assert Path("/etc/noded/noded.toml").read_text() == (REPO / "packaging/noded.toml").read_text()
    assert "configuration is valid" in run("/usr/sbin/noded", "--check-config").stdout
    # The venv holds exactly the releases packaging/requirements.lock pins (with hashes).
    freeze = run("/usr/lib/noded/venv/bin/python", "-m", "pip", "freeze", "--exclude", "noded").stdout
    lock = (REPO / "packaging/requirements.lock").read_text()
    pins = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].split()[0]
            for line in lock.splitlines() if "==" in line}  # fmt: skip
    got = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1]
           for line in freeze.splitlines() if "==" in line}  # fmt: skip
    assert got == pins, (got, pins)
    assert run("man", "-w", "nodectl").stdout.strip() == "/usr/share/man/man1/nodectl.1.gz"
    # postinst byte-compiled the venv; prerm removes it again (checked by the purge).
    assert list(Path("/usr/lib/noded/venv/lib").glob("python3*/site-packages/noded/__pycache__/*.pyc"))
    copyright_text = Path("/usr/share/doc/noded/copyright").read_text()
    assert "Files: usr/lib/noded/venv/lib/*/site-packages/numpy*" in copyright_text
    page = run("man", "-P", "cat", "nodectl", timeout=60).stdout
    assert "control noded pipeline sessions" in page and "session create" in page
    for name in ("noded", "noded.toml", "noded.pipeline", "noded-wire"):
        assert run("man", "-w", name).stdout.strip()
    assert Path("/usr/share/bash-completion/completions/nodectl").exists()
    assert Path("/usr/share/zsh/vendor-completions/_nodectl").exists()
    assert Path("/usr/share/fish/vendor_completions.d/nodectl.fish").exists()


def smoke(tmp_path: Path) -> None:
    """Create a session, run data through it and stop it, with the installed nodectl."""
    nodectl = "/usr/bin/nodectl"
    status = json.loads(run(nodectl, "--json", "status").stdout)
    assert status["version"] and status["sessions"] == 0
    pipeline = tmp_path / "smoke.toml"
    pipeline.write_text(PIPELINE)
    lines = [f"line {i}" for i in range(20)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    run(nodectl, "run", str(pipeline), "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text().split("\n")[:20] == lines

    created = json.loads(run(nodectl, "--json", "session", "create", str(pipeline)).stdout)
    sid = created["sid"]
    assert created["state"] == "ready"
    workers = [n["main_pid"] for n in created["nodes"]]
    exe = Path(f"/proc/{workers[0]}/cmdline").read_bytes().split(b"\0")[0]
    assert exe.startswith(b"/usr/lib/noded/venv/bin/python"), exe
    stopped = json.loads(run(nodectl, "--json", "session", "stop", sid).stdout)
    assert stopped["state"] == "stopped"
    logs = run(nodectl, "logs", sid, "first", "--lines", "20").stdout
    assert "noded-first[" in logs
