"""Start-up and failure-detection latency of noded sessions, against the systemd+worker floor.

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/startup.py [--runs 20] [--json]

Needs systemd as PID 1 and noded.service. "raw units" start the same slice and worker units
over D-Bus without the daemon: the systemd+worker floor. Also measured: each party's CPU time
(cgroup v2 cpu.stat) and systemd's timestamps of the units. It measures the venv's code, which
the units run (packaging/dev-env, then `tests/sandbox up`); the checkout is only a fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from noded.contract.client import Client, session_info
from noded.contract.registry import BUILTINS
from noded.contract.spec import WorkerSpec, encode_spec
from noded.daemon.config import Config
from noded.daemon.resources import prepare_session, remove_session
from noded.daemon.sandbox import sandbox_properties
from noded.daemon.systemd import JobDone, Systemd, UnitGone
from noded.daemon.units import service_name, service_properties, slice_name, slice_properties, worker_argv
from noded.pipeline.checks import parse_pipeline
from noded.pipeline.grants import NodeGrants
from noded.pipeline.topology import plan

TIMEOUT = 60.0
TARGETS = {"noded ready, 5 nodes": ("p50", 0.5), "kill -> first failure event": ("p95", 0.1)}
# Everything noded.daemon.sandbox adds (identity included), whatever a node is granted.
SANDBOX_PROPS = {
    name
    for net in (False, True)
    for name, _, _ in sandbox_properties("x", PurePosixPath("/run/x"), NodeGrants(network=net, read_only_paths=("/x",)))
}
BARE_PY = (
    "import os,socket,signal;a=os.environ['NOTIFY_SOCKET'];s=socket.socket(socket.AF_UNIX,"
    "socket.SOCK_DGRAM);s.connect('\\0'+a[1:] if a[0]=='@' else a);s.send(b'READY=1');signal.pause()"
)
CG = Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified/init.scope").exists() else Path("/sys/fs/cgroup")
CPU_CGROUPS = {
    "workers": "noded.slice",
    "noded": "system.slice/noded.service",
    "systemd": "init.scope",
    "dbus": "system.slice/dbus.service",
    "journald": "system.slice/systemd-journald.service",
}
STEPS = ["create reply", "first fork", "last fork", "fork->READY", "last READY"]


def cpu_now() -> dict[str, float]:
    out = {
        name: int((CG / path / "cpu.stat").read_text().split()[1]) / 1e6 if (CG / path).exists() else 0.0
        for name, path in CPU_CGROUPS.items()
    }
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    out["bench"], out["host"] = ru.ru_utime + ru.ru_stime, (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return out


class Window:
    def start(self) -> None:
        self.cpu0, self.t0 = cpu_now(), time.monotonic()  # CLOCK_MONOTONIC, as systemd's timestamps

    def stop(self) -> None:
        self.wall = time.monotonic() - self.t0
        self.cpu = {k: v - self.cpu0[k] for k, v in cpu_now().items()}


def pct(xs: list[float], q: float) -> float:
    s, k = sorted(xs), (len(xs) - 1) * q
    return s[int(k)] + (s[min(int(k) + 1, len(s) - 1)] - s[int(k)]) * (k - int(k))


def timeline(units: list[str], t0: float) -> dict[str, float]:
    """When systemd forked the units' main processes and got their READY=1, from t0."""
    out = subprocess.run(
        ["systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic", *units],
        capture_output=True,
        text=True,
    ).stdout
    ts = [dict(kv.split("=", 1) for kv in block.split("\n") if "=" in kv) for block in out.strip().split("\n\n")]
    fork = [int(t["ExecMainStartTimestampMonotonic"]) / 1e6 - t0 for t in ts]
    ready = [int(t["ActiveEnterTimestampMonotonic"]) / 1e6 - t0 for t in ts]
    return {
        "first fork": min(fork),
        "last fork": max(fork),
        "last READY": max(ready),
        "fork->READY": pct([r - f for f, r in zip(fork, ready)], 0.5),
    }


