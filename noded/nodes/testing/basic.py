"""Test nodes for integration tests and benchmarks: sleep, fail, crash, allocate, pass
through, and for the data plane: produce (Source), consume slowly (SlowSink), fail on
some messages (Flaky), and a reply in miniature that a flush interrupts (Drip).

Params are checked in ``__init__`` (unknown names and wrong types raise ParamError, so the
worker exits 2). "ready" variants act in a thread started in setup that waits for
``ctx.ready`` (set right after READY=1 was sent) and then ``after`` seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from noded.errors import ParamError
from noded.node import Context, Node
from noded.nodes.params import REQUIRED, check_params

_REQUIRED: Any = REQUIRED


def _params(node: Node, spec: dict[str, tuple[type, Any]]) -> dict[str, Any]:
    """``node.params`` checked against ``{name: (type, default or _REQUIRED)}``
    (``params.check_params``), with this module's ``_CHOICES``."""
    return check_params(node, spec, _CHOICES)


_CHOICES = {
    "when": ("setup", "ready"),
    "how": ("exit", "sigkill", "sigsegv", "exception"),
    "mode": ("run", "thread"),
}


def _after_ready(ctx: Context, delay: float, action: Callable[[], None], name: str) -> None:
    """Run ``action`` in a daemon thread, ``delay`` s after READY=1."""

    def run() -> None:
        ctx.ready.wait()
        time.sleep(delay)
        action()

    threading.Thread(target=run, name=name, daemon=True).start()


class SleepSetup(Node):
    """Sleeps ``seconds`` in setup, in ``steps`` steps, reporting progress after each
    (its text: ``label`` then the step)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {"seconds": (float, 1.0), "steps": (int, 10), "label": (str, "step")})
        self.label: str = p["label"]
        self.seconds: float = p["seconds"]
        self.steps: int = p["steps"]
        if self.steps < 1:
            raise ParamError(f"SleepSetup ({self.node_id}): steps must be >= 1, got {self.steps}")

    def setup(self, ctx: Context) -> None:
        for step in range(1, self.steps + 1):
            time.sleep(self.seconds / self.steps)
            ctx.progress(step / self.steps, f"{self.label} {step}/{self.steps}")


class FailSetup(Node):
    """Raises RuntimeError(``message``) in setup, ``after`` seconds in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {"message": (str, "setup failed on purpose"), "after": (float, 0.0)})
        self.message: str = p["message"]
        self.after: float = p["after"]

    def setup(self, ctx: Context) -> None:
        time.sleep(self.after)
        raise RuntimeError(self.message)


