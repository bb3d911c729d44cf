"""The daemon's configuration: /etc/noded/noded.toml, then the drop-ins
/etc/noded/noded.toml.d/*.toml in lexical order, overridden by NODED_* variables.

A drop-in sets only the keys it names: a later file wins key by key, inside a section
too (``[node_limits] memory_max`` in a drop-in keeps the main file's ``cpu_quota``), as
systemd's own ``*.conf.d`` drop-ins do. ``reloadable`` says which settings a running
daemon applies on ``systemctl reload noded`` (SIGHUP).

``ConfigDoc`` is the file format (msgspec checks structure and types; unknown keys are
errors, with a suggestion); ``load_config`` turns it into the frozen ``Config`` the
daemon uses, after checking values a schema cannot (sizes, addresses, levels).

Every key has a variable: ``NODED_`` plus the key in capitals, a section's keys with
the section's name in front (``NODED_NODE_LIMITS_MEMORY_MAX``). A variable wins over
the file; an empty one is ignored. ``packaging/noded.toml`` documents every key and
``man/noded.toml.5`` is its manual; a test keeps the three in step.

Every problem is one line naming the file (or variable), the key and the reason, so
that ``noded`` can refuse to start with one clear line in the journal.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from noded.contract.paths import DEFAULT_CONFIG_PATH, DEFAULT_RUNTIME_DIR, SOCKET_NAME
from noded.errors import NodedError
from noded.pipeline.schema import INFINITY, Resources, parse_quota, parse_size, parse_tasks, parse_watchdog

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_HINT = "see noded.toml(5): every key, its default and its variable"
# Seconds a node may spend in setup() after a progress report, or in one process(), before
# systemd ends it (WatchdogSec= of its unit); a pipeline's `watchdog` wins.
DEFAULT_WATCHDOG = "30s"


class ConfigError(NodedError):
    code = "invalid_config"


# -- the file format ----------------------------------------------------------------


class NodeLimitsDoc(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    memory_max: int | str = INFINITY
    cpu_quota: str = INFINITY
    tasks_max: int | str = INFINITY
    watchdog: int | float | str = DEFAULT_WATCHDOG


class NodeSandboxDoc(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    private_network: bool = False
    read_write_paths: list[str] = []
    read_only_paths: list[str] = []


class ConfigDoc(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    socket: str = ""
    socket_group: str = "noded"
    runtime_dir: str = "/run/noded"
    iceoryx2_root: str = ""
    max_session_processes: int | str = INFINITY
    max_pipeline_nodes: int = 256
    node_start_timeout: float = 60.0
    node_stop_timeout: float = 5.0
    metrics_address: str = ""
    metrics_per_session: bool = False
    log_level: str = "info"
    node_limits: NodeLimitsDoc = msgspec.field(default_factory=NodeLimitsDoc)
    node_sandbox: NodeSandboxDoc = msgspec.field(default_factory=NodeSandboxDoc)


# -- what the daemon uses -----------------------------------------------------------


@dataclass(frozen=True)
class NodeSandbox:
    """Sandboxing of every node unit beyond the fixed set in ``noded.daemon.units``."""

    private_network: bool = False  # PrivateNetwork=: no network but loopback
    read_write_paths: tuple[str, ...] = ()  # ReadWritePaths=, e.g. a model cache
    read_only_paths: tuple[str, ...] = ()  # ReadOnlyPaths=


@dataclass(frozen=True)
class Config:
    runtime_dir: Path = DEFAULT_RUNTIME_DIR
    socket_group: str = "noded"
    # Node processes a single session may have; None means no limit.
    max_session_processes: int | None = None
    # Nodes a pipeline may have (noded.pipeline.bounds); a larger one is refused (exit 4).
    max_pipeline_nodes: int = 256
    # Seconds a node may take to report READY=1 unless it keeps extending
    # (the worker sends EXTEND_TIMEOUT_USEC while its load progresses).
    node_start_timeout: float = 60.0
    # Seconds between SIGTERM and SIGKILL when a node is stopped.
    node_stop_timeout: float = 5.0
    log_level: str = "info"
    worker_python: str = field(default_factory=lambda: sys.executable)
    socket: Path | None = None  # None: runtime_dir/control.sock
    iceoryx2_root: Path | None = None  # None: runtime_dir/iox2
    # (host, port) of the Prometheus endpoint; None: no metrics.
    metrics_address: tuple[str, int] | None = None
    # Series per session (edges, hops, node figures): they grow with every session.
    metrics_per_session: bool = False
    # Limits of nodes whose pipeline sets none (a pipeline's values win).
    node_limits: Resources = Resources(watchdog=parse_watchdog(DEFAULT_WATCHDOG))
    node_sandbox: NodeSandbox = NodeSandbox()
    source: str = "built-in defaults"  # where it was read from, for messages
    files: tuple[str, ...] = ()  # the files read, main file first then drop-ins, in order

    @property
    def socket_path(self) -> Path:
        return self.socket or self.runtime_dir / SOCKET_NAME

    @property
    def iox2_root(self) -> Path:
        return self.iceoryx2_root or self.runtime_dir / "iox2"


# -- loading ------------------------------------------------------------------------


def env_name(key: str, section: str | None = None) -> str:
    return "NODED_" + (f"{section}_{key}" if section else key).upper()


def _keys() -> list[tuple[str | None, str]]:
    """(section, key) of every setting, in file order."""
    keys: list[tuple[str | None, str]] = []
    for name in ConfigDoc.__struct_fields__:
        sub = {"node_limits": NodeLimitsDoc, "node_sandbox": NodeSandboxDoc}.get(name)
        keys += [(name, k) for k in sub.__struct_fields__] if sub else [(None, name)]
    return keys


SETTINGS = _keys()


def _from_env(raw: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """Put the NODED_* variables that are set into raw; return {dotted key: variable}."""
    origin: dict[str, str] = {}
    for section, key in SETTINGS:
        var = env_name(key, section)
        value = env.get(var, "")
        if value == "":
            continue
        target = raw.setdefault(section, {}) if section else raw
        if not isinstance(target, dict):
            continue  # the file's own type error is reported
        target[key] = value.split() if key.endswith("_paths") else value
        origin[f"{section}.{key}" if section else key] = var
    return origin


_MSGSPEC_AT = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`")


def _describe(exc: msgspec.ValidationError, where: str, origin: dict[str, str]) -> str:
    match = _MSGSPEC_AT.fullmatch(str(exc))
    assert match is not None
    what, path = match["what"], (match["path"] or "").lstrip(".")
    path = re.sub(r"\[\d+\]$", "", path)
    unknown = _UNKNOWN.fullmatch(what)
    if unknown:
        key = unknown["key"]
        # The keys of that section; at the top level, the top-level keys and section names.
        known = [k for s, k in SETTINGS if (s or "") == path] + ([s for s, _ in SETTINGS if s] if not path else [])
        close = difflib.get_close_matches(key, known, n=1)
        full = f"{path}.{key}" if path else key
        where = origin.get(full, where).split(": key ")[0]  # the drop-in that brought it
        return f"{where}: unknown key {full!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    what = what.replace("`", "")
    what = what[0].lower() + what[1:]
    if path in origin:
        return f"{origin[path]}: {what}"
    return f"{where}: key {path!r}: {what}" if path else f"{where}: {what}"


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}", hint=_HINT) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", hint=_HINT) from exc


def dropin_dir(path: Path) -> Path:
    """``noded.toml.d`` next to ``noded.toml``."""
    return path.with_name(path.name + ".d")


def dropins(path: Path) -> list[Path]:
    """The drop-ins of ``path``: ``<path>.d/*.toml``, in lexical order (as systemd sorts)."""
    try:
        return sorted((p for p in dropin_dir(path).glob("*.toml") if p.is_file()), key=lambda p: p.name)
    except OSError:
        return []


def _merge(base: dict[str, Any], over: dict[str, Any], origin: dict[str, str], where: str) -> None:
    """Put ``over``'s keys into ``base``; a table is merged key by key."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            for sub, subvalue in value.items():
                base[key][sub] = subvalue
                origin[f"{key}.{sub}"] = where
        else:
            base[key] = value
            origin[key] = where


def load_config(
    path: Path | None = None, env: dict[str, str] | None = None, default_path: Path = DEFAULT_CONFIG_PATH
) -> Config:
    """The configuration from ``path`` (or $NODED_CONFIG, or /etc/noded/noded.toml), its
    drop-ins and the NODED_* variables. A missing default file means the defaults; a file
    named explicitly (``path`` or $NODED_CONFIG) must exist: a mistyped path would otherwise
    run on defaults unnoticed. Raises ConfigError."""
    env = dict(os.environ) if env is None else env
    explicit = path or env.get("NODED_CONFIG")
    path = Path(explicit or default_path)
    if explicit and not path.exists():
        raise ConfigError(
            f"{path}: no such configuration file (given by --config or NODED_CONFIG)",
            hint="give the path of an existing file, or leave it out for /etc/noded/noded.toml or the defaults",
        )
    raw = _read(path)
    where = str(path)
    files = [str(path)] if path.exists() else []
    # Which file set each key, so a bad value names the drop-in that gave it.
    file_of: dict[str, str] = {}
    for dropin in dropins(path):
        _merge(raw, _read(dropin), file_of, str(dropin))
        files.append(str(dropin))
    origin = _from_env(raw, env)
    located = {key: f"{file}: key {key!r}" for key, file in file_of.items() if key not in origin} | origin
    try:
        # strict=False: variables are strings ("5", "true"); the file's TOML types are
        # checked the same way, so a quoted number in the file is accepted too.
        doc = msgspec.convert(raw, ConfigDoc, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, where, located), hint=_HINT) from None
    source = ", ".join(files) if files else "built-in defaults"
    if origin:
        source += " and " + ", ".join(sorted(origin.values()))
    config = _checked(doc, where, located, source)
    return replace(config, files=tuple(files))


# Settings a running daemon takes over on reload: they apply to sessions created after it
# (limits, timeouts, sandbox), to its log and to the metrics endpoint. The others name
# the sockets and directories the running sessions use; they need a restart.
RELOADABLE = (
    "max_session_processes",
    "node_start_timeout",
    "node_stop_timeout",
    "log_level",
    "metrics_address",
    "metrics_per_session",
    "node_limits",
    "node_sandbox",
)


def reloadable(old: Config, new: Config) -> tuple[Config, list[str]]:
    """The configuration a reload applies: ``new``'s reloadable settings on ``old``'s
    others; and the settings that differ but need a restart (pure)."""
    fixed = ("runtime_dir", "socket", "socket_group", "iceoryx2_root", "worker_python")
    ignored = [name for name in fixed if getattr(old, name) != getattr(new, name)]
    return replace(new, **{name: getattr(old, name) for name in fixed}), ignored


class _Checker:
    def __init__(self, where: str, origin: dict[str, str]) -> None:
        self.where, self.origin = where, origin

    def fail(self, key: str, reason: str) -> ConfigError:
        at = self.origin.get(key)
        return ConfigError(f"{at}: {reason}" if at else f"{self.where}: key {key!r}: {reason}", hint=_HINT)

    def parse(self, key: str, parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def absolute(self, key: str, value: str) -> Path:
        if not value.startswith("/"):
            raise self.fail(key, f"{value!r} is not an absolute path")
        return Path(value)


def _checked(doc: ConfigDoc, where: str, origin: dict[str, str], source: str) -> Config:
    c = _Checker(where, origin)
    if doc.log_level.lower() not in LOG_LEVELS:
        raise c.fail("log_level", f"{doc.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if not doc.socket_group:
        raise c.fail("socket_group", "must not be empty")
    for key in ("node_start_timeout", "node_stop_timeout"):
        if not getattr(doc, key) > 0:
            raise c.fail(key, f"{getattr(doc, key)} is not a positive number of seconds")
    limits = doc.node_limits
    sandbox = doc.node_sandbox
    return Config(
        runtime_dir=c.absolute("runtime_dir", doc.runtime_dir),
        socket=c.absolute("socket", doc.socket) if doc.socket else None,
        socket_group=doc.socket_group,
        iceoryx2_root=c.absolute("iceoryx2_root", doc.iceoryx2_root) if doc.iceoryx2_root else None,
        max_session_processes=c.parse("max_session_processes", _parse_count, doc.max_session_processes),
        max_pipeline_nodes=c.parse("max_pipeline_nodes", _parse_positive, doc.max_pipeline_nodes),
        node_start_timeout=doc.node_start_timeout,
        node_stop_timeout=doc.node_stop_timeout,
        metrics_address=c.parse("metrics_address", parse_address, doc.metrics_address),
        metrics_per_session=doc.metrics_per_session,
        log_level=doc.log_level.lower(),
        node_limits=Resources(
            memory_max=c.parse("node_limits.memory_max", parse_size, limits.memory_max),
            cpu_quota=c.parse("node_limits.cpu_quota", parse_quota, limits.cpu_quota),
            tasks_max=c.parse("node_limits.tasks_max", _parse_tasks, limits.tasks_max),
            watchdog=c.parse("node_limits.watchdog", parse_watchdog, limits.watchdog),
        ),
        node_sandbox=NodeSandbox(
            private_network=sandbox.private_network,
            read_write_paths=tuple(
                str(c.absolute("node_sandbox.read_write_paths", p)) for p in sandbox.read_write_paths
            ),
            read_only_paths=tuple(str(c.absolute("node_sandbox.read_only_paths", p)) for p in sandbox.read_only_paths),
        ),
        source=source,
    )


def _parse_tasks(value: int | str) -> int | None:
    return parse_tasks(int(value) if isinstance(value, str) and value.strip().isdigit() else value)


def _parse_positive(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a whole number from 1")
    return value


def _parse_count(value: int | str) -> int | None:
    if isinstance(value, str) and value.lower() in (INFINITY, "unlimited", "none"):
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of processes or 'infinity'") from None
    if count < 1:
        raise ValueError(f"{count} is less than 1 (leave it out, or 'infinity', for no limit)")
    return count


def parse_address(value: str) -> tuple[str, int] | None:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (all addresses); '' means off."""
    value = value.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. '127.0.0.1:9464', or ':9464' for every address)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def describe(config: Config) -> dict[str, Any]:
    """The effective settings as plain values (for `noded --check-config --json`)."""
    limits = config.node_limits
    return {
        "source": config.source,
        "files": list(config.files),
        "socket": str(config.socket_path),
        "socket_group": config.socket_group,
        "runtime_dir": str(config.runtime_dir),
        "iceoryx2_root": str(config.iox2_root),
        "max_session_processes": config.max_session_processes,
        "max_pipeline_nodes": config.max_pipeline_nodes,
        "node_start_timeout": config.node_start_timeout,
        "node_stop_timeout": config.node_stop_timeout,
        "metrics_address": ":".join(map(str, config.metrics_address)) if config.metrics_address else None,
        "metrics_per_session": config.metrics_per_session,
        "log_level": config.log_level,
        "node_limits": {
            "memory_max": limits.memory_max,
            "cpu_quota": limits.cpu_quota,
            "tasks_max": limits.tasks_max,
            "watchdog": limits.watchdog,
        },
        "node_sandbox": {
            "private_network": config.node_sandbox.private_network,
            "read_write_paths": list(config.node_sandbox.read_write_paths),
            "read_only_paths": list(config.node_sandbox.read_only_paths),
        },
    }
