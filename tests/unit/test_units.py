from pathlib import Path

import pytest

from noded.daemon.config import Config, ConfigError, load_config
from noded.daemon.units import service_name, service_properties, slice_name, worker_argv


def props(**kw):
    cfg = Config(worker_python="/opt/noded/venv/bin/python")
    base = dict(
        sid="ab12cd34",
        node_id="asr",
        node_class="passthrough",
        argv=worker_argv(cfg, '{"x":1}'),
        config=cfg,
        iox2_root=Path("/run/noded/iox2/ab12cd34"),
    )
    base.update(kw)
    return {name: (sig, value) for name, sig, value in service_properties(**base)}


def test_names():
    assert slice_name("ab12cd34") == "noded-ab12cd34.slice"
    assert service_name("ab12cd34", "asr") == "noded-ab12cd34-asr.service"


def test_service_is_a_notify_unit_in_the_session_slice():
    p = props()
    assert p["Type"] == ("s", "notify")
    assert p["Slice"] == ("s", "noded-ab12cd34.slice")
    assert p["CollectMode"] == ("s", "inactive")
    assert p["LogExtraFields"][0] == "aay"
    assert p["LogExtraFields"][1] == [b"NODED_SESSION=ab12cd34", b"NODED_NODE=asr"]
    argv0, argv, ignore_failure = p["ExecStart"][1][0]
    assert argv0 == "/opt/noded/venv/bin/python" and argv[1:4] == ["-m", "noded.worker", "--spec"]
    assert ignore_failure is False
    assert "ExecStartEx" not in p  # systemd 252 cannot read it back after a daemon-reload
    assert p["ReadWritePaths"] == ("as", [b"/run/noded/iox2/ab12cd34"])
    assert "MemoryMax" not in p and "TasksMax" not in p and "CPUQuotaPerSecUSec" not in p
    assert "WatchdogUSec" not in p


def test_limits():
    p = props(memory_max=64 * 2**20, cpu_quota=1.5, tasks_max=16)
    assert p["MemoryMax"] == ("t", 64 * 2**20)
    assert p["CPUQuotaPerSecUSec"] == ("t", 1_500_000)
    assert p["TasksMax"] == ("t", 16)


def test_watchdog_becomes_watchdog_sec():
    assert props(watchdog=30.0)["WatchdogUSec"] == ("t", 30_000_000)
    assert props(watchdog=1.5)["WatchdogUSec"] == ("t", 1_500_000)


def test_config_from_env(tmp_path):
    cfg = load_config(env={"NODED_MAX_SESSION_PROCESSES": "3"}, default_path=tmp_path / "none.toml")
    assert cfg.max_session_processes == 3
    (tmp_path / "n.toml").write_text("max_session_processes = 7\nnode_stop_timeout = 2.5\n")
    cfg = load_config(env={"NODED_CONFIG": str(tmp_path / "n.toml")})
    assert cfg.max_session_processes == 7 and cfg.node_stop_timeout == 2.5
    (tmp_path / "bad.toml").write_text("max_sesion_processes = 7\n")
    with pytest.raises(ConfigError):
        load_config(env={"NODED_CONFIG": str(tmp_path / "bad.toml")})
    with pytest.raises(ConfigError):
        load_config(env={"NODED_MAX_SESSION_PROCESSES": "zero"}, default_path=tmp_path / "none")
