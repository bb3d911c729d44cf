"""One-way latency of one hop between two noded node processes, against pickle over a pipe
and dora-rs 1.1; and the nodes' RSS over 10,000 messages.

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/hop_latency.py [--quick] [--json] [--no-dora]

Needs systemd as PID 1 and noded.service (benchmarks/README.md). The node units run the
venv's code (packaging/dev-env installs the checkout there, noded/nodes/testing/bench.py
included). noded: a session of two nodes made through the daemon, `src` (BenchSource) ->
`sink` (LatencySink); the benchmark drives `src` through an external input and reads the
sink's summaries on an external output (noded.dataplane.session). Latency = time.monotonic_ns()
in the sink right after it took msg.array, minus the header's timestamp_ns, which the
source takes (in-place) before ctx.loan, then writes the first and last payload bytes in
the loan and sends it, or (copy) before ctx.send(port, existing_array), which copies once.
Pipe: (t0, array) pickled through multiprocessing.Pipe to a spawned process; latency =
after conn.recv() minus t0 taken before conn.send(). dora: benchmarks/dora/ (two Python
nodes, `dora run`); latency = after to_numpy(zero_copy_only=True) minus t0 taken before
pa.array(existing) + send_output. Every hop: WARMUP messages discarded, then COUNT timed
ones, INTERVAL apart (the consumer sleeps between messages: the wake-up is measured).

The matrix (issue 15, items 1 and 6; ``--matrix-only`` runs just it): at every size and at
each pacing (back to back, 5 and 20 ms apart), the client -> node hop (the client loans,
stamps and sends to ``csink``, an EchoSink, and waits for its answer: the sink's one-way
latency and the client's round trip) and the node -> node hop (src -> sink as above),
against the bare binding's floors measured in the same run (benchmarks/raw_iceoryx2.py,
each message answered): in plain processes, and the same code in units with a node's
exact sandbox, whose difference is the sandbox's own cost; one-way and request/reply.
It prints each hop's p95 over both floors' p95 and its p50 over the plain floor's.
``--spin-us N`` gives both sinks' input edges ``spin_us = N`` and the table says what CPU
the sinks used over the matrix (compare a run with 0).

Exit status 1 when the in-place p95 misses 150 us at some size. dora runs from its own
venv, made when missing (needs PyPI):
    /usr/bin/python3 -m venv /opt/noded-bench/dora-venv
    /opt/noded-bench/dora-venv/bin/pip install dora-rs==1.1.0 dora-rs-cli==1.1.0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.append(str(Path(__file__).resolve().parent.parent))

from conditions import QUIET, loadavg, wait_quiet, warning
from raw_iceoryx2 import floors, run_raw

from noded.contract.client import Client, session_info
from noded.dataplane.session import attach

SIZES = {"1 KB": 1_000, "64 KB": 64_000, "1 MB": 1_000_000, "3.84 MB": 3_840_000, "10 MB": 10_000_000}
TARGET_P95_US = 150.0  # noded in-place, every size
RSS_MESSAGES = 10_000
GAPS = (0.0, 0.001, 0.005, 0.02)  # s between messages for the in-place 1 KB gap table (0: as fast as credits allow)
DORA_VENV = Path("/opt/noded-bench/dora-venv")
DORA_DIR = Path(__file__).resolve().parent / "dora"
BENCH = "noded.nodes.testing.bench"
PACINGS = {"back to back": 0.0, "5 ms apart": 0.005, "20 ms apart": 0.02}  # the matrix of both hops and floors
PIPELINE = f"""name = "hop_latency"
inputs = ["ctl", "data"]
outputs = ["sink.out", "csink.out"]
[dataplane]
depth = 4
max_payload = "10M"
[[nodes]]
id = "src"
class = "{BENCH}:BenchSource"
inputs = ["input.ctl"]
[[nodes]]
id = "sink"
class = "{BENCH}:LatencySink"
inputs = [{{ from = "src.out", spin_us = SPIN }}]
[[nodes]]
id = "csink"
class = "{BENCH}:EchoSink"
inputs = [{{ from = "input.data", spin_us = SPIN }}]
"""


def pct(xs: list[float], q: float) -> float:
    s, k = sorted(xs), (len(xs) - 1) * q
    return s[int(k)] + (s[min(int(k) + 1, len(s) - 1)] - s[int(k)]) * (k - int(k))


def stats_us(ns: list[int]) -> dict[str, float]:
    us = [x / 1e3 for x in ns]
    return {"p50": pct(us, 0.5), "p95": pct(us, 0.95), "p99": pct(us, 0.99), "max": max(us), "n": len(us)}


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = re.findall(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    return {
        "cpu": cpu[0] if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "iceoryx2": version("iceoryx2"),
        "loadavg": loadavg(),
    }


def cold_probe() -> dict[str, float]:
    """The machine's cold-start penalty: p50 us of a fixed bit of Python (build and pack a
    wire header) run back to back, and run once right after a 5 ms sleep."""
    from noded.contract.wire import Header, Kind, pack_header

    def work() -> None:
        pack_header(Header(Kind.TENSOR, np.dtype("u1"), (1000,), 1000, timestamp_ns=1))

    out = {}
    for name, pause in (("hot", 0.0), ("after 5 ms sleep", 0.005)):
        ts = []
        for _ in range(200):
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter_ns()
            work()
            ts.append((time.perf_counter_ns() - t0) / 1e3)
        out[name] = pct(ts, 0.5)
    return out


def rss_kb(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssShmem", "Threads")}


# -- noded ---------------------------------------------------------------------------------


def until(c: Client, sid: str, state: str) -> Any:
    for info in c.events():
        if info.sid == sid and info.state == state:
            return info
        if info.sid == sid and info.state in ("stopped", "failed"):
            raise RuntimeError(f"session {sid} ended ({info.state}): {info.failure}")
    raise RuntimeError("event stream ended")


def sinks_cpu(c: Client, sid: str) -> dict[str, float]:
    """CPU seconds of the two sinks' units so far (what `nodectl session show` reads)."""
    info = session_info(c.request("show", sid=sid))
    assert info.stats is not None
    return {n.id: n.cpu_seconds or 0.0 for n in info.stats.nodes if n.id in ("sink", "csink")}


