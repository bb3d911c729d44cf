"""How exposed noded's units are (`systemd-analyze security`), and what works in a node's sandbox.

    tests/sandbox run -- $NODED_VENV/bin/python benchmarks/sandbox_security.py \
        [--python /opt/noded/venv/bin/python ...] [--json]

Needs systemd as PID 1 and noded.service (tests/sandbox). Scores real units: the node
units of sessions noded starts (a default node, one granted the network, one with
read-only model paths) and noded.service itself; the target for a default node unit is
an exposure of at most 2.0 (0 is best, 10 worst). Then, for each --python, it runs
benchmarks/sandbox_libraries.py in a unit with exactly a node's properties
(noded.daemon.units.service_properties) and reports which libraries work there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from noded.contract.client import Client, session_info
from noded.daemon.config import Config
from noded.daemon.resources import prepare_session, remove_session
from noded.daemon.systemd import Systemd, UnitGone
from noded.daemon.units import service_name, service_properties

TARGET = 2.0
TIMEOUT = 120.0
NODE = '[[nodes]]\nid = "n"\nclass = "passthrough"\n'
PIPELINES = {
    "node (default)": NODE,
    "node, network = true": NODE + "network = true\n",
    "node, read_only_paths": NODE + 'read_only_paths = ["/usr/share"]\n',
    "node, devices": NODE + 'devices = ["/dev/zero"]\n',  # as a GPU's nodes are granted
    "node, cpus": NODE + 'cpus = "0"\n',
}
LIBRARY_CHECK = Path(__file__).resolve().parent / "sandbox_libraries.py"


def exposure(unit: str) -> dict[str, Any]:
    """systemd-analyze's overall exposure of a loaded unit, and the settings it counts against it."""
    out = subprocess.run(
        ["systemd-analyze", "security", "--no-pager", unit], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", out)
    if match is None:
        raise RuntimeError(f"no exposure level in systemd-analyze's output for {unit}:\n{out}")
    gaps = [line.split()[1] for line in out.splitlines() if line.startswith("✗")]
    return {"unit": unit, "exposure": float(match[1]), "rating": match[2], "gaps": gaps}


def session_exposure(c: Client, toml: str) -> dict[str, Any]:
    info = session_info(c.request("create", text=toml, filename="security.toml", watch=True))
    try:
        deadline = time.monotonic() + TIMEOUT
        c.settimeout(TIMEOUT)
        for event in c.events():
            if event.sid == info.sid and event.state in ("ready", "failed", "stopped"):
                if event.state != "ready":
                    raise RuntimeError(f"session {info.sid} {event.state}: {event.failure}")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"session {info.sid} not ready within {TIMEOUT:.0f} s")
        return exposure(info.nodes[0].unit)
    finally:
        c.request("stop", sid=info.sid, wait=True)


def libraries(python: str) -> dict[str, str]:
    """sandbox_libraries.py's results in a unit with a node's properties, run by ``python``."""
    config, sid = Config(), "s" + secrets.token_hex(4)
    unit = service_name(sid, "libraries")
    root = prepare_session(config.iox2_root, sid)
    script = root / "check.py"  # readable by the unit's dynamic user, wherever the checkout is
    shutil.copyfile(LIBRARY_CHECK, script)
    script.chmod(0o644)
    result = root / "result.json"
    props = service_properties(
        sid=sid,
        node_id="libraries",
        node_class="check",
        argv=[python, str(script), str(result)],
        config=config,
        iox2_root=root,
    )
    overrides = {"Type": ("s", "exec"), "CollectMode": ("s", "inactive-or-failed")}
    props = [(n, *overrides[n]) if n in overrides else (n, s, v) for n, s, v in props if n != "Slice"]
    loop = asyncio.new_event_loop()
    gone = asyncio.Event()

    def on_event(event: object) -> None:
        if isinstance(event, UnitGone) and event.unit == unit:
            gone.set()

    sd = Systemd(on_event)
    sd.open(loop)
    try:
        sd.start_transient(unit, props)
        loop.run_until_complete(asyncio.wait_for(gone.wait(), TIMEOUT))
        if not result.exists():
            return {"(unit)": f"FAIL: no result; see journalctl -u {unit}"}
        return json.loads(result.read_text())
    finally:
        sd.close()
        loop.close()
        remove_session(config.iox2_root, sid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", default=[], help="check the libraries of this interpreter")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with Client(timeout=TIMEOUT) as c:
        for name, toml in PIPELINES.items():
            rows.append({"name": name, **session_exposure(c, toml)})
    rows.append({"name": "noded.service", **exposure("noded.service")})
    checks = {python: libraries(python) for python in args.python}
    default = rows[0]["exposure"]
    verdict = "ok" if default <= TARGET else f"MISS ({default} > {TARGET})"
    if args.json:
        print(json.dumps({"target": TARGET, "verdict": verdict, "units": rows, "libraries": checks}, indent=1))
        return
    print(f"systemd-analyze security (exposure 0-10, lower is safer; target for a node: <= {TARGET}: {verdict})")
    print("| unit | exposure | rating | counted against it |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['exposure']:.1f} | {r['rating']} | {', '.join(r['gaps'])} |")
    for python, results in checks.items():
        print(f"\nlibraries in a node's sandbox, {python}:")
        for check, outcome in results.items():
            print(f"  {check}: {outcome}")


if __name__ == "__main__":
    main()
