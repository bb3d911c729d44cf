"""noded: a systemd-native runtime for real-time AI/media pipelines, one process per node.

What node authors import::

    from noded import Node, Context, Stopped

What programs that drive noded import (``noded.api``)::

    from noded import connect

The package is laid out by role (docs/architecture.md): ``contract`` (what the daemon,
the CLI and a worker agree on), ``daemon``, ``ctl`` (nodectl), ``worker``, ``dataplane``
and ``nodes``.  Importing ``noded`` stays cheap: a worker imports it first thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Context", "Message", "Node", "Stopped", "__version__", "connect"]

if TYPE_CHECKING:
    from noded.api import connect
    from noded.dataplane.message import Message
    from noded.errors import Stopped
    from noded.node import Context, Node


def __getattr__(name: str) -> Any:
    # Each name is imported on first use: `nodectl --help` and completion import
    # noded.ctl, which needs none of them (logging, dataclasses and inspect are most of
    # the CPU that tests/unit/test_cli_conventions.py budgets).
    if name in ("Node", "Context"):
        from noded import node

        return getattr(node, name)
    if name == "Stopped":
        from noded.errors import Stopped

        return Stopped
    if name == "Message":  # what process() receives; numpy comes with it
        from noded.dataplane.message import Message

        return Message
    if name == "connect":  # the client API: only for programs that use it
        from noded.api import connect

        return connect
    raise AttributeError(f"module 'noded' has no attribute {name!r}")