def chain(n: int) -> str:
    inputs = ["[]"] + [f'["n{i}.out"]' for i in range(n - 1)]
    return f'name = "bench{n}"\n' + "".join(
        f'\n[[nodes]]\nid = "n{i}"\nclass = "passthrough"\ninputs = {inputs[i]}\n' for i in range(n)
    )


def until(c: Client, sid: str, pred):  # type: ignore[no-untyped-def]
    for info in c.events():
        if info.sid == sid and pred(info):
            return info
        if info.sid == sid and info.state in ("stopped", "failed"):
            raise RuntimeError(f"session {sid} ended ({info.state}): {info.failure}")
    raise RuntimeError("event stream ended")


def noded_ready(c: Client, n: int, w: Window) -> dict[str, float]:
    w.start()
    sid = session_info(c.request("create", text=chain(n), filename=f"bench{n}.toml", watch=True)).sid
    reply = time.monotonic() - w.t0
    info = until(c, sid, lambda i: i.state == "ready")
    w.stop()
    times = timeline([node.unit for node in info.nodes], w.t0)
    c.request("stop", sid=sid, wait=True)
    return {"create reply": reply, **times}


def noded_kill(c: Client, w: Window) -> dict[str, float]:
    sid = session_info(c.request("create", text=chain(2), filename="bench2.toml", watch=True)).sid
    pid = until(c, sid, lambda i: i.state == "ready").nodes[0].main_pid
    assert pid, f"session {sid}: no main_pid at ready"
    w.start()
    os.kill(pid, signal.SIGKILL)
    until(c, sid, lambda i: i.failure is not None)
    w.stop()
    until(c, sid, lambda i: i.state == "failed")  # sent once all the session's units are gone
    return {"failed": time.monotonic() - w.t0}


def raw_props(config: Config, sid: str, i: int, n: int, variant: str):  # type: ignore[no-untyped-def]
    # The same data plane noded would give the node: its channels are part of start-up.
    topology = plan(parse_pipeline(chain(n), "raw.toml"), sid, root_base=str(config.iox2_root))
    spec = encode_spec(
        WorkerSpec(session=sid, node=f"n{i}", cls=BUILTINS["passthrough"], dataplane=topology.nodes[f"n{i}"])
    )
    argv = [sys.executable, "-c", BARE_PY] if variant == "bare python" else worker_argv(config, spec)
    props = service_properties(
        sid=sid,
        node_id=f"n{i}",
        node_class="passthrough",
        argv=argv,
        config=config,
        iox2_root=prepare_session(config.iox2_root, sid),
    )
    return [p for p in props if p[0] not in SANDBOX_PROPS] if variant == "no sandboxing" else props


def raw_units(n: int, w: Window, variant: str = "") -> dict[str, float]:
    """A slice and n worker units started as noded does, without it; a bus connection of its own each time."""
    config, sid, loop = Config(), "b" + secrets.token_hex(4), asyncio.new_event_loop()
    units, jobs, gone, changed = [service_name(sid, f"n{i}") for i in range(n)], {}, set(), asyncio.Event()

    def on_event(ev: object) -> None:
        if isinstance(ev, JobDone):
            jobs[ev.job] = ev.result
        elif isinstance(ev, UnitGone):
            gone.add(ev.unit)
        changed.set()

    async def until(pred) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(TIMEOUT):
            while not pred():
                changed.clear()
                await changed.wait()

    async def run() -> dict[str, float]:
        props = [raw_props(config, sid, i, n, variant) for i in range(n)]
        w.start()
        sd.start_transient(slice_name(sid), slice_properties(sid, f"bench{n}"))
        started = [sd.start_transient(unit, p) for unit, p in zip(units, props)]
        await until(lambda: all(j in jobs for j in started))
        w.stop()
        times, bad = timeline(units, w.t0), {u: jobs[j] for u, j in zip(units, started) if jobs[j] != "done"}
        for unit in bad:
            sd.reset_failed(unit)
        sd.stop(slice_name(sid))  # stops the units in it first
        await until(lambda: gone.issuperset([*units, slice_name(sid)]))
        remove_session(config.iox2_root, sid)
        if bad:
            raise RuntimeError(f"start jobs did not complete: {bad}")
        return times

    sd = Systemd(on_event)
    sd.open(loop)
    try:
        return loop.run_until_complete(run())
    finally:
        sd.close()
        loop.close()


