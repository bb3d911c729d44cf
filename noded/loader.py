"""Import the node class a spec names ("package.module:Class", or a built-in short name)."""

from __future__ import annotations

import importlib
import sys

from noded.contract.registry import resolve_class_name
from noded.errors import NodeLoadError
from noded.node import Node


def load_class(name: str) -> type:
    """Import ``package.module:Class`` (``Class`` may be dotted) or a built-in short name.

    Raises NodeLoadError, with a hint, for every way this can go wrong.
    """
    try:
        path = resolve_class_name(name)
    except ValueError as e:
        raise NodeLoadError(str(e), hint="write the class as 'package.module:Class'") from None
    module_name, _, qualname = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise NodeLoadError(
                f"no module named {missing!r} (for node class {path!r})",
                hint=f"install the package that provides it into {sys.prefix}",
            ) from None
        raise NodeLoadError(
            f"importing {module_name!r} failed: it needs module {missing!r}, which is not installed",
            hint=f"install {missing!r} into {sys.prefix}",
            show_traceback=True,
        ) from e
    except Exception as e:
        raise NodeLoadError(
            f"importing {module_name!r} failed: {type(e).__name__}: {e}",
            hint="see the traceback: the error is in that module or what it imports",
            show_traceback=True,
        ) from e
    obj: object = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, Node))
            raise NodeLoadError(
                f"module {module_name!r} has no {qualname!r}",
                hint=f"Node classes there: {', '.join(found) or 'none'}",
            ) from None
    if not isinstance(obj, type):
        raise NodeLoadError(f"{path!r} is a {type(obj).__name__}, not a class", hint="name a Node subclass")
    return obj


def load_node_class(name: str) -> type[Node]:
    cls = load_class(name)
    if not issubclass(cls, Node):
        raise NodeLoadError(f"{name!r} is not a noded.Node subclass", hint="derive the class from noded.Node")
    return cls
