"""What a node's sandbox costs at start-up: worker CPU per node, with parts of it left out.

    tests/sandbox run -- $NODED_VENV/bin/python benchmarks/sandbox_cost.py [--runs 5]

Starts 5 worker units the way benchmarks/startup.py's "raw units" do (no daemon), once per
variant and run, with some of noded.daemon.sandbox's properties dropped, and reports the CPU
time the workers' cgroups used per node (median and all runs). CPU time, not wall time:
on a shared machine it moves less with the load of others.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from pathlib import Path

_spec = importlib.util.spec_from_file_location("startup", Path(__file__).resolve().parent / "startup.py")
assert _spec is not None and _spec.loader is not None
startup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(startup)

ALL = set(startup.SANDBOX_PROPS)
VARIANTS = {
    "full sandbox": set(),
    "no sandbox (root, no namespaces)": ALL,
    "without the mount protections": {
        "ProtectSystem",
        "ProtectHome",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "PrivateTmp",
    },
    "without PrivateNetwork/IPAddressDeny": {"PrivateNetwork", "IPAddressDeny"},
    "without PrivateUsers": {"PrivateUsers"},
    "without PrivateDevices": {"PrivateDevices", "DevicePolicy"},
    "without the system-call filter": {"SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures"},
    "without MemoryDenyWriteExecute": {"MemoryDenyWriteExecute"},
}
NODES = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.runs):  # variants interleaved: a change in the host's load hits them all
        for name, dropped in VARIANTS.items():
            startup.SANDBOX_PROPS = dropped  # what the "no sandboxing" variant leaves out
            window = startup.Window()
            startup.raw_units(NODES, window, "no sandboxing")
            cpu[name].append(window.cpu["workers"] * 1000 / NODES)
    base = statistics.median(cpu["full sandbox"])
    print(f"| variant ({NODES} nodes, {args.runs} runs) | worker CPU ms per node, median | vs full | runs |")
    print("|---|---|---|---|")
    for name, xs in cpu.items():
        med = statistics.median(xs)
        print(f"| {name} | {med:.0f} | {med - base:+.0f} | {', '.join(f'{x:.0f}' for x in sorted(xs))} |")


if __name__ == "__main__":
    main()
