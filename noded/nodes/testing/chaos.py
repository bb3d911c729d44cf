"""A node that moves data and, when told to, fails at a chosen moment: the crash scenarios
of tests/integration/test_crash_scenarios.py (SC-005).

``Chaos`` is a source when it has no inputs (it sends ``count`` messages of ``size`` bytes
on "out", ``interval`` s apart, from ``run``), and otherwise forwards every message to "out"
after sleeping ``ms`` milliseconds (a slow consumer when ``ms`` is large). With ``crash``
set it fails, ``at``:

* "init": ``after`` s into setup;
* "idle": ``after`` s after READY=1, from a thread (the pipeline is quiet);
* "message": while handling its ``nth`` message (a forwarder: inside ``process``, holding
  the message; a source: between loaning the ``nth`` sample and sending it);
* "backpressure": once one of its sends has waited ``blocked_ms`` for credits (a
  watchdog thread sees the main thread stuck in ``ctx.send``; the scenario makes the
  consumer slow), from that thread.

``crash`` is how: "sigkill", "sigsegv" (a real invalid read), "exit" (``os._exit(code)``),
"exception" (RuntimeError in setup; only ``at = "init"``, anywhere else an exception is
not a crash) or "oom" (allocates and touches memory until the kernel kills it: give the node a
``memory_max``). Core dumps are off, as in ``Crash``. ``threads`` idle threads are started
first in setup (to reach a ``tasks_max``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from noded.errors import ParamError
from noded.node import Context, Node
from noded.nodes.testing.basic import _params

HOWS = ("", "sigkill", "sigsegv", "exit", "exception", "oom")
MOMENTS = ("init", "idle", "message", "backpressure")
WATCH_INTERVAL = 0.01  # s between the backpressure watchdog's looks at the main thread


class Chaos(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {
            "count": (int, 0), "size": (int, 1024), "interval": (float, 0.0), "ms": (float, 0.0),
            "crash": (str, ""), "at": (str, "init"), "after": (float, 0.0), "nth": (int, 1),
            "code": (int, 3), "blocked_ms": (float, 100.0), "threads": (int, 0),
        })  # fmt: skip
        self.p = p
        where = f"Chaos ({self.node_id})"
        if p["crash"] not in HOWS:
            raise ParamError(f"{where}: crash must be one of {HOWS}, got {p['crash']!r}")
        if p["at"] not in MOMENTS:
            raise ParamError(f"{where}: at must be one of {MOMENTS}, got {p['at']!r}")
        if p["crash"] == "exception" and p["at"] != "init":
            raise ParamError(
                f"{where}: crash 'exception' is a failure only at 'init'",
                hint="an exception in process() is counted and the node goes on",
            )
        if p["code"] > 255 or p["nth"] < 1:
            raise ParamError(f"{where}: code must be 0..255 and nth >= 1")
        self.crash_how: str = p["crash"]
        self.at: str = p["at"] if self.crash_how else ""
        self.seen = 0
        self._send_since: float | None = None  # monotonic time the current send began
        self._hold: list[bytearray] = []

    # -- lifecycle -----------------------------------------------------------------

    def setup(self, ctx: Context) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        self.ctx = ctx
        for i in range(self.p["threads"]):  # idle threads, e.g. to reach a TasksMax
            threading.Thread(target=ctx.stopping.wait, name=f"chaos-idle-{i}", daemon=True).start()
        if self.at == "init":
            time.sleep(self.p["after"])
            self.crash()
        elif self.at == "idle":
            self._thread(self._idle)
        elif self.at == "backpressure":
            self._thread(self._watch_sends)

    def run(self, ctx: Context) -> None:
        import numpy as np

        for seq in range(self.p["count"]):
            if seq and self.p["interval"] and ctx.stopping.wait(self.p["interval"]):
                return
            out = ctx.loan("out", (self.p["size"],), np.uint8)
            out[0] = out[-1] = seq % 251
            if self.at == "message" and seq + 1 == self.p["nth"]:
                self.crash()  # holding an unsent loan
            self._send(out)

    def process(self, msg: Any) -> None:
        self.seen += 1
        if self.at == "message" and self.seen == self.p["nth"]:
            self.crash()  # holding the received message
        if self.p["ms"]:
            time.sleep(self.p["ms"] / 1000)
        self._send(msg)

    def teardown(self) -> None:
        self._hold.clear()

    # -- helpers -------------------------------------------------------------------

    def _send(self, value: Any) -> None:
        self._send_since = time.monotonic()
        try:
            self.ctx.send("out", value)
        finally:
            self._send_since = None

    def _thread(self, target: Any) -> None:
        threading.Thread(target=target, name=f"chaos-{self.at}", daemon=True).start()

    def _idle(self) -> None:
        self.ctx.ready.wait()
        time.sleep(self.p["after"])
        self.crash()

    def _watch_sends(self) -> None:
        self.ctx.ready.wait()
        limit = self.p["blocked_ms"] / 1000
        while not self.ctx.stopping.is_set():
            since = self._send_since
            if since is not None and time.monotonic() - since >= limit:
                self.logger.warning("a send has waited %.0f ms for credits", (time.monotonic() - since) * 1000)
                self.crash()
            time.sleep(WATCH_INTERVAL)

    def crash(self) -> None:
        how = self.crash_how
        self.logger.warning("crashing on purpose: %s at %s", how, self.at)
        if how == "exception":
            raise RuntimeError(f"chaos: exception in setup of {self.node_id}")
        if how == "exit":
            os._exit(self.p["code"])
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "oom":
            import mmap

            while True:  # until the kernel's OOM killer ends this process
                chunk = bytearray(64 << 20)
                chunk[:: mmap.PAGESIZE] = b"\x01" * len(range(0, len(chunk), mmap.PAGESIZE))
                self._hold.append(chunk)
        import ctypes

        ctypes.string_at(0)  # sigsegv: reads address 0
