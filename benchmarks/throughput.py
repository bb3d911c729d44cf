"""Throughput and CPU of a 5-node chain: noded against dora-rs 1.1, in the same run.

    NODED_SANDBOX_NAME=thr tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/throughput.py \
        [--quick] [--json] [--no-dora] [--wait-quiet [SECONDS]]

Needs systemd as PID 1 and noded.service (benchmarks/README.md), like hop_latency.py.

noded: one session, src (BenchSource, "copy" mode: ``ctx.send(port, existing_array)``
copies each message once into shared memory) -> a -> b -> c (built-in ``passthrough``:
each forwards the message it got, copying it once into its own output) -> sink
(RateSink: counts, checks two payload bytes, notes when the last one came). The benchmark
sends one command per batch on an external input and reads the sink's summary on an
external output. dora: benchmarks/dora_chain/ (``dora run``), the same five roles in
Python: the sender copies an existing array into each message (``pa.array`` +
``send_output``), each relay forwards its input with ``send_output`` (one copy), the
receiver takes a zero-copy numpy view.

Figures per size:

- messages per second: the batch's count over the time from the source's first send
  (its ``timestamp_ns``/``t0``) to the last message's arrival at the sink; the sender
  sends as fast as it can. noded's producers wait for credits (nothing lost). dora has
  no backpressure (a full input queue drops messages; sent unpaced, nearly all of a batch
  is lost), so its receiver acknowledges each message and the sender keeps at most 16 in
  flight (noded's depth 4 on each of the 4 edges); the "lost" columns say how many never
  arrived.
- CPU us per message per node: noded from each node's unit (systemd's CPUUsageNSec, as
  ``nodectl session show`` reads it) before and after the batch; dora from each node
  process's own user+system time (``os.times``) from its first message to the end marker.
  Divided by the messages that node handled.

Every run records the load average before and after (benchmarks/conditions.py) and
warns when the machine was not quiet. dora runs from /opt/noded-bench/dora-venv, which
benchmarks/hop_latency.py makes when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from conditions import QUIET, loadavg, wait_quiet, warning
from hop_latency import DORA_VENV, ensure_dora, machine, table, until

from noded.contract.client import Client, session_info
from noded.dataplane.session import attach

SIZES = {"1 KB": 1_000, "1 MB": 1_000_000}
COUNTS = {"1 KB": 20_000, "1 MB": 2_000}  # per batch; --quick: a tenth
DORA_DIR = Path(__file__).resolve().parent / "dora_chain"
BENCH = "noded.nodes.testing.bench"
CHAIN = ("src", "a", "b", "c", "sink")
PIPELINE = f"""name = "throughput"
inputs = ["ctl"]
outputs = ["sink.out"]
[dataplane]
depth = 4
max_payload = "2M"
[[nodes]]
id = "src"
class = "{BENCH}:BenchSource"
inputs = ["input.ctl"]
[[nodes]]
id = "a"
class = "passthrough"
inputs = ["src.out"]
[[nodes]]
id = "b"
class = "passthrough"
inputs = ["a.out"]
[[nodes]]
id = "c"
class = "passthrough"
inputs = ["b.out"]
[[nodes]]
id = "sink"
class = "{BENCH}:RateSink"
inputs = ["c.out"]
"""


def node_cpu(c: Client, sid: str) -> dict[str, float]:
    info = session_info(c.request("show", sid=sid))
    assert info.stats is not None
    cpu = {n.id: n.cpu_seconds for n in info.stats.nodes}
    missing = [n for n in CHAIN if cpu.get(n) is None]
    if missing:
        raise RuntimeError(f"no CPU figure for {', '.join(missing)}")
    return {n: float(cpu[n]) for n in CHAIN}  # type: ignore[arg-type]


def run_noded(counts: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Client(timeout=60) as c:
        sid = session_info(c.request("create", text=PIPELINE, filename="throughput.toml", watch=True)).sid
        try:
            until(c, sid, "ready")
            with attach(sid) as io:

                def batch(tag: str, size: int, n: int) -> dict[str, Any]:
                    io.send("ctl", {"tag": tag, "mode": "copy", "size": size, "count": n, "interval": 0.0})
                    msg = io.receive(timeout=120 + n * 0.01)
                    if msg is None:
                        raise RuntimeError(f"no summary from the sink for {tag}")
                    summary = msg.json
                    if summary["tag"] != tag or summary["count"] != n or summary["bad"]:
                        raise RuntimeError(f"batch {tag}: {summary['count']} of {n} came, {summary['bad']} bad")
                    return summary

                for label, size in SIZES.items():
                    n = counts[label]
                    print(f"... noded {label}: warm-up, then {n} messages", file=sys.stderr, flush=True)
                    batch(f"warm-{size}", size, max(n // 10, 10))
                    cpu0 = node_cpu(c, sid)
                    s = batch(f"run-{size}", size, n)
                    time.sleep(0.3)  # systemd's CPU accounting is read from the cgroup: let the last stores land
                    cpu1 = node_cpu(c, sid)
                    seconds = (s["last_ns"] - s["first_t0"]) / 1e9
                    out[label] = {
                        "count": n,
                        "received": s["count"],
                        "seconds": seconds,
                        "msg_per_s": s["count"] / seconds,
                        "cpu_us_per_msg": {node: (cpu1[node] - cpu0[node]) * 1e6 / n for node in CHAIN},
                    }
        finally:
            c.request("stop", sid=sid, wait=True)
    return out


def run_dora(counts: dict[str, int]) -> dict[str, Any]:
    """Raises RuntimeError saying why dora could not be measured."""
    try:
        ensure_dora()
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"cannot install dora-rs 1.1.0 into {DORA_VENV}: {e}") from e
    out: dict[str, Any] = {}
    for label, size in SIZES.items():
        n = counts[label]
        print(f"... dora {label}: {n} messages (one `dora run`)", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="thr-dora-") as tmp:
            for f in DORA_DIR.iterdir():
                if f.is_file():
                    shutil.copy(f, tmp)
            env = {
                **os.environ,
                "PATH": f"{DORA_VENV / 'bin'}:{os.environ.get('PATH', '')}",
                "THR_SIZE": str(size),
                "THR_COUNT": str(n),
                "THR_OUT": tmp,
            }
            log = Path(tmp, "dora.log")
            shm_before = set(Path("/dev/shm").glob("*.zenoh"))
            with log.open("w") as f:  # its own process group: a timeout ends dora and its nodes
                proc = subprocess.Popen(
                    [str(DORA_VENV / "bin" / "dora"), "run", "dataflow.yml"],
                    cwd=tmp,
                    env=env,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    rc: int | str = proc.wait(180 + n * 0.01)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    rc = "timeout"
            for stale in set(Path("/dev/shm").glob("*.zenoh")) - shm_before:  # zenoh (in dora) leaves one behind
                stale.unlink(missing_ok=True)
            results = {p.stem.removesuffix(".json"): json.loads(p.read_text()) for p in Path(tmp).glob("*.json")}
            names = ("sender", "r1", "r2", "r3", "receiver")
            if rc != 0 or any(name not in results for name in names):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"`dora run` failed ({rc}, results from {sorted(results)}); last lines:\n{tail}")
        r = results["receiver"]
        seconds = (r["last_ns"] - r["first_t0"]) / 1e9
        if r["bad"]:
            raise RuntimeError(f"dora {label}: {r['bad']} payloads were not what was sent")
        out[label] = {
            "count": n,
            "received": r["count"],
            "seconds": seconds,
            "msg_per_s": r["count"] / seconds if seconds > 0 else 0.0,
            # per message that node handled (a dropped one costs its producer, not its consumer)
            "cpu_us_per_msg": {
                role: results[name]["cpu_s"] * 1e6 / max(results[name]["count"], 1) for role, name in zip(CHAIN, names)
            },
        }
    return out


def report(res: dict[str, Any]) -> None:
    m = res["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"iceoryx2 {m['iceoryx2']}; loadavg before {' '.join(m['loadavg'])}, after {' '.join(res['loadavg_after'])}"
    )
    if res["warning"]:
        print(res["warning"])
    print("a chain of 5 Python nodes (source -> 3 relays -> sink), each message copied once per node\n")
    noded, dora = res["noded"], res["dora"]
    body = []
    for label in SIZES:
        nd = noded[label]
        d = dora.get(label) if isinstance(dora, dict) else None
        body.append(
            [
                label,
                f"{nd['msg_per_s']:.0f}",
                f"{d['msg_per_s']:.0f}" if d else "-",
                f"{nd['msg_per_s'] / d['msg_per_s']:.2f}x" if d and d["msg_per_s"] else "-",
                f"{nd['count'] - nd['received']} of {nd['count']}",
                f"{d['count'] - d['received']} of {d['count']}" if d else "-",
            ]
        )
    print(table(["size", "noded msg/s", "dora msg/s", "noded/dora", "noded lost", "dora lost"], body))
    print("\nCPU us per message, per node (source, relays a b c, sink):")
    body = []
    for label in SIZES:
        for name, figures in (("noded", noded), ("dora", dora)):
            if not isinstance(figures, dict) or label not in figures:
                continue
            cpu = figures[label]["cpu_us_per_msg"]
            body.append([f"{label} {name}", *[f"{cpu[n]:.1f}" for n in CHAIN], f"{sum(cpu.values()):.1f}"])
    print(table(["size, runtime", *CHAIN, "total"], body))
    if not isinstance(dora, dict):
        print(f"\ndora: not measured: {dora}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="a tenth of the messages (2,000 of 1 KB, 200 of 1 MB)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    ap.add_argument("--no-dora", action="store_true", help="skip the dora-rs baseline")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        nargs="?",
        const=600.0,
        metavar="SECONDS",
        help=f"first wait (default up to 600 s) for a 1-minute load average <= {QUIET:g}",
    )
    args = ap.parse_args()
    if args.wait_quiet is not None and not wait_quiet(timeout=args.wait_quiet):
        print(f"the machine did not get quiet in {args.wait_quiet:g} s: running anyway", file=sys.stderr)
    counts = {label: n // 10 if args.quick else n for label, n in COUNTS.items()}
    res: dict[str, Any] = {"machine": machine(), "params": {"counts": counts}}
    res["noded"] = run_noded(counts)
    try:
        res["dora"] = "skipped (--no-dora)" if args.no_dora else run_dora(counts)
    except RuntimeError as e:
        res["dora"] = str(e)
    res["loadavg_after"] = loadavg()
    res["warning"] = warning(res["machine"]["loadavg"], res["loadavg_after"])
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
