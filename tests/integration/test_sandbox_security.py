"""`systemd-analyze security` of real node units and of noded.service (benchmarks/sandbox_security.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sandbox_security.py"


def test_a_default_node_unit_scores_at_most_2_and_granting_the_network_costs_exposure() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    units = {r["name"]: r for r in report["units"]}
    default = units["node (default)"]
    assert default["exposure"] <= 2.0, default
    assert report["verdict"] == "ok"
    # The figure moves with the settings: the network is counted against a node granted it.
    network = units["node, network = true"]
    assert network["exposure"] > default["exposure"] and "PrivateNetwork=" in network["gaps"], network
    assert "PrivateNetwork=" not in default["gaps"]
    assert units["noded.service"]["exposure"] < 10


def test_what_nodes_load_works_in_a_node_sandbox() -> None:
    """MemoryDenyWriteExecute= and the system-call filter leave the node libraries working
    (those this venv has; the speech libraries once the speech nodes bring them)."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--python", sys.executable], capture_output=True, text=True, timeout=170
    )
    assert out.returncode == 0, out.stderr
    (results,) = json.loads(out.stdout)["libraries"].values()
    for check in ("numpy (BLAS)", "iceoryx2", "ctypes callback", "espeak-ng (subprocess)"):
        assert results[check] == "ok", (check, results[check])
    for check in ("onnxruntime (silero VAD)", "pocketsphinx"):
        assert results[check] == "ok" or results[check].startswith("missing:"), (check, results[check])
