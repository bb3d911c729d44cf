"""The tooling that keeps the code's style: ruff (lint and format) and mypy, configured in
pyproject.toml, no git conflict markers in any tracked file, and the ``integration``
marker that lets ``pytest -m "not integration"`` run the unit tests alone.

ruff and mypy come with the ``test`` extra (packaging/dev-env installs it); they run from
the bin/ of the Python that runs the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # not resolved: a venv's python is a symlink out of it
CHECKED = ("noded", "tests", "benchmarks")


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {BIN} (it comes with the test extra: pip install -e '.[test]')")
    return path


def run(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_ruff_finds_nothing_to_fix() -> None:
    res = run(tool("ruff"), "check", "--no-fix", *CHECKED)
    assert res.returncode == 0, f"ruff check {' '.join(CHECKED)}:\n{res.stdout}{res.stderr}"


def test_the_code_is_formatted_as_ruff_formats_it() -> None:
    res = run(tool("ruff"), "format", "--check", "--diff", *CHECKED)
    assert res.returncode == 0, f"ruff format {' '.join(CHECKED)} would change:\n{res.stdout}{res.stderr}"


def test_mypy_finds_no_type_errors() -> None:
    res = run(tool("mypy"))  # what it checks, and how strictly: [tool.mypy] in pyproject.toml
    assert res.returncode == 0, f"mypy:\n{res.stdout}{res.stderr}"


# Built, not written: this file must not hold a marker at the start of a line itself.
_OPEN, _BASE, _CLOSE = (re.compile(f"^{re.escape(c * 7)}( |$)") for c in "<|>")
_SPLIT = "=" * 7


def conflict_markers(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each conflict marker: ``<<<<<<< ``, ``||||||| ``, ``>>>>>>> ``
    lines, and ``=======`` alone between an opening and a closing one (elsewhere it is an
    underline, as in reStructuredText)."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if _OPEN.match(line):
            inside = True
        elif _CLOSE.match(line):
            inside = False
        elif not (_BASE.match(line) or (inside and line == _SPLIT)):
            continue
        yield number, line


def tracked_files() -> list[Path]:
    """The files git tracks; in a copy without .git (tests/run tests a copy of a checkout
    under /tmp, made of exactly those files and the untracked, non-ignored ones), every
    file but caches."""
    res = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True)
    if res.returncode == 0 and (REPO / ".git").exists():
        return [REPO / name for name in res.stdout.split("\0") if name]
    return [
        path
        for path in REPO.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(REPO).parts)
    ]


def test_no_tracked_file_has_conflict_markers() -> None:
    files = tracked_files()
    assert REPO / "pyproject.toml" in files
    found = []
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue  # a symlink's text is its target; a deleted file is not committed yet
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        found += [
            f"{path.relative_to(REPO)}:{n}: {line}" for n, line in conflict_markers(data.decode("utf-8", "replace"))
        ]
    assert not found, "git conflict markers:\n" + "\n".join(found)


def test_the_conflict_marker_check_finds_each_kind() -> None:
    o, b, s, c = "<" * 7 + " HEAD", "|" * 7 + " base", "=" * 7, ">" * 7 + " other"
    text = "\n".join(["Title", s, "a", o, "x", b, "y", s, "z", c, s])
    assert list(conflict_markers(text)) == [(4, o), (6, b), (8, s), (10, c)]  # not the underlines


def test_not_integration_deselects_every_integration_test_and_nothing_else() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NODED_REQUIRE_SYSTEMD", "PYTEST_ADDOPTS")}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "not integration",
         "tests/integration", "tests/unit/test_extras.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    collected = [line for line in res.stdout.splitlines() if "::" in line]
    assert collected and all(line.startswith("tests/unit/test_extras.py::") for line in collected), res.stdout
    deselected = re.search(r"(\d+) deselected", res.stdout)
    assert deselected and int(deselected.group(1)) > 100, res.stdout
