"""Out-of-memory kills under cgroup v1, learned from the kernel's own notification.

On the unified hierarchy systemd reports an OOM kill itself (``Result=oom-kill``).
With the v1 memory controller (hybrid mode, as on these machines) it cannot, and a
node over its ``MemoryMax=`` just looks ``killed by SIGKILL``. The v1 controller
offers an event instead: an eventfd registered through ``cgroup.event_control`` on
``memory.oom_control`` fires when the cgroup hits OOM. This module is that edge:
it watches a node's memory cgroup from the moment it starts and remembers which
units the kernel OOM-killed. No polling: the eventfd sits on the asyncio loop.

The eventfd is only the fast path. It races the unit's exit: on a busy machine the
cgroup may be gone (and its files unreadable) before the daemon's loop reads the
event. The decision is made from the kernel's own counter instead, read while the
cgroup still exists: the unit's ``ExecStopPost=`` runs ``grep`` on the cgroup's
``memory.oom_control`` (v1) or ``memory.events`` (v2) ``oom_kill`` line, after the
main process has died and before systemd removes the cgroup; its exit status is
in the unit's ``ExecStopPost`` property when the daemon hears that the unit failed
(``oom_check_argv``, ``oom_killed_from_exec``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("noded.oom")

V1_MEMORY = Path("/sys/fs/cgroup/memory")
UNIFIED = Path("/sys/fs/cgroup/unified")
GREP_CANDIDATES = ("/usr/bin/grep", "/bin/grep")


def counter_file(cgroup: str, v1_root: Path = V1_MEMORY, unified: Path = UNIFIED) -> Path | None:
    """The file with the cgroup's ``oom_kill`` counter: v1 ``memory.oom_control``, else
    v2 ``memory.events`` (unified at /sys/fs/cgroup, or at .../unified in hybrid mode
    when it holds the memory controller); None if neither hierarchy has the controller."""
    rel = cgroup.lstrip("/")
    if (v1_root / "memory.oom_control").exists():
        return v1_root / rel / "memory.oom_control"
    for base in (Path("/sys/fs/cgroup"), unified):
        controllers = base / "cgroup.controllers"
        try:
            if "memory" in controllers.read_text().split():
                return base / rel / "memory.events"
        except OSError:
            continue
    return None


def oom_check_argv(cgroup: str, v1_root: Path = V1_MEMORY, unified: Path = UNIFIED) -> list[str] | None:
    """The command a node's unit runs as ExecStopPost=: exit 0 if the kernel OOM-killed
    something in its cgroup, 1 if not (2: could not read the counter)."""
    path = counter_file(cgroup, v1_root, unified)
    grep = next((g for g in GREP_CANDIDATES if Path(g).exists()), None)
    if path is None or grep is None:
        return None
    return [grep, "-q", "^oom_kill [1-9]", str(path)]


def oom_killed_from_exec(entries: object) -> bool | None:
    """Read the unit's ``ExecStopPost`` property (``a(sasbttttuii)``: path, argv, ignore,
    start and exit times, pid, code, status) for the outcome of oom_check_argv's grep:
    True (OOM-killed), False (not), None (no answer: not run, or killed itself)."""
    if not isinstance(entries, (list, tuple)):
        return None
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) < 10:
            continue
        argv = entry[1]
        if not argv or "^oom_kill [1-9]" not in list(argv):
            continue
        code, status = entry[8], entry[9]
        if code != os.CLD_EXITED:
            return None
        return {0: True, 1: False}.get(int(status))
    return None


@dataclass
class _Watch:
    eventfd: int
    control_fd: int


class OomWatcher:
    def __init__(self, root: Path = V1_MEMORY) -> None:
        self.root = root
        self.available = (root / "memory.oom_control").exists() and (root / "cgroup.event_control").exists()
        self._watches: dict[str, _Watch] = {}
        self._killed: set[str] = set()
        self._created: dict[str, Path] = {}  # cgroups made by watch(create=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, unit: str, cgroup: str, create: bool = False) -> None:
        """Watch the unit's memory cgroup. With ``create``, make the cgroup first (call it
        before the unit starts: systemd adopts an existing cgroup), so that a node killed
        within milliseconds of its start, before the daemon has heard that it started,
        is still seen (a memory_max too small to even import Python's modules)."""
        if not self.available or unit in self._watches:
            return
        self._loop = asyncio.get_running_loop()
        cg = self.root / cgroup.lstrip("/")
        if create:
            try:
                cg.mkdir(parents=True, exist_ok=True)
                self._created[unit] = cg
            except OSError as exc:
                log.warning("cannot make %s's memory cgroup before it starts: %s", unit, exc)
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            cfd = os.open(cg / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(efd)
            log.warning("cannot watch %s for OOM kills: %s", unit, exc)
            return
        try:
            (cg / "cgroup.event_control").write_text(f"{efd} {cfd}")
        except OSError as exc:
            os.close(efd)
            os.close(cfd)
            log.warning("cannot watch %s for OOM kills: %s", unit, exc)
            return
        self._watches[unit] = _Watch(efd, cfd)
        self._loop.add_reader(efd, self._fired, unit)

    def _fired(self, unit: str) -> None:
        w = self._watches.get(unit)
        if w is None:
            return
        try:
            os.eventfd_read(w.eventfd)
        except BlockingIOError:
            return
        # The kernel signals the eventfd on OOM (before it picks a victim, so the
        # oom_kill counter may still read 0) and when the cgroup is removed. A
        # removed cgroup's files are deactivated before that signal, so if the
        # file still reads, the event was an OOM.
        try:
            os.pread(w.control_fd, 4096, 0)
        except OSError:
            self.unwatch(unit)
            return
        if unit not in self._killed:
            log.warning("%s: its memory cgroup ran out of memory", unit)
        self._killed.add(unit)

    def was_oom_killed(self, unit: str) -> bool:
        """Whether the unit hit OOM; consumes a pending notification first."""
        self._fired(unit)
        return unit in self._killed

    def unwatch(self, unit: str) -> None:
        w = self._watches.pop(unit, None)
        if w is not None:
            if self._loop is not None:
                self._loop.remove_reader(w.eventfd)
            os.close(w.eventfd)
            os.close(w.control_fd)

    def forget(self, unit: str) -> None:
        """Stop watching; remove the cgroup if watch() made it and systemd has not (the
        unit never started, say). Call it once the unit's processes are gone."""
        self.unwatch(unit)
        self._killed.discard(unit)
        cg = self._created.pop(unit, None)
        if cg is not None:
            try:
                cg.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s's memory cgroup %s: %s", unit, cg, exc)
            try:  # the session's slice, once its last unit is gone (else: not empty, fine)
                cg.parent.rmdir()
            except OSError:
                pass

    def remove_leftovers(self, parent: str) -> list[str]:
        """Remove the empty memory cgroups under ``parent`` (e.g. "noded.slice") that an
        earlier daemon made for units that never started; call once no session runs."""
        base = self.root / parent.lstrip("/")
        if not self.available or not base.is_dir():
            return []
        removed = []
        for cg in sorted(base.glob("*/**/"), key=lambda p: len(p.parts), reverse=True):
            if cg == base:
                continue
            try:
                cg.rmdir()
                removed.append(str(cg))
            except OSError:
                pass
        return removed
