"""The node SDK: subclass ``Node``; the worker hands ``setup`` a ``Context``.

A node's life in its worker process::

    node = MyNode(node_id=..., params=...)   # cheap: keep heavy work out of __init__
    node.setup(ctx)                          # load models here; ctx.progress() as you go
    ... READY=1 ...                          # the data plane will call node.process()
    node.teardown()                          # on SIGTERM/SIGINT, only if setup returned

``nodeworker.testing.FakeContext`` runs ``setup`` in plain pytest.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any


def logger_for(node_id: str) -> logging.Logger:
    return logging.getLogger(f"noded.node.{node_id}")


class Context(abc.ABC):
    """What a node's setup sees of its host: the real worker or ``testing.FakeContext``.

    Attributes: ``session``, ``node_id``, ``params`` (the spec's params), ``logger``
    (stdlib logger ``noded.node.<id>``; the worker sends it to the journal) and ``ready``,
    a ``threading.Event`` set once the worker has told systemd READY=1 (for threads that a
    node starts in setup and that must only act once the node is up).
    """

    def __init__(self, *, session: str, node_id: str, params: Mapping[str, Any]) -> None:
        self.session = session
        self.node_id = node_id
        self.params = params
        self.logger = logger_for(node_id)
        self.ready = threading.Event()

    def progress(self, fraction: float, text: str = "") -> None:
        """Report setup progress: ``fraction`` in [0, 1] (clamped; NaN shows no percentage).

        The worker turns reports into the unit's status text (``initializing 42.0%: text``),
        at most every ~50 ms, and each one that changes what is shown also extends systemd's
        start timeout. Call it from any thread, as often as you like; it is a no-op after
        setup. Raises TypeError when ``fraction`` is not a number.
        """
        try:
            value = float(fraction)
        except (TypeError, ValueError):
            raise TypeError(f"progress fraction must be a number, got {fraction!r}") from None
        self._report(None if math.isnan(value) else min(max(value, 0.0), 1.0), str(text))

    @abc.abstractmethod
    def _report(self, fraction: float | None, text: str) -> None:
        """Deliver one normalised progress report."""


class Node:
    """Base class of every node. Override ``setup``, ``process`` and ``teardown``.

    ``self.params`` is a copy of the spec's params, ``self.node_id`` the node's id in its
    pipeline, ``self.logger`` the same logger as ``ctx.logger``. A subclass that overrides
    ``__init__`` must accept and pass on the keyword arguments.
    """

    def __init__(self, *, node_id: str = "node", params: Mapping[str, Any] | None = None) -> None:
        self.node_id = node_id
        self.params: dict[str, Any] = dict(params or {})
        self.logger = logger_for(node_id)

    def setup(self, ctx: Context) -> None:
        """Load models and open resources. READY=1 is sent only after this returns.

        An exception fails the worker (exit 1, ``STATUS=error: Type: message``); raise
        ``nodeworker.errors.ParamError`` for invalid params (exit 2: no point restarting).
        SIGTERM/SIGINT during setup raise ``SetupInterrupted`` (a BaseException) out of
        whatever Python code runs: clean up with ``try/finally`` or ``with``, and do not
        catch BaseException. ``teardown`` is not called after a failed or interrupted setup.
        """

    def process(self, *args: Any, **kwargs: Any) -> Any:
        """Turn inputs into outputs: return them, or be a generator that yields them.

        Called by the data plane (iceoryx2, a later issue) once per input; its calling
        convention for ports is defined there. The default raises NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement process()")

    def teardown(self) -> None:
        """Release what setup acquired. Called once, after a stop request, if setup returned.

        An exception is logged and makes the worker exit 4.
        """
