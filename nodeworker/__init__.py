"""noded's node process: the SDK node authors import, and the worker that hosts one node."""

from nodeworker.node import Context, Node, Stopped

__all__ = ["Context", "Node", "Stopped"]
