"""Shell completion asks the running daemon for session and node ids."""

from __future__ import annotations

import os
import subprocess

from noded.contract.client import Client

from .conftest import NODECTL, Sessions, chain, wait_for


def complete(line: str) -> list[str]:
    """What click's bash completion protocol returns for the last word of ``line``."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    env = {
        **os.environ,
        "COMP_WORDS": " ".join(words),
        "COMP_CWORD": str(len(words) - 1),
        "_NODECTL_COMPLETE": "bash_complete",
    }
    # NODECTL runs `python -c ...`: click takes the program name from argv[0] otherwise.
    res = subprocess.run([*NODECTL], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res
    return [item.split(",", 1)[1] for item in res.stdout.split()]


def test_session_and_node_ids_complete_from_the_daemon(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(2))
    wait_for(client, info.sid, lambda i: i.state == "ready", 60)
    assert info.sid in complete("nodectl session show ")
    assert complete(f"nodectl session stop {info.sid[:5]}") == [info.sid]
    assert complete(f"nodectl logs {info.sid} ") == ["n0", "n1"]
    assert complete("nodectl --socket /run/noded/none.sock session show ") == []  # no daemon there: nothing