def run_noded(
    count: int, warmup: int, interval: float, rss_messages: int, matrix_only: bool, spin_us: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"inplace": {}, "copy": {}, "send_us": {}, "view_us": {}, "gaps": {}, "matrix": {}}
    text = PIPELINE.replace("SPIN", str(spin_us))
    with Client(timeout=60) as c:
        sid = session_info(c.request("create", text=text, filename="hop_latency.toml", watch=True)).sid
        try:
            until(c, sid, "ready")
            pids = {n["id"]: n["main_pid"] for n in c.request("show", sid=sid)["nodes"]}
            with attach(sid) as io:
                tags = iter(range(1 << 30))

                def batch(mode: str, size: int, n: int, gap: float) -> dict[str, Any]:
                    tag = f"{mode}-{size}-{next(tags)}"
                    io.send("ctl", {"tag": tag, "mode": mode, "size": size, "count": n, "interval": gap})
                    msg = io.receive(timeout=60 + n * (gap + 0.01))
                    if msg is None:
                        raise RuntimeError(f"no summary from the sink for {tag}")
                    summary = msg.json
                    if summary["tag"] != tag or summary["count"] != n or summary["bad"]:
                        raise RuntimeError(f"batch {tag}: {summary['count']} of {n} came, {summary['bad']} bad")
                    return summary

                def client_batch(size: int, n: int, gap: float) -> tuple[dict[str, Any], list[int]]:
                    """The client -> node hop: the client loans, stamps and sends each message to
                    csink, then waits for its answer (the round trip) before the next."""
                    tag = f"client-{size}-{next(tags)}"
                    rtt = []
                    now = time.monotonic_ns
                    for i in range(n):
                        if gap:
                            time.sleep(gap)
                        t0 = now()
                        arr = io.loan("data", (size,), np.uint8, timestamp_ns=t0)
                        arr[0] = arr[-1] = i % 251
                        io.send("data", arr)
                        answer = io.receive(timeout=30)
                        t2 = now()
                        if answer is None or answer.source != "csink.out":
                            raise RuntimeError(f"batch {tag}: no answer to message {i}")
                        del answer
                        rtt.append(t2 - t0)
                    io.send("data", {"end": tag, "send_ns": []})
                    msg = io.receive(timeout=60)
                    if msg is None or msg.json.get("tag") != tag or msg.json["count"] != n or msg.json["bad"]:
                        raise RuntimeError(f"batch {tag}: no summary, or not {n} good messages")
                    return msg.json, rtt

                cpu0, t0 = sinks_cpu(c, sid), time.monotonic()
                for pacing, gap in PACINGS.items():  # both hops, every size, at each pacing
                    cells: dict[str, Any] = {"node->node": {}, "client->node": {}, "client rtt": {}}
                    for label, size in SIZES.items():
                        print(f"... noded {label}, {pacing}: node->node, client->node", file=sys.stderr, flush=True)
                        batch("inplace", size, warmup, gap)
                        cells["node->node"][label] = stats_us(batch("inplace", size, count, gap)["lat_ns"])
                        client_batch(size, warmup, gap)
                        summary, rtt = client_batch(size, count, gap)
                        cells["client->node"][label] = stats_us(summary["lat_ns"])
                        cells["client rtt"][label] = stats_us(rtt)
                    out["matrix"][pacing] = cells
                cpu1, seconds = sinks_cpu(c, sid), time.monotonic() - t0
                out["matrix_cpu"] = {"seconds": seconds, **{n: cpu1[n] - cpu0[n] for n in cpu1}}
                if matrix_only:
                    return out

                for label, size in SIZES.items():
                    for mode in ("inplace", "copy"):
                        print(f"... noded {mode} {label}", file=sys.stderr, flush=True)
                        batch(mode, size, warmup, interval)
                        s = batch(mode, size, count, interval)
                        out[mode][label] = stats_us(s["lat_ns"])
                        out["send_us"][f"{mode} {label}"] = stats_us(s["send_ns"])
                        out["view_us"][f"{mode} {label}"] = stats_us(s["view_ns"])
                for gap in GAPS:  # in-place 1 KB: how the time between messages changes it
                    print(f"... noded inplace 1 KB, {gap * 1e3:g} ms apart", file=sys.stderr, flush=True)
                    batch("inplace", 1_000, warmup, gap)
                    out["gaps"][f"{gap * 1e3:g} ms"] = stats_us(batch("inplace", 1_000, count, gap)["lat_ns"])
                print(f"... noded RSS over {rss_messages} messages", file=sys.stderr, flush=True)
                half = rss_messages // 2
                for mode in ("inplace", "copy"):  # warm-up: the same batches as measured
                    batch(mode, 1_000, half, 0.0)
                snaps = [{node: rss_kb(pid) for node, pid in pids.items()}]
                t0 = time.monotonic()
                for _ in range(2):  # two windows: the second shows whether growth goes on
                    for mode in ("inplace", "copy"):
                        batch(mode, 1_000, half, 0.0)
                    snaps.append({node: rss_kb(pid) for node, pid in pids.items()})
                rate = 4 * half / (time.monotonic() - t0)
                out["rss_kb"] = {
                    "before": snaps[0],
                    "after": snaps[1],
                    "after2": snaps[2],
                    "messages": 2 * half,
                    "msg_per_s": rate,
                }
        finally:
            c.request("stop", sid=sid, wait=True)
    return out