def python_costs(runs: int) -> tuple[float, float, list[tuple[str, float]]]:
    """p50 of `python -c pass`; import time of the worker and its node module (python -X importtime)
    and the biggest of those imports. cwd=/ as in the units, so that the venv's code is imported."""
    walls = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], cwd="/", check=True)
        walls.append(time.monotonic() - t0)
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import noded.worker.main, noded.nodes.testing.basic"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stderr
    found = re.findall(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$", err, re.M)
    big = sorted(((name, int(cum) / 1e6) for _, cum, ind, name in found if len(ind) <= 4), key=lambda x: -x[1])
    return pct(walls, 0.5), sum(int(own) for own, *_ in found) / 1e6, big[:8]  # big: top and two levels below


def row(name: str, xs: list[float]) -> dict[str, Any]:
    r: dict[str, Any] = {
        "name": name,
        "p50": pct(xs, 0.5),
        "p95": pct(xs, 0.95),
        "min": min(xs),
        "max": max(xs),
        "runs": len(xs),
        "target": "",
        "verdict": "",
    }
    if name in TARGETS:
        stat, limit = TARGETS[name]
        got, r["target"] = r[stat], f"{stat} <= {limit * 1e3:.0f} ms"
        r["verdict"] = "ok" if got <= limit else f"MISS by {(got - limit) * 1e3:.0f} ms ({got / limit:.1f}x)"
    return r


def table(head: list[str], body: list[list[str]], left: tuple[int, ...] = (0,)) -> str:
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, body)])


def leftover_units() -> list[str]:
    return [
        line.split()[0]
        for line in subprocess.run(
            ["systemctl", "list-units", "--all", "--plain", "--no-legend", "noded-*"], capture_output=True, text=True
        ).stdout.splitlines()
        if line.strip()
    ]