class Crash(Node):
    """Crashes on demand: ``when`` "setup" (``after`` s into setup) or "ready" (``after`` s
    after READY=1); ``how`` "exit" (os._exit(``code``)), "sigkill", "sigsegv" (a real
    invalid read; faulthandler logs the Python stacks first) or "exception" (RuntimeError:
    the worker exits 1). Core dumps are disabled unless ``core`` is true, so that crash
    tests do not wait for a core file to be written (or for systemd-coredump)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {
            "when": (str, "ready"), "after": (float, 0.0), "how": (str, "exit"),
            "code": (int, 3), "core": (bool, False),
        })  # fmt: skip
        self.when: str = p["when"]
        self.after: float = p["after"]
        self.how: str = p["how"]
        self.code: int = p["code"]
        self.core: bool = p["core"]
        if self.code > 255:
            raise ParamError(f"Crash ({self.node_id}): code must be 0..255, got {self.code}")

    def setup(self, ctx: Context) -> None:
        if not self.core:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        if self.when == "setup":
            time.sleep(self.after)
            self.crash()
        else:
            _after_ready(ctx, self.after, self.crash, name="crash")

    def crash(self) -> None:
        self.logger.warning("crashing on purpose: how=%s when=%s", self.how, self.when)
        if self.how == "exception":
            raise RuntimeError(f"crash on purpose ({self.when})")
        if self.how == "exit":
            os._exit(self.code)
        if self.how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        import ctypes

        ctypes.string_at(0)  # sigsegv: reads address 0


class Allocate(Node):
    """Allocates ``mb`` MiB and writes every page of it, so that it counts in RSS (and in
    the unit's memory cgroup): in setup (with progress) or ``after`` s after READY. Keeps it
    until teardown when ``hold``, frees it right away otherwise."""

    CHUNK = 64 << 20

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {
            "mb": (int, _REQUIRED), "when": (str, "setup"), "hold": (bool, True), "after": (float, 0.0),
        })  # fmt: skip
        self.mb: int = p["mb"]
        self.when: str = p["when"]
        self.hold: bool = p["hold"]
        self.after: float = p["after"]
        self.chunks: list[bytearray] = []

    def setup(self, ctx: Context) -> None:
        if self.when == "setup":
            self.allocate(ctx.progress)
        else:
            _after_ready(ctx, self.after, self.allocate, name="allocate")

    def allocate(self, progress: Callable[[float, str], None] | None = None) -> None:
        import mmap

        total = self.mb << 20
        done = 0
        while done < total:
            size = min(self.CHUNK, total - done)
            chunk = bytearray(size)
            chunk[:: mmap.PAGESIZE] = b"\x01" * len(range(0, size, mmap.PAGESIZE))
            self.chunks.append(chunk)
            done += size
            if progress is not None:
                progress(done / total, f"{done >> 20}/{self.mb} MiB")
        self.logger.info("allocated and touched %d MiB (hold=%s)", self.mb, self.hold)
        if not self.hold:
            self.chunks.clear()

    def teardown(self) -> None:
        self.chunks.clear()


class PassThrough(Node):
    """Does nothing in setup; ``process`` returns its input unchanged: the single positional
    argument, else the tuple of positional arguments, else the dict of keyword arguments.
    In a worker it gets one Message and so forwards every message, from any of its inputs,
    to port "out" with its header (payload copied once, by numpy)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _params(self, {})

    def process(self, *args: Any, **kwargs: Any) -> Any:
        if args and kwargs:
            raise TypeError("PassThrough.process takes positional or keyword inputs, not both")
        if kwargs:
            return kwargs
        return args[0] if len(args) == 1 else args


class Source(Node):
    """Sends ``count`` messages of ``shape``/``dtype`` on ``port`` as fast as the consumers
    take them, each filled (by numpy) with ``seq % 251`` and written straight into a loan.
    ``mode`` "run" sends from ``run()`` in the main thread, "thread" from a thread started
    in setup. ``interval`` seconds pass between messages; each message's timestamp_ns is
    time.monotonic_ns() just before its send (a system-wide clock: consumers in other
    processes can compute latencies). The last has Flags.END_OF_STREAM when ``eos``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {
            "count": (int, 100), "shape": (list, [1024]), "dtype": (str, "uint8"), "port": (str, "out"),
            "mode": (str, "run"), "eos": (bool, False), "interval": (float, 0.0),
        })  # fmt: skip
        self.count: int = p["count"]
        self.shape: list[int] = p["shape"]
        self.dtype: str = p["dtype"]
        self.port: str = p["port"]
        self.mode: str = p["mode"]
        self.eos: bool = p["eos"]
        self.interval: float = p["interval"]
        self.sent = 0

    def setup(self, ctx: Context) -> None:
        if self.mode == "thread":
            threading.Thread(target=self._thread, args=(ctx,), name="source", daemon=True).start()

    def _thread(self, ctx: Context) -> None:
        ctx.ready.wait()
        self.produce(ctx)

    def run(self, ctx: Context) -> None:
        if self.mode == "run":
            self.produce(ctx)

    def produce(self, ctx: Context) -> None:
        from noded.contract.wire import Flags

        for seq in range(self.count):
            if seq and self.interval and ctx.stopping.wait(self.interval):
                return
            if ctx.stopping.is_set():
                return
            last = self.eos and seq == self.count - 1
            out = ctx.loan(self.port, self.shape, self.dtype, seq=seq, flags=Flags.END_OF_STREAM if last else 0)
            out.fill(seq % 251)
            ctx.send(self.port, out, timestamp_ns=time.monotonic_ns())
            self.sent += 1
        self.logger.info("sent %d messages on %s", self.sent, self.port)


class SlowSink(Node):
    """Consumes messages, sleeping ``ms`` milliseconds on each. With ``record`` (a file
    path), appends one line per message: "<source> <seq> <first element or -1>". With
    ``forward``, then passes each message on to port "out" (a slow pass-through)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {"ms": (float, 50.0), "record": (str, ""), "forward": (bool, False)})
        self.ms: float = p["ms"]
        self.forward: bool = p["forward"]
        self.record: str = p["record"]
        self._file: Any = None

    def setup(self, ctx: Context) -> None:
        if self.record:
            self._file = open(self.record, "a", buffering=1)

    def process(self, msg: Any) -> Any:
        time.sleep(self.ms / 1000)
        if self._file is not None:
            first = msg.array.reshape(-1)[0] if msg.array.size else -1
            self._file.write(f"{msg.source} {msg.seq} {first}\n")
        return msg if self.forward else None

    def teardown(self) -> None:
        if self._file is not None:
            self._file.close()