# -- pickle over multiprocessing.Pipe --------------------------------------------------------


def _pipe_receiver(conn: Any) -> None:
    lat: dict[int, list[int]] = {}
    conn.send("ready")
    while (obj := conn.recv()) is not None:
        t1 = time.monotonic_ns()
        t0, warm, arr = obj
        if not warm:
            lat.setdefault(arr.nbytes, []).append(t1 - t0)
    conn.send(lat)


def run_pipe(count: int, warmup: int, interval: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=_pipe_receiver, args=(theirs,), daemon=True)
    proc.start()
    try:
        if mine.recv() != "ready":  # the spawned process has imported what it needs
            raise RuntimeError("the pipe receiver did not start")
        for label, size in SIZES.items():
            print(f"... pipe+pickle {label}", file=sys.stderr, flush=True)
            arr = np.full(size, 7, np.uint8)
            for i in range(warmup + count):
                time.sleep(interval)
                t0 = time.monotonic_ns()
                mine.send((t0, i < warmup, arr))
        mine.send(None)
        lat = mine.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {label: stats_us(lat[size]) for label, size in SIZES.items()}


# -- dora-rs -----------------------------------------------------------------------------------


def ensure_dora() -> None:
    if (DORA_VENV / "bin" / "dora").exists():
        return
    print(f"... installing dora-rs 1.1.0 into {DORA_VENV}", file=sys.stderr, flush=True)
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(DORA_VENV)], check=True)
    subprocess.run(
        [str(DORA_VENV / "bin" / "pip"), "install", "-q", "dora-rs==1.1.0", "dora-rs-cli==1.1.0"], check=True
    )


