"""Worker start-up time: spawn -> READY=1 for PassThrough workers, one and five at once.

The tests check that one and five workers started at once all get ready and stop cleanly;
how fast is for ``PYTHONPATH=. python tests/unit/test_worker_startup.py [runs]``, which
prints the distribution (five workers were ready within about 0.5 s on 2 cores), and for
benchmarks/startup.py.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import noded
from noded.contract.spec import WorkerSpec, encode_spec
from noded.testing import NotifyListener

REPO = Path(noded.__file__).resolve().parent.parent


def time_to_ready(n: int) -> list[float]:
    """Start ``n`` PassThrough workers at once; seconds from the first spawn to each READY=1."""
    with tempfile.TemporaryDirectory(prefix="nw") as tmp, NotifyListener(f"{tmp}/notify") as listener:
        env = {**os.environ, "NOTIFY_SOCKET": listener.path, "PYTHONPATH": str(REPO)}
        procs: list[subprocess.Popen[bytes]] = []
        ready: list[float] = []
        try:
            t0 = time.monotonic()
            for i in range(n):
                spec = encode_spec(WorkerSpec(session="bench", node=f"p{i}", cls="passthrough"))
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "noded.worker", "--spec", spec],
                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            while len(ready) < n:
                listener.wait_for(lambda m: m.get("READY") == "1", 10.0)
                ready.append(time.monotonic() - t0)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in procs] == [0] * n
        return ready


def test_one_worker_gets_ready() -> None:
    assert len(time_to_ready(1)) == 1  # READY=1 within wait_for's 10 s, then exit 0 on SIGTERM


def test_five_workers_started_at_once_all_get_ready() -> None:
    assert len(time_to_ready(5)) == 5


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for n in (1, 5):
        last = sorted(max(time_to_ready(n)) for _ in range(runs))
        print(
            f"{n} worker(s), all READY: min {last[0] * 1e3:.0f} ms, "
            f"median {statistics.median(last) * 1e3:.0f} ms, max {last[-1] * 1e3:.0f} ms ({runs} runs)"
        )
