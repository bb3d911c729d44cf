"""Device and CPU grants of one node: ``devices``, ``gpu`` and ``cpus``.

Pure but for looking at the host's /dev: the pipeline checks turn what a file writes
into device paths, an environment and a CPU set; the daemon's sandbox turns those into
``DeviceAllow=`` and ``BindPaths=`` (the node's /dev stays private: only granted nodes
appear in it), ``SupplementaryGroups=`` (a device's group, such as ``render``) and
``AllowedCPUs=``/``CPUAffinity=``.
"""

from __future__ import annotations

import grp
import os
import re
import stat
from pathlib import PurePosixPath

DEV = PurePosixPath("/dev")
GPU_VENDORS = ("nvidia",)
# What every CUDA process opens besides its GPUs; those present are granted.
NVIDIA_COMMON = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
_NVIDIA_GPU_RE = re.compile(r"nvidia(\d+)")
_GPU_RE = re.compile(r"(nvidia)(?::(\d+(?:,\d+)*))?")
_CPUS_RE = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
MAX_CPU = 8191


def check_device(text: str, dev: str = str(DEV)) -> str:
    """A ``devices`` entry: an existing character or block device below /dev."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise ValueError(f"{text!r} is not an absolute path of a device below /dev")
    path = PurePosixPath(os.path.normpath(text))
    if PurePosixPath(dev) not in path.parents:
        raise ValueError(f"{text!r} is not below /dev")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError(f"{text!r} does not exist on this host") from None
    except OSError as exc:
        raise ValueError(f"{text!r}: {exc.strerror}") from None
    if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        raise ValueError(f"{text!r} is not a device node")
    return str(path)


def device_groups(devices: list[str]) -> tuple[str, ...]:
    """The groups owning ``devices`` (other than root's), by name: a node joins them
    (SupplementaryGroups=) so that a 0660 root:render node opens."""
    groups: list[str] = []
    for path in devices:
        try:
            gid = os.stat(path).st_gid
            name = grp.getgrgid(gid).gr_name if gid else None
        except (OSError, KeyError):
            continue
        if name is not None and name not in groups:
            groups.append(name)
    return tuple(groups)


def expand_gpu(text: str, dev: str = str(DEV)) -> tuple[tuple[str, ...], dict[str, str]]:
    """``gpu = "nvidia"`` or ``"nvidia:0,1"``: the device nodes present on this host and
    the environment (``CUDA_VISIBLE_DEVICES``). ValueError when the GPUs are absent."""
    match = _GPU_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a GPU: write 'nvidia' (every GPU) or 'nvidia:0,1' (those GPUs)")
    try:
        present = sorted(int(m[1]) for name in os.listdir(dev) if (m := _NVIDIA_GPU_RE.fullmatch(name)) is not None)
    except OSError:
        present = []
    if not present or not os.path.exists(os.path.join(dev, "nvidiactl")):
        raise ValueError(f"no NVIDIA GPU on this host ({dev}/nvidiactl and {dev}/nvidia<N> are missing)")
    wanted = sorted({int(i) for i in match[2].split(",")}) if match[2] else present
    missing = [i for i in wanted if i not in present]
    if missing:
        have = ", ".join(map(str, present))
        raise ValueError(f"NVIDIA GPU {', '.join(map(str, missing))} is not on this host (it has {have})")
    names = [n for n in NVIDIA_COMMON if os.path.exists(os.path.join(dev, n))] + [f"nvidia{i}" for i in wanted]
    return tuple(os.path.join(dev, n) for n in names), {"CUDA_VISIBLE_DEVICES": ",".join(map(str, wanted))}


def parse_cpus(text: str, available: set[int] | None = None) -> tuple[int, ...]:
    """``cpus = "2-3"`` (AllowedCPUs= syntax: "0,2,4-7"): the CPUs, each one this host has."""
    if not isinstance(text, str) or _CPUS_RE.fullmatch(text.replace(" ", "")) is None:
        raise ValueError(f"{text!r} is not a CPU list: write '2', '2-3' or '0,2,4-7'")
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if low > high or high > MAX_CPU:
            raise ValueError(f"{part!r} is not a CPU range")
        cpus.update(range(low, high + 1))
    available = available if available is not None else os.sched_getaffinity(0)
    absent = sorted(cpus - available)
    if absent:
        have = format_cpus(tuple(sorted(available)))
        raise ValueError(f"CPU {format_cpus(tuple(absent))} is not available on this host (it has {have})")
    return tuple(sorted(cpus))


def format_cpus(cpus: tuple[int, ...]) -> str:
    """ "0-3,6": the AllowedCPUs= form of a CPU set."""
    parts: list[str] = []
    for cpu in cpus:
        if parts and "-" not in parts[-1].split(",")[-1] and int(parts[-1]) == cpu - 1:
            parts[-1] = f"{cpu - 1}-{cpu}"
        elif parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == cpu - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def cpu_mask(cpus: tuple[int, ...]) -> bytes:
    """The bit mask systemd's ``AllowedCPUs=``/``CPUAffinity=`` properties take (``ay``)."""
    mask = bytearray((max(cpus) // 8 + 1) if cpus else 0)
    for cpu in cpus:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)