def report(samples, extra, cpu, python, as_json: bool) -> list[str]:  # type: ignore[no-untyped-def]
    rows, cores, ms = [row(k, v) for k, v in samples.items()], os.cpu_count() or 1, lambda s: f"{s * 1e3:.0f} ms"
    p50, parties, left = {k: pct(v, 0.5) for k, v in samples.items()}, [*CPU_CGROUPS, "bench"], leftover_units()
    cpu_ms = {
        k: {**{p: c[p] * 1e3 for p in parties}, "others": (c["host"] - sum(c[p] for p in parties)) * 1e3}
        for k, c in cpu.items()
        if k.startswith(("noded", "raw", "kill"))
    }
    spans = {k: {s: pct(ex[s], 0.5) for s in STEPS if s in ex} for k, ex in extra.items() if "last READY" in ex}
    (bare, imports, big), notes = python, []
    for n in ("1 node", "5 nodes", "10 nodes"):
        noded, raw = p50[f"noded ready, {n}"], p50[f"raw units ready, {n}"]
        notes.append(f"{n}: noded p50 {ms(noded)} = raw units {ms(raw)} + daemon {ms(noded - raw)}")
    n5 = "noded ready, 5 nodes"
    t5, t1, workers = spans[n5], spans["noded ready, 1 node"], cpu_ms[n5]["workers"]
    notes += [
        f"5 nodes: systemd forks the first worker {ms(t5['first fork'])} after the request, the last at "
        f"{ms(t5['last fork'])}; a worker takes {ms(t5['fork->READY'])} from fork to READY=1 "
        f"({ms(t1['fork->READY'])} alone); the client has `ready` {ms(p50[n5] - t5['last READY'])} later",
        f"5 nodes: the workers use {workers:.0f} ms CPU ({workers / 5:.0f} ms each, "
        f"{workers / 1e3 / (p50[n5] * cores):.0%} of {cores} cores over the p50); python -c pass: {ms(bare)}",
        f"the worker's imports take {ms(imports)} (python -X importtime), biggest (cumulative ms): "
        + ", ".join(f"{m} {t * 1e3:.1f}" for m, t in big),
    ]
    notes += [f"target missed: {r['name']} {r['target']}: {r['verdict']}" for r in rows if r["verdict"][:4] == "MISS"]
    notes += [
        f"{k}: the rest of the host used {c['others'] / 1e3 / (p50[k] * cores):.0%} of the CPU meanwhile"
        for k, c in cpu_ms.items()
        if c["others"] / 1e3 / (p50[k] * cores) > 0.1
    ]
    notes.append(f"noded-* units left at the end: {left or 'none'}")
    machine = {
        "cpu": re.findall(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())[0],
        "cores": cores,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "systemd": subprocess.check_output(["systemctl", "--version"], text=True).split("\n")[0],
        "code": str(Path(sys.modules["noded"].__file__ or "").parent.parent),
    }
    if as_json:
        print(
            json.dumps(
                {
                    "machine": machine,
                    "rows": rows,
                    "cpu_ms_per_run": cpu_ms,
                    "timeline_s_p50": spans,
                    "notes": notes,
                    "samples": samples,
                },
                indent=2,
            )
        )
        return left
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(
        table(
            ["measurement", "p50 ms", "p95 ms", "min ms", "max ms", "runs", "target", "verdict"],
            [
                [
                    r["name"],
                    *[f"{r[c] * 1e3:.1f}" for c in ("p50", "p95", "min", "max")],
                    str(r["runs"]),
                    str(r["target"]),
                    str(r["verdict"]),
                ]
                for r in rows
            ],
            left=(0, 6, 7),
        )
    )
    print(
        f"\nWhere it goes. CPU: ms per run in the timed window (mean; others = the rest of the host, from "
        f"/proc/stat); busy = all / (p50 x {cores} cores).\nTimeline: p50 ms after the request, from systemd's "
        "timestamps of the units (fork->READY: of one unit)."
    )
    print(
        table(
            ["measurement", *parties, "others", "busy", *STEPS],
            [
                [
                    k,
                    *[f"{v:.0f}" for v in c.values()],
                    f"{sum(c.values()) / 1e3 / (p50[k] * cores):.0%}",
                    *[f"{spans[k][s] * 1e3:.0f}" if s in spans.get(k, {}) else "" for s in STEPS],
                ]
                for k, c in cpu_ms.items()
            ],
        )
    )
    print("\n".join(f"- {n}" for n in notes))
    return left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="timed runs per measurement (default 20)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    args = ap.parse_args()
    if leftover_units():
        sys.exit(f"noded-* units exist before the benchmark: {leftover_units()}")
    samples: dict[str, list[float]] = defaultdict(list)
    extra: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))  # more timings, by row
    cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # mean CPU s per run, by party

    def measure(group: dict) -> None:  # type: ignore[type-arg]
        """Run the rows of a group in turn, so that they share the machine's ups and downs."""
        print(f"... {', '.join(group)}", file=sys.stderr, flush=True)
        for fn in group.values():
            fn(Window())  # warm-up, not counted: page cache, D-Bus matches, first sessions
        for _ in range(args.runs):
            for name, fn in group.items():
                w = Window()
                for k, v in fn(w).items():
                    extra[name][k].append(v)
                samples[name].append(w.wall)
                for k, v in w.cpu.items():
                    cpu[name][k] += v / args.runs
                time.sleep(0.1)  # let the previous run's teardown settle

    with Client(timeout=TIMEOUT) as c:
        for n in (1, 5, 10):
            nodes = f"{n} node{'s' * (n > 1)}"
            group = {
                f"noded ready, {nodes}": lambda w, n=n: noded_ready(c, n, w),
                f"raw units ready, {nodes}": lambda w, n=n: raw_units(n, w),
            }
            if n == 5:
                group |= {
                    f"raw units ready, 5, {v}": lambda w, v=v: raw_units(5, w, v)
                    for v in ("no sandboxing", "bare python")
                }
            measure(group)
        measure({"kill -> first failure event": lambda w: noded_kill(c, w)})
    samples["kill -> `failed` event"] = extra["kill -> first failure event"]["failed"]
    return 1 if report(samples, extra, cpu, python_costs(args.runs), args.json) else 0


if __name__ == "__main__":
    sys.exit(main())
