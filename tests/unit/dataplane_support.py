"""Helpers for data-plane tests: hand-built data planes, workers as real subprocesses (no
systemd: a fake NOTIFY_SOCKET), in-process endpoints, and the check that a session
leaves nothing behind.

Each ``Session`` has its own iceoryx2 root (short: iceoryx2 puts AF_UNIX sockets in it)
and a unique prefix. ``close()`` stops every worker it started by PID (SIGTERM, then
SIGKILL after a grace period), closes its endpoints, reports what the session left in
the root and /dev/shm, then removes it with ``remove_session_resources``.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import noded
from noded.contract.spec import DataPlane, InputSpec, OutputSpec, WorkerSpec, encode_spec
from noded.dataplane.channels import remove_session_resources
from noded.dataplane.endpoint import Endpoint
from noded.dataplane.message import Message
from noded.testing import NotifyListener

REPO = Path(noded.__file__).resolve().parent.parent
SHM = Path("/dev/shm")


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen[bytes]
    notify: NotifyListener
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 20.0) -> None:
        try:
            self.notify.wait_for(lambda m: m.get("READY") == "1", timeout)
        except TimeoutError:
            raise AssertionError(f"worker {self.name} not ready (exit {self.proc.poll()}):\n{self.stderr}") from None

    def statuses(self) -> list[str]:
        return [m["STATUS"] for m in self.notify.drain() if "STATUS" in m]

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)


def rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Session:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.root = tempfile.mkdtemp(prefix="nwdp", dir="/tmp") + "/"
        self.prefix = f"nwt{uuid.uuid4().hex[:10]}_"
        self.workers: list[WorkerProc] = []
        self.endpoints: list[Endpoint] = []
        self.killed = False  # a test SIGKILLed a node: its files stay until the removal

    # -- topology -------------------------------------------------------------------

    def plan(
        self, edges: list[tuple[str, str]], *, depth: int = 4, max_payload: int = 1 << 20, verify: bool = False
    ) -> dict[str, DataPlane]:
        """One DataPlane per endpoint named in ``edges``: ("producer.port", "consumer")
        pairs. Services "<producer>/<port>", inboxes "<endpoint>/inbox", sources
        "producer.port"; ports and consumers are indexed in order of appearance."""
        outputs: dict[str, dict[str, list[str]]] = {}
        names: list[str] = []
        for src, dst in edges:
            producer, port = src.split(".")
            outputs.setdefault(producer, {}).setdefault(port, []).append(dst)
            names += [n for n in (producer, dst) if n not in names]
        planes = {}
        for name in names:
            outs = [
                OutputSpec(
                    port=port,
                    service=f"{name}/{port}",
                    consumers=consumers,
                    consumer_inboxes=[f"{c}/inbox" for c in consumers],
                    depth=depth,
                    max_payload=max_payload,
                )  # fmt: skip
                for port, consumers in outputs.get(name, {}).items()
            ]
            ins = []
            for src, dst in edges:
                if dst != name:
                    continue
                producer, port = src.split(".")
                ins.append(InputSpec(
                    source=src, service=f"{producer}/{port}", producer_inbox=f"{producer}/inbox",
                    port_index=list(outputs[producer]).index(port),
                    consumer_index=outputs[producer][port].index(name), depth=depth,
                ))  # fmt: skip
            planes[name] = DataPlane(
                root=self.root, prefix=self.prefix, inbox=f"{name}/inbox", outputs=outs, inputs=ins,
                verify_payload=verify,
            )  # fmt: skip
        return planes

    # -- processes and endpoints ------------------------------------------------------

    def worker(self, name: str, cls: str, plane: DataPlane | None, params: dict[str, Any] | None = None) -> WorkerProc:
        listener = NotifyListener(str(self.logs / f"{name}.sock"))
        env = {**os.environ, "NOTIFY_SOCKET": listener.path, "PYTHONPATH": str(REPO)}
        spec = encode_spec(WorkerSpec(session="t", node=name, cls=cls, params=params or {}, dataplane=plane))
        stderr_path = self.logs / f"{name}.stderr"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "noded.worker", "--spec", spec],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        w = WorkerProc(name, proc, listener, stderr_path)
        self.workers.append(w)
        return w

    def endpoint(self, name: str, plane: DataPlane, send_timeout: float = 20.0, **kw: Any) -> Endpoint:
        """An endpoint in this process; its sends give up after ``send_timeout`` s (a
        test that would hang fails instead); ``kw`` goes to Endpoint."""
        ep = Endpoint(plane, name, send_timeout=send_timeout, **kw)
        self.endpoints.append(ep)
        return ep

    def stop(self, w: WorkerProc, timeout: float = 10.0) -> int:
        """SIGTERM ``w`` and return its exit status (SIGKILL after ``timeout``)."""
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
        try:
            return w.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
            raise AssertionError(f"worker {w.name} ignored SIGTERM for {timeout} s:\n{w.stderr}") from None

    def leftovers(self) -> list[str]:
        files = [str(p) for p in Path(self.root).rglob("*") if not p.is_dir()] if os.path.exists(self.root) else []
        return sorted(files + [str(p) for p in SHM.iterdir() if p.name.startswith(self.prefix)])

    def close(self) -> list[str]:
        """Stop everything; return what was left before the removal (see the module doc)."""
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.notify.close()
        for ep in self.endpoints:
            ep.close()
        self.endpoints.clear()
        gc.collect()
        left = self.leftovers()
        remove_session_resources(self.root, self.prefix)
        return left


# What an iceoryx2 session leaves once every node closed cleanly: the shared node registry.
CLEAN_LEFTOVER_SUFFIXES = (".global_mgmt",)


def receive(ep: Endpoint, timeout: float = 10.0) -> Message:
    """The next message of ``ep``; AssertionError after ``timeout`` seconds without one."""
    deadline = time.monotonic() + timeout
    while True:
        msg = ep.receive()
        if msg is not None:
            return msg
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no message for {ep.name} in {timeout} s")
        ep.wait(left)


def patch_header_packing(monkeypatch: Any, pack: Any) -> None:
    """Make every header ``Endpoint.send`` writes go through ``pack(buf, header)``: the
    general path (``pack_header_into``) and the fast one (``pack_header_patched_into``,
    given the Header it is equivalent to)."""
    from noded.dataplane import endpoint as dataplane

    def patched(buf: Any, header: Any, seq: int, flags: int, payload_crc: int, sent_ns: int = 0) -> None:
        pack(buf, dataplane._with(header, {"seq": seq, "flags": flags, "payload_crc": payload_crc, "sent_ns": sent_ns}))

    monkeypatch.setattr(dataplane, "pack_header_into", pack)
    monkeypatch.setattr(dataplane, "pack_header_patched_into", patched)
