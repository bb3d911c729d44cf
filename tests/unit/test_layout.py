"""The import rules of noded's layout (docs/architecture.md), read from the source: static,
nothing is imported.

Who may import what, by module name (``pkg.*`` is the package and everything in it):
a rule counts every import, also one inside a function or under ``if TYPE_CHECKING:``.
No import circles: among the imports that run when a module is imported (module level,
outside ``if TYPE_CHECKING:``), importing ``a.b.c`` also runs the packages ``a.b`` and ``a``
unless they are the importer's own (already in ``sys.modules``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What node authors import.
SDK = ("noded", "noded.node", "noded.testing", "noded.loader", "noded.wavfile")

#: importer -> what it may import of noded.
RULES: dict[str, tuple[str, ...]] = {
    "noded.contract.*": ("noded.contract.*", "noded.errors"),
    "noded.errors": ("noded.contract.exitcodes",),
    "noded.dataplane.*": ("noded.dataplane.*", "noded.contract.*", "noded.errors"),
    "noded.worker.*": (
        "noded.worker.*",
        "noded.dataplane.*",
        "noded.contract.*",
        "noded.errors",
        "noded.logs",
        "noded",
        "noded.node",
        "noded.loader",
    ),  # fmt: skip
    "noded.nodes.*": ("noded.nodes.*", *SDK, "noded.contract.*", "noded.errors"),
    "noded.pipeline.*": ("noded.pipeline.*", "noded.contract.*", "noded.errors"),
    # The public API for code that drives noded: the client side only, never the server.
    "noded.api": ("noded.contract.*", "noded.dataplane.*", "noded.pipeline.*", "noded.errors", "noded"),
}

#: Packages that only their own modules import: the server and the CLI are ends, not libraries.
PRIVATE = ("noded.daemon", "noded.ctl")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of noded
    file: str  # the importer's, relative to the checkout
    line: int
    lazy: bool  # inside a function or under `if TYPE_CHECKING:`: not run by importing the importer

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def matches(name: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        package = pattern[:-2]
        return name == package or name.startswith(package + ".")
    return name == pattern


def modules_under(root: Path, package: str = "noded") -> dict[str, Path]:
    """Module name -> file, for every .py file of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), lazy)
        else:
            yield from _walk(child, lazy)


def imports_of(name: str, root: Path, modules: dict[str, Path]) -> list[Import]:
    """The modules of ``modules`` that module ``name`` imports."""
    path = modules[name]
    is_package = path.name == "__init__.py"
    found = []
    for stmt, lazy in _walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(stmt, ast.Import):
            targets = [alias.name for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:  # relative: from the importer's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (stmt.level - 1)]
                base = ".".join([*package, base] if base else package)
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod.
            subs = [f"{base}.{alias.name}" for alias in stmt.names if f"{base}.{alias.name}" in modules]
            targets = subs if len(subs) == len(stmt.names) else [base, *subs]
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target:
                found.append(Import(name, target, str(path.relative_to(root)), stmt.lineno, lazy))
    return found


def scan(root: Path) -> dict[str, list[Import]]:
    modules = modules_under(root)
    return {name: imports_of(name, root, modules) for name in modules}


def rule_breaches(graph: dict[str, list[Import]], importers: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{imp}: {imp.importer} imports {imp.target}, but {importers} may import only {', '.join(allowed)}"
        for name, imps in graph.items()
        if matches(name, importers)
        for imp in imps
        if not any(matches(imp.target, pattern) for pattern in allowed)
    ]


def private_breaches(graph: dict[str, list[Import]], package: str) -> list[str]:
    return [
        f"{imp}: {imp.importer} imports {imp.target}, but only {package} may import {package}"
        for name, imps in graph.items()
        if not matches(name, package + ".*")
        for imp in imps
        if matches(imp.target, package + ".*")
    ]


def _runs(imp: Import) -> list[str]:
    """The modules that importing ``imp.target`` runs: it and its packages that are not the
    importer's own (those are in sys.modules already)."""
    own = {imp.importer.rsplit(".", i)[0] for i in range(imp.importer.count(".") + 1)}
    parts = imp.target.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m not in own]


def cycles(graph: dict[str, list[Import]]) -> list[str]:
    """Each import circle, as the chain of imports that makes it (one per circle found)."""
    edges: dict[str, dict[str, Import]] = {name: {} for name in graph}
    for name, imps in graph.items():
        for imp in imps:
            if not imp.lazy:
                for target in _runs(imp):
                    if target != name and target in edges:
                        edges[name].setdefault(target, imp)
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                found.append(
                    " -> ".join(loop)
                    + "  ("
                    + ", ".join(str(edges[a][b]) for a, b in zip(loop, loop[1:], strict=False))
                    + ")"
                )
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    g = scan(REPO)
    assert len(g) > 50 and "noded.contract.spec" in g  # the scan found the package
    return g


@pytest.mark.parametrize(("importers", "allowed"), list(RULES.items()), ids=list(RULES))
def test_each_part_imports_only_what_its_rule_allows(
    graph: dict[str, list[Import]], importers: str, allowed: tuple[str, ...]
) -> None:
    assert any(matches(name, importers) for name in graph), f"no module matches {importers}"
    breaches = rule_breaches(graph, importers, allowed)
    assert not breaches, "\n".join(breaches)


@pytest.mark.parametrize("package", PRIVATE)
def test_nothing_outside_the_server_and_the_cli_imports_them(graph: dict[str, list[Import]], package: str) -> None:
    breaches = private_breaches(graph, package)
    assert not breaches, "\n".join(breaches)


def test_no_import_circles(graph: dict[str, list[Import]]) -> None:
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    def write(name: str, text: str) -> None:
        path = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            if parent != Path("."):
                (tmp_path / parent / "__init__.py").touch()
        path.write_text(text)

    write("noded.errors", "from noded.contract.exitcodes import ExitCode\n")
    write("noded.contract.exitcodes", "")
    write("noded.contract.spec", "from noded.errors import NodedError\nfrom noded.daemon import units\n")
    write("noded.daemon.units", "import noded.contract.spec\n")
    write("noded.ctl.cli", "def main():\n    from noded.daemon.config import load\n")
    write("noded.daemon.config", "from . import units\n")
    write("noded.nodes.a", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from noded.nodes import b\n")
    write("noded.nodes.b", "from noded.nodes.a import A\n")
    g = scan(tmp_path)
    assert [i.target for i in g["noded.daemon.config"]] == ["noded.daemon.units"]  # relative
    breaches = rule_breaches(g, "noded.contract.*", RULES["noded.contract.*"])
    assert breaches == [
        "noded/contract/spec.py:2: noded.contract.spec imports noded.daemon.units, "
        "but noded.contract.* may import only noded.contract.*, noded.errors"
    ]
    private = private_breaches(g, "noded.daemon")
    assert len(private) == 2 and "noded/ctl/cli.py:2: noded.ctl.cli imports noded.daemon.config" in private[1]
    # spec -> daemon.units -> spec is a circle; nodes.a -> nodes.b is not imported at run
    # time (TYPE_CHECKING), so nodes.b -> nodes.a closes none.
    assert cycles(g) == [
        "noded.contract.spec -> noded.daemon.units -> noded.contract.spec  "
        "(noded/contract/spec.py:2, noded/daemon/units.py:1)"
    ]
