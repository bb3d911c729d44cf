"""The daemon's configuration: /etc/noded/noded.toml, overridden by NODED_* variables."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec

from daemon.errors import NodedError

DEFAULT_CONFIG_PATH = Path("/etc/noded/noded.toml")


class ConfigError(NodedError):
    code = "invalid_config"


class _ConfigFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    runtime_dir: str | None = None
    socket_group: str | None = None
    max_session_processes: int | None = None
    node_start_timeout: float | None = None
    node_stop_timeout: float | None = None
    log_level: str | None = None


@dataclass(frozen=True)
class Config:
    runtime_dir: Path = Path("/run/noded")
    socket_group: str = "noded"
    # Node processes a single session may have; None means no limit.
    max_session_processes: int | None = None
    # Seconds a node may take to report READY=1 unless it keeps extending
    # (the worker sends EXTEND_TIMEOUT_USEC while its load progresses).
    node_start_timeout: float = 60.0
    # Seconds between SIGTERM and SIGKILL when a node is stopped.
    node_stop_timeout: float = 5.0
    log_level: str = "info"
    worker_python: str = field(default_factory=lambda: sys.executable)

    @property
    def socket_path(self) -> Path:
        return self.runtime_dir / "control.sock"


_ENV = {
    "NODED_RUNTIME_DIR": ("runtime_dir", Path),
    "NODED_SOCKET_GROUP": ("socket_group", str),
    "NODED_MAX_SESSION_PROCESSES": ("max_session_processes", int),
    "NODED_NODE_START_TIMEOUT": ("node_start_timeout", float),
    "NODED_NODE_STOP_TIMEOUT": ("node_stop_timeout", float),
    "NODED_LOG_LEVEL": ("log_level", str),
}


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    path = Path(env.get("NODED_CONFIG", path or DEFAULT_CONFIG_PATH))
    cfg = Config()
    if path.exists():
        try:
            data = msgspec.toml.decode(path.read_bytes(), type=_ConfigFile)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ConfigError(f"{path}: {exc}", hint="see noded.toml(5)") from exc
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        if "runtime_dir" in values:
            values["runtime_dir"] = Path(values["runtime_dir"])
        cfg = replace(cfg, **values)
    for var, (name, conv) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if name == "max_session_processes" and raw.lower() in ("none", "infinity", "unlimited"):
            cfg = replace(cfg, max_session_processes=None)
            continue
        try:
            cfg = replace(cfg, **{name: conv(raw)})
        except ValueError as exc:
            raise ConfigError(f"{var}={raw!r} is not a valid {conv.__name__}") from exc
    if cfg.max_session_processes is not None and cfg.max_session_processes < 1:
        raise ConfigError("max_session_processes must be at least 1, or unset for no limit")
    return cfg