def run_dora(count: int, warmup: int, interval: float) -> dict[str, Any]:
    """Raises RuntimeError saying why dora could not be measured."""
    try:
        ensure_dora()
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"cannot install dora-rs 1.1.0 into {DORA_VENV}: {e}") from e
    print("... dora-rs (all sizes, one `dora run`)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hop-dora-") as tmp:  # `dora run` writes out/ next to the YAML
        for f in DORA_DIR.iterdir():
            if f.is_file():
                shutil.copy(f, tmp)
        env = {
            **os.environ,
            "PATH": f"{DORA_VENV / 'bin'}:{os.environ.get('PATH', '')}",
            "HOP_SIZES": ",".join(map(str, SIZES.values())),
            "HOP_COUNT": str(count),
            "HOP_WARMUP": str(warmup),
            "HOP_INTERVAL": str(interval),
            "HOP_OUT": f"{tmp}/latency.json",
        }
        log = Path(tmp, "dora.log")
        shm_before = set(Path("/dev/shm").glob("*.zenoh"))
        timeout = 120 + len(SIZES) * (count + warmup) * (interval + 0.03)
        with log.open("w") as f:  # its own process group: a timeout ends dora and the nodes it started
            proc = subprocess.Popen(
                [str(DORA_VENV / "bin" / "dora"), "run", "dataflow.yml"],
                cwd=tmp,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc: int | str = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = "timeout"
        for stale in set(Path("/dev/shm").glob("*.zenoh")) - shm_before:  # zenoh (in dora) leaves one behind
            stale.unlink(missing_ok=True)
        if rc != 0 or not Path(env["HOP_OUT"]).exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"`dora run` failed ({rc}); last lines of its log:\n{tail}")
        lat = json.loads(Path(env["HOP_OUT"]).read_text())
        discarded = len(re.findall("Discarding event", log.read_text(errors="replace")))
    out: dict[str, Any] = {label: stats_us(lat[str(size)]) for label, size in SIZES.items() if str(size) in lat}
    out["lost"] = {label: count - out[label]["n"] if label in out else count for label in SIZES}
    out["discard_warnings"] = discarded
    return out


# -- report ----------------------------------------------------------------------------------


def table(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, body)])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if a / b < 10 else f"{a / b:.0f}x"


