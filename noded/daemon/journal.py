"""Read the tail of a unit's journal (for failure reports)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("noded.journal")


async def journal_tail(unit: str, lines: int = 10, timeout: float = 3.0) -> list[str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            "journalctl",
            "--no-pager",
            "--quiet",
            "-o",
            "cat",
            "-n",
            str(lines),
            "-u",
            unit,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        log.warning("cannot run journalctl: %s", exc)
        return []
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return []
    return out.decode(errors="replace").splitlines()[-lines:]