class Flaky(Node):
    """Forwards every message, except that process() raises RuntimeError for those whose
    seq is a multiple of ``fail_every``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {"fail_every": (int, 2)})
        self.fail_every: int = max(p["fail_every"], 1)

    def process(self, msg: Any) -> Any:
        if msg.seq % self.fail_every == 0:
            raise RuntimeError(f"flaky on purpose: seq {msg.seq}")
        return msg


class Drip(Node):
    """A reply in miniature, for interruptions: for each message (JSON ``{"label": x}``)
    it sends ``count`` JSON messages ``{"label": x, "i": k}`` on "out", ``interval`` s
    apart, asking ``ctx.interrupted()`` before each, and stops when a flush waits. Its
    ``on_flush`` sends ``{"flushed": x}`` (x: the label it was sending, or None)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = _params(self, {"count": (int, 20), "interval": (float, 0.05)})
        self.count: int = p["count"]
        self.interval: float = p["interval"]
        self.current: Any = None

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, msg: Any) -> Any:
        if msg.end_of_stream:
            yield msg  # the end marker passes
            return
        self.current = msg.json.get("label")
        for i in range(self.count):
            if self.ctx.interrupted():
                return  # the rest is not sent; current stays for on_flush
            if i:
                time.sleep(self.interval)
            yield {"label": self.current, "i": i}
        self.current = None

    def on_flush(self, msg: Any) -> Any:
        label, self.current = self.current, None
        return {"flushed": label}


class Hang(Node):
    """Hangs for good, as a deadlocked model library or an endless loop would: in setup(),
    after one progress report (``when`` "setup"), or in process() on its ``nth`` message
    (``when`` "process"; earlier messages are forwarded). ``how`` "lock" waits on a lock
    nobody releases; "spin" loops in Python code; "masked" ignores SIGTERM and SIGINT
    first, as a C call that never returns to Python would, so only systemd's SIGKILL after
    TimeoutStopSec= ends it. Core dumps are off (see Crash).

    "masked" sets the signals' disposition to SIG_IGN, process-wide. Blocking them in the
    main thread is not enough: the kernel then delivers a stop signal to another thread
    (the setup heartbeat), Python's handler is left pending, and the main thread runs it
    at its next bytecode, so the node stops after all if the signal comes before it sleeps."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        spec = {"when": (str, "process"), "how": (str, "lock"), "nth": (int, 1)}
        p = check_params(self, spec, {"when": ("setup", "process"), "how": ("lock", "spin", "masked")})
        self.when: str = p["when"]
        self.how: str = p["how"]
        self.nth: int = p["nth"]
        self.seen = 0

    def setup(self, ctx: Context) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        if self.when == "setup" and self.how == "masked":
            self.deafen()  # before "hanging"
        if self.when == "setup":
            ctx.progress(0.5, "hanging")
            self.hang()

    def process(self, msg: Any) -> Any:
        self.seen += 1
        if self.when == "process" and self.seen >= self.nth:
            self.hang()
        return msg

    def hang(self) -> None:
        self.logger.warning("hanging on purpose (%s, in %s)", self.how, self.when)
        if self.how == "spin":
            while True:
                pass
        if self.how == "masked":
            self.deafen()
            while True:
                time.sleep(3600)
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # never released: a deadlock

    @staticmethod
    def deafen() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