def report(res: dict[str, Any]) -> None:
    m, noded, pipe, dora, raw = res["machine"], res["noded"], res["pipe"], res["dora"], res["raw"]
    p = res["params"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"numpy {m['numpy']}, iceoryx2 {m['iceoryx2']}; loadavg before {' '.join(m['loadavg'])}, "
        f"after {' '.join(res['loadavg_after'])}"
    )
    warn = warning(m["loadavg"], res["loadavg_after"])
    if warn:
        print(warn)
    pb, pa = res["probe_before"], res["probe_after"]
    print(
        f"cold-start probe (p50 us of building and packing one wire header): hot {pb['hot']:.1f}, right after "
        f"a 5 ms sleep {pb['after 5 ms sleep']:.1f} (before the run); {pa['hot']:.1f} and "
        f"{pa['after 5 ms sleep']:.1f} after"
    )
    print(
        f"one hop, one-way latency in us; {p['count']} timed messages per cell after {p['warmup']} "
        f"warm-up, {p['interval'] * 1e3:g} ms apart\n"
    )
    f = lambda x: f"{x:.0f}" if x >= 100 else f"{x:.1f}"  # noqa: E731
    body = []
    for label in SIZES:
        ip, cp, pk = noded["inplace"][label], noded["copy"][label], pipe[label]
        d = dora.get(label) if isinstance(dora, dict) else None
        ok = ip["p95"] <= TARGET_P95_US
        body.append(
            [
                label,
                f(ip["p50"]),
                f(ip["p95"]),
                f(ip["p99"]),
                f(cp["p50"]),
                f(cp["p95"]),
                f(cp["p99"]),
                f(pk["p50"]),
                f(pk["p95"]),
                f(d["p50"]) if d else "-",
                f(d["p95"]) if d else "-",
                ratio(d["p95"], ip["p95"]) if d else "-",
                ratio(pk["p95"], ip["p95"]),
                "ok" if ok else f"MISS ({ip['p95'] / TARGET_P95_US:.1f}x)",
            ]
        )
    print(
        table(
            [
                "size",
                "in-place p50",
                "p95",
                "p99",
                "copy p50",
                "p95",
                "p99",
                "pickle p50",
                "p95",
                "dora p50",
                "p95",
                "dora/in-place p95",
                "pickle/in-place p95",
                f"in-place p95 <= {TARGET_P95_US:.0f} us",
            ],
            body,
        )
    )
    print("\nthe floor: the same hop with iceoryx2's binding and almost no code (benchmarks/raw_iceoryx2.py), us:")
    print(
        table(
            [
                "size",
                "raw p50",
                "p95",
                "p99",
                "in-place/raw p50",
                "in-place/raw p95",
                f"raw p95 <= {TARGET_P95_US:.0f} us",
            ],
            [
                [
                    label,
                    f(raw[label]["p50"]),
                    f(raw[label]["p95"]),
                    f(raw[label]["p99"]),
                    ratio(noded["inplace"][label]["p50"], raw[label]["p50"]),
                    ratio(noded["inplace"][label]["p95"], raw[label]["p95"]),
                    "yes" if raw[label]["p95"] <= TARGET_P95_US else "no",
                ]
                for label in SIZES
            ],
        )
    )
    print("\nnoded, inside the source (t0 to ctx.send returned) and the sink (taking msg.array), p50/p95 us:")
    both = lambda st: f"{f(st['p50'])}/{f(st['p95'])}"  # noqa: E731
    print(
        table(
            ["size", "in-place send", "copy send", "msg.array"],
            [
                [
                    label,
                    both(noded["send_us"][f"inplace {label}"]),
                    both(noded["send_us"][f"copy {label}"]),
                    both(noded["view_us"][f"inplace {label}"]),
                ]
                for label in SIZES
            ],
        )
    )
    print("\nnoded in-place 1 KB by time between messages (0: back to back, as fast as credits allow), us:")
    print(
        table(
            ["gap", "p50", "p95", "p99"], [[g, f(v["p50"]), f(v["p95"]), f(v["p99"])] for g, v in noded["gaps"].items()]
        )
    )
    rss = noded["rss_kb"]
    n_msg = rss["messages"]
    print(
        f"\nRSS of the node processes (kB) before, after {n_msg} and after {2 * n_msg} messages of 1 KB (each "
        f"{n_msg}: half in-place, half copied; {rss['msg_per_s']:.0f} msg/s, as fast as credits allow):"
    )
    keys = ("VmRSS", "RssAnon", "RssShmem")
    print(
        table(
            ["node", *[f"{k} {w}" for k in keys for w in ("before", f"+{n_msg}", f"+{2 * n_msg}")], "threads"],
            [
                [
                    n,
                    *[str(rss[s][n][k]) for k in keys for s in ("before", "after", "after2")],
                    str(rss["after"][n]["Threads"]),
                ]
                for n in rss["before"]
            ],
        )
    )
    if isinstance(dora, dict):
        lost = {k: v for k, v in dora["lost"].items() if v}
        print(
            f"\ndora: `dora run` of benchmarks/dora/dataflow.yml (shared_memory_pool_size 128MB); timed messages "
            f"lost: {lost or 'none'}; queue discards (warm-up) logged: {dora['discard_warnings']}"
        )
    else:
        print(f"\ndora: not measured: {dora}")
    print("\n" + "\n".join(f"- {n}" for n in res["notes"]))


