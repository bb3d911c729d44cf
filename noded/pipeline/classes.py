"""Find what a module defines at top level without importing it (or its parents).

``noded.pipeline.checks`` checks node classes with this: a module is looked up through the
import system's finders, never run, and the class name is looked for in its source.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from importlib.machinery import ModuleSpec, PathFinder

__all__ = ["file_names", "module_names"]


def _find_module_spec(name: str, code: tuple[str, ...] = ()) -> ModuleSpec | None:
    """Like importlib.util.find_spec, but importing nothing.

    find_spec("pkg.mod") imports (runs) "pkg"; here each finder on sys.meta_path gets
    the parent's search locations instead. Already-imported modules use their __spec__.
    ``code``: the node's own folders, searched first (the worker puts them first on
    its sys.path).
    """
    parts = name.split(".")
    spec: ModuleSpec | None = None
    if code:
        spec = PathFinder.find_spec(parts[0], list(code))
        if spec is None:
            return _find_module_spec(name)
    for depth in range(1, len(parts) + 1):
        fullname = ".".join(parts[:depth])
        if depth == 1 and spec is not None:
            continue  # found in the node's own code
        loaded = getattr(sys.modules.get(fullname), "__spec__", None)
        if isinstance(loaded, ModuleSpec):
            spec = loaded
            continue
        if spec is not None and spec.submodule_search_locations is None:
            return None  # the parent is a module, not a package
        spec = _spec_from_finders(fullname, None if spec is None else _search_locations(spec))
        if spec is None:
            return None
    return spec


def _search_locations(spec: ModuleSpec) -> list[str]:
    locations = spec.submodule_search_locations
    try:
        return list(locations or [])
    except Exception:  # a nested namespace package recomputes from its (unimported) parent
        return list(getattr(locations, "_path", []))


def _spec_from_finders(fullname: str, path: list[str] | None) -> ModuleSpec | None:
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(fullname, path)
        except Exception:  # a third-party finder's bug must not break validation
            continue
        if isinstance(spec, ModuleSpec):
            return spec
    return None


def module_names(module: str, code: tuple[str, ...] = ()) -> set[str] | None:
    """The names a module defines at top level, from its source; None when that cannot
    be known (no source, ``import *``, a module ``__getattr__``), so the class is assumed.

    Raises ValueError when the module cannot be found or its source does not parse.
    """
    importlib.invalidate_caches()  # the daemon runs for long; modules appear and go
    spec = _find_module_spec(module, code)
    if spec is None:
        where = f" in {', '.join(code)} or the daemon's Python" if code else ""
        raise ValueError(f"module {module!r} not found{where}")
    get_source = getattr(spec.loader, "get_source", None)
    try:
        source = get_source(spec.name) if get_source is not None else None
        if source is None:
            return None if spec.loader is not None else set()  # no loader: a namespace package
        with warnings.catch_warnings():  # e.g. invalid escapes in the user's module
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=spec.origin or module)
    except SyntaxError as exc:
        where = f" of {spec.origin}" if spec.origin else ""
        raise ValueError(f"module {module!r} has a syntax error at line {exc.lineno}{where}: {exc.msg}") from None
    except Exception:  # unreadable source: leave the verdict to the worker
        return None
    return _defined_names(tree.body)


def file_names(path: str) -> set[str] | None:
    """``module_names`` of a Python file a pipeline names ("nodes/asr.py:Class").

    Raises ValueError when it cannot be read or does not parse (with its file and line).
    """
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise ValueError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # NUL bytes
        raise ValueError(f"{path}: {exc}") from None
    return _defined_names(tree.body)


def _defined_names(body: list[ast.stmt]) -> set[str] | None:
    names: set[str] = set()
    for stmt in body:
        match stmt:
            case ast.ClassDef(name=name):
                names.add(name)
            case ast.FunctionDef(name="__getattr__") | ast.ImportFrom(names=[ast.alias(name="*")]):
                return None
            case ast.Assign(targets=targets):
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            case ast.AnnAssign(target=ast.Name(id=name)):
                names.add(name)
            case ast.Import(names=aliases) | ast.ImportFrom(names=aliases):
                names.update(a.asname or a.name.split(".")[0] for a in aliases)
            case ast.If() | ast.Try() | ast.TryStar() | ast.With() | ast.For() | ast.While():
                blocks = [getattr(stmt, a, []) for a in ("body", "orelse", "finalbody")]
                blocks += [h.body for h in getattr(stmt, "handlers", [])]
                for block in blocks:
                    inner = _defined_names(block)
                    if inner is None:
                        return None
                    names |= inner
    return names