def report_matrix(res: dict[str, Any], header: bool = True) -> None:
    """Both hops against both floors, at every size and pacing, with the ratios."""
    m, matrix, fl = res["machine"], res["noded"]["matrix"], res["floors"]
    if header:
        print(
            f"machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
            f"iceoryx2 {m['iceoryx2']}; loadavg before {' '.join(m['loadavg'])}, after {' '.join(res['loadavg_after'])}"
        )
        if res["warning"]:
            print(res["warning"])
    p = res["params"]
    print(
        f"the matrix: p50/p95 us, {p['count']} timed messages per cell after {p['warmup']} warm-up. floor: the bare "
        "binding in plain processes; sandboxed: the same code in units with a node's sandbox (its cost: sandboxed - "
        "floor); each floor message is answered, the req/reply columns are its round trip. client->node: the "
        "client waits for each answer (client rtt); node->node: the source paces itself (back to back: as fast as "
        "credits allow, depth 4). ratios: p95 over the floor's p95, and over the sandboxed floor's"
    )
    cpu = res["noded"]["matrix_cpu"]
    print(
        f"the sinks' input edges have spin_us = {p.get('spin_us', 0)}; their CPU over the matrix's "
        f"{cpu['seconds']:.1f} s: sink {cpu.get('sink', 0):.2f} s, csink {cpu.get('csink', 0):.2f} s"
    )
    both = lambda st: f"{st['p50']:.0f}/{st['p95']:.0f}"  # noqa: E731
    for pacing in matrix:
        plain, units, cells = fl[pacing]["plain"], fl[pacing]["units"], matrix[pacing]
        body = []
        for label in SIZES:
            raw, sbx = plain["one_way"][label], units["one_way"][label]
            cn, nn = cells["client->node"][label], cells["node->node"][label]
            body.append(
                [
                    label,
                    both(raw),
                    both(sbx),
                    f"{sbx['p50'] - raw['p50']:+.0f}/{sbx['p95'] - raw['p95']:+.0f}",
                    both(plain["rtt"][label]),
                    both(units["rtt"][label]),
                    both(cn),
                    f"{ratio(cn['p95'], raw['p95'])} {ratio(cn['p95'], sbx['p95'])}",
                    both(cells["client rtt"][label]),
                    both(nn),
                    f"{ratio(nn['p95'], raw['p95'])} {ratio(nn['p95'], sbx['p95'])}",
                    f"{cn['p50'] - raw['p50']:+.0f} {nn['p50'] - raw['p50']:+.0f}",
                ]
            )
        print(f"\n{pacing}:")
        print(
            table(
                [
                    "size", "floor", "sandboxed", "sandbox cost", "req/reply", "sandboxed", "client->node",
                    "/floors p95", "client rtt", "node->node", "/floors p95", "p50 over floor",
                ],
                body,
            )
        )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="40 timed messages per cell, 1,000 for RSS")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    ap.add_argument("--no-dora", action="store_true", help="skip the dora-rs baseline")
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between messages (default 0.005)")
    ap.add_argument(
        "--spin-us",
        type=int,
        default=0,
        help="spin_us of the two sinks' input edges (the consumers poll that long before they sleep)",
    )
    ap.add_argument(
        "--matrix-only",
        action="store_true",
        help="only the matrix: both hops and the floors at every size and pacing (no copy, pipe, dora, RSS)",
    )
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
    count, warmup = (40, 10) if args.quick else (200, 50)
    rss_messages = 1_000 if args.quick else RSS_MESSAGES
    res: dict[str, Any] = {
        "machine": machine(),
        "probe_before": cold_probe(),
        "notes": [],
        "params": {"count": count, "warmup": warmup, "interval": args.interval},
    }
    res["noded"] = run_noded(count, warmup, args.interval, rss_messages, args.matrix_only, args.spin_us)
    res["params"]["spin_us"] = args.spin_us
    res["floors"] = {
        pacing: {
            how: {kind: {label: stats_us(ns) for label, ns in got.items()} for kind, got in floor.items()}
            for how, floor in (
                ("plain", floors(SIZES, count, warmup, gap, units=False)),
                ("units", floors(SIZES, count, warmup, gap, units=True)),
            )
        }
        for pacing, gap in PACINGS.items()
    }
    if args.matrix_only:
        res["loadavg_after"] = loadavg()
        res["warning"] = warning(res["machine"]["loadavg"], res["loadavg_after"])
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            report_matrix(res)
        return 0
    res["pipe"] = run_pipe(count, warmup, args.interval)
    res["raw"] = {label: stats_us(ns) for label, ns in run_raw(SIZES, count, warmup, args.interval).items()}
    try:
        res["dora"] = "skipped (--no-dora)" if args.no_dora else run_dora(count, warmup, args.interval)
    except RuntimeError as e:
        res["dora"] = str(e)
    res["loadavg_after"] = loadavg()
    res["warning"] = warning(res["machine"]["loadavg"], res["loadavg_after"])
    res["probe_after"] = cold_probe()
    buf = np.empty(10_000_000, np.uint8)
    buf.fill(1)
    t0 = time.perf_counter()
    buf.fill(2)
    memset_ms = (time.perf_counter() - t0) * 1e3
    misses = [label for label in SIZES if res["noded"]["inplace"][label]["p95"] > TARGET_P95_US]
    rss = res["noded"]["rss_kb"]
    growth = {
        n: (rss["after"][n]["VmRSS"] - rss["before"][n]["VmRSS"], rss["after2"][n]["VmRSS"] - rss["after"][n]["VmRSS"])
        for n in rss["before"]
    }
    res["notes"] += [
        f"in-place p95 <= {TARGET_P95_US:.0f} us: "
        + (f"MISSED at {', '.join(misses)}" if misses else "met at every size"),
        f"VmRSS growth over the first and the second {rss['messages']} messages: "
        + ", ".join(f"{n} {g1:+d} kB, {g2:+d} kB" for n, (g1, g2) in growth.items()),
        f"for scale: filling 10 MB with numpy here takes {memset_ms:.2f} ms (the in-place rows write 2 bytes: "
        "producing the data is the producer's work with any transport)",
    ]
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)
        print()
        report_matrix(res, header=False)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
