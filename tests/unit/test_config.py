"""The daemon's configuration: file, variables, one-line errors, the shipped example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from noded.daemon.config import SETTINGS, Config, ConfigError, describe, env_name, load_config
from noded.pipeline.checks import parse_pipeline
from noded.pipeline.schema import Resources

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "packaging" / "noded.toml"
NOWHERE: dict[str, str] = {}  # with default_path=MISSING: no file anywhere
MISSING = Path("/nonexistent/noded.toml")


def load(tmp_path: Path, text: str, **env: str) -> Config:
    path = tmp_path / "noded.toml"
    path.write_text(text)
    return load_config(env={"NODED_CONFIG": str(path), **env})


def error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **env)
    message = str(info.value)
    assert "\n" not in message and info.value.hint
    return message


def test_a_file_named_explicitly_must_exist(tmp_path: Path) -> None:
    gone = tmp_path / "typo.toml"
    for kwargs in ({"path": gone, "env": {}}, {"env": {"NODED_CONFIG": str(gone)}}):
        with pytest.raises(ConfigError) as info:
            load_config(default_path=MISSING, **kwargs)  # type: ignore[arg-type]
        assert str(gone) in str(info.value) and "no such configuration file" in str(info.value)
    for env in ({}, {"NODED_CONFIG": str(gone)}):
        args = ["--check-config", "--config", str(gone)] if not env else ["--check-config"]
        res = noded(*args, env=env)
        assert res.returncode == 78 and str(gone) in res.stderr, (res.returncode, res.stdout, res.stderr)


def test_no_file_means_the_defaults() -> None:
    cfg = load_config(env=NOWHERE, default_path=MISSING)
    assert cfg.socket_path == Path("/run/noded/control.sock")
    assert cfg.iox2_root == Path("/run/noded/iox2")
    assert cfg.max_session_processes is None and cfg.metrics_address is None
    assert cfg.node_limits == Resources(watchdog=30.0) and cfg.log_level == "info"
    assert cfg.source == "built-in defaults"


def test_every_setting_from_the_file(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        socket = "/run/x/ctl.sock"
        socket_group = "staff"
        runtime_dir = "/run/x"
        iceoryx2_root = "/dev/shm/x"
        max_session_processes = 8
        node_start_timeout = 90
        node_stop_timeout = 2.5
        metrics_address = "127.0.0.1:9464"
        log_level = "DEBUG"
        [node_limits]
        memory_max = "1G"
        cpu_quota = "150%"
        tasks_max = 32
        watchdog = "2min"
        [node_sandbox]
        private_network = true
        read_write_paths = ["/var/cache/models"]
        read_only_paths = ["/srv"]
    """,
    )
    assert cfg.socket_path == Path("/run/x/ctl.sock") and cfg.socket_group == "staff"
    assert cfg.runtime_dir == Path("/run/x") and cfg.iox2_root == Path("/dev/shm/x")
    assert cfg.max_session_processes == 8 and cfg.node_start_timeout == 90 and cfg.node_stop_timeout == 2.5
    assert cfg.metrics_address == ("127.0.0.1", 9464) and cfg.log_level == "debug"
    assert cfg.node_limits == Resources(memory_max=2**30, cpu_quota=1.5, tasks_max=32, watchdog=120.0)
    assert cfg.node_sandbox.private_network and cfg.node_sandbox.read_write_paths == ("/var/cache/models",)
    assert cfg.node_sandbox.read_only_paths == ("/srv",)


def test_every_setting_has_a_variable_that_wins_over_the_file(tmp_path: Path) -> None:
    values = {
        "socket": "/run/y.sock",
        "socket_group": "adm",
        "runtime_dir": "/run/y",
        "iceoryx2_root": "/run/y/i",
        "max_session_processes": "3",
        "max_pipeline_nodes": "12",
        "node_start_timeout": "7",
        "node_stop_timeout": "1",
        "metrics_address": ":9100",
        "metrics_per_session": "true",
        "log_level": "warning",
        "memory_max": "64M",
        "cpu_quota": "50%",
        "tasks_max": "5",
        "watchdog": "90",
        "private_network": "true",
        "read_write_paths": "/a /b",
        "read_only_paths": "/c",
    }
    env = {env_name(key, section): values[key] for section, key in SETTINGS}
    assert set(values) == {key for _, key in SETTINGS}
    assert env_name("memory_max", "node_limits") == "NODED_NODE_LIMITS_MEMORY_MAX"
    cfg = load(tmp_path, 'log_level = "error"\nmax_session_processes = 9\n', **env)
    assert describe(cfg) == {
        "source": cfg.source,
        "files": list(cfg.files),
        "socket": "/run/y.sock",
        "socket_group": "adm",
        "runtime_dir": "/run/y",
        "iceoryx2_root": "/run/y/i",
        "max_session_processes": 3,
        "max_pipeline_nodes": 12,
        "node_start_timeout": 7.0,
        "node_stop_timeout": 1.0,
        "metrics_address": "0.0.0.0:9100",
        "metrics_per_session": True,
        "log_level": "warning",
        "node_limits": {"memory_max": 64 * 2**20, "cpu_quota": 0.5, "tasks_max": 5, "watchdog": 90.0},
        "node_sandbox": {"private_network": True, "read_write_paths": ["/a", "/b"], "read_only_paths": ["/c"]},
    }
    assert "NODED_LOG_LEVEL" in cfg.source
    unlimited = load(tmp_path, "max_session_processes = 9\n", NODED_MAX_SESSION_PROCESSES="infinity")
    assert unlimited.max_session_processes is None


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "max_sesion_processes = 3\n",
            {},
            "unknown key 'max_sesion_processes' (did you mean 'max_session_processes'?)",
        ),
        ("[node_limits]\nmemroy_max = '1G'\n", {}, "unknown key 'node_limits.memroy_max' (did you mean 'memory_max'?)"),
        ("[node_limit]\n", {}, "unknown key 'node_limit' (did you mean 'node_limits'?)"),
        ("node_stop_timeout = 'soon'\n", {}, "key 'node_stop_timeout': expected float, got str"),
        ("max_session_processes = 0\n", {}, "key 'max_session_processes': 0 is less than 1"),
        ("", {"NODED_MAX_SESSION_PROCESSES": "zero"}, "NODED_MAX_SESSION_PROCESSES: 'zero' is not a number"),
        ("", {"NODED_NODE_STOP_TIMEOUT": "soon"}, "NODED_NODE_STOP_TIMEOUT: expected float, got str"),
        ("[node_limits]\nmemory_max = '12Q'\n", {}, "key 'node_limits.memory_max': '12Q' is not a size"),
        ("[node_limits]\ncpu_quota = '150'\n", {}, "key 'node_limits.cpu_quota': '150' is not a CPU quota"),
        ("[node_limits]\nwatchdog = 'soon'\n", {}, "key 'node_limits.watchdog': 'soon' is not a time span"),
        ("", {"NODED_NODE_LIMITS_WATCHDOG": "0.5"}, "NODED_NODE_LIMITS_WATCHDOG: '0.5' is shorter than the shortest"),
        ("metrics_address = 'localhost'\n", {}, "key 'metrics_address': 'localhost' is not HOST:PORT"),
        ("log_level = 'loud'\n", {}, "key 'log_level': 'loud' is not one of debug, info"),
        ("runtime_dir = 'run/noded'\n", {}, "key 'runtime_dir': 'run/noded' is not an absolute path"),
        (
            "[node_sandbox]\nread_write_paths = ['cache']\n",
            {},
            "'node_sandbox.read_write_paths': 'cache' is not an absolute",
        ),
        ("node_start_timeout = -1\n", {}, "key 'node_start_timeout': -1.0 is not a positive number of seconds"),
        ("socket_group = [1]\n", {}, "key 'socket_group': expected str, got array"),
        ("log_level = \n", {}, "TOML syntax error"),
    ],
)
def test_each_problem_is_one_line_naming_file_key_and_reason(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    message = error(tmp_path, text, **env)
    assert expected in message, message
    if not any(expected.startswith(v) for v in env):
        assert message.startswith(str(tmp_path / "noded.toml")), message


def test_the_shipped_example_documents_every_setting_with_its_default() -> None:
    text = EXAMPLE.read_text()
    # Commented out as shipped: loading it gives the built-in defaults.
    unset = {"source": "", "files": []}
    assert (
        describe(load_config(EXAMPLE, env={})) | unset
        == describe(load_config(env=NOWHERE, default_path=MISSING)) | unset
    )
    lines = {m[1]: m[2] for m in re.finditer(r"^#(\w+) = (.*)$", text, re.M)}
    assert sorted(lines) == sorted(key for _, key in SETTINGS)
    # Each key is explained by a comment just above its first commented line.
    for _, key in SETTINGS:
        before = text[: text.index(f"\n#{key} = ")].rsplit("\n", 2)[-1]
        assert before.startswith("# ") and len(before) > 10, key
    # Uncommented, the first value of each key is the default again.
    active = re.sub(r"^#(\w+ = )", r"\1", text, flags=re.M)
    seen: set[str] = set()
    kept = []
    for line in active.splitlines():
        m = re.match(r"(\w+) = ", line)
        if m and m[1] in seen:
            continue
        if m:
            seen.add(m[1])
        kept.append(line)
    assert describe(load_config(EXAMPLE, env={})) | {"source": "", "files": []} == describe(
        _load_text("\n".join(kept))
    ) | {"source": "", "files": []}


def _load_text(text: str) -> Config:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "noded.toml")
        path.write_text(text)
        return load_config(path, env={})


def test_node_limits_are_defaults_a_pipeline_overrides() -> None:
    defaults = Resources(memory_max=2**30, cpu_quota=1.0, tasks_max=10)
    text = (
        '[limits]\ntasks_max = "infinity"\n[[nodes]]\nid = "a"\nclass = "passthrough"\n'
        '[[nodes]]\nid = "b"\nclass = "passthrough"\nmemory_max = "64M"\n'
    )
    a, b = parse_pipeline(text, "p.toml", defaults=defaults).nodes
    assert a.resources == Resources(memory_max=2**30, cpu_quota=1.0, tasks_max=None)
    assert b.resources == Resources(memory_max=64 * 2**20, cpu_quota=1.0, tasks_max=None)


def noded(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from noded.daemon.main import main; main()", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        cwd=REPO,
    )


def test_check_config_exit_status_and_message(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("max_session_processes = 4\n")
    res = noded("--check-config", "--config", str(good), env={})
    assert res.returncode == 0 and f"configuration is valid ({good})" in res.stdout, res
    res = noded("--check-config", "--json", env={"NODED_CONFIG": str(good)})
    assert json.loads(res.stdout)["config"]["max_session_processes"] == 4

    bad = tmp_path / "bad.toml"
    bad.write_text("max_session_processes = 'lots'\n")
    res = noded("--check-config", "--config", str(bad), env={})
    assert res.returncode == 78 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "max_session_processes" in res.stderr and "lots" in res.stderr, res
    res = noded("--check-config", "--json", env={"NODED_CONFIG": str(bad)})
    assert res.returncode == 78 and json.loads(res.stdout)["error"]["code"] == "invalid_config"


def test_the_daemon_refuses_an_invalid_config_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[node_limits]\nmemory_max = 'lots'\n")
    res = noded(env={"NODED_CONFIG": str(bad)})
    assert res.returncode == 78, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("<3>"), res.stderr
    assert "invalid configuration, not starting" in lines[0] and "node_limits.memory_max" in lines[0]


# -- drop-ins and reload ------------------------------------------------------------


def test_dropins_merge_in_lexical_order_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "noded.toml").write_text('log_level = "warning"\n[node_limits]\nmemory_max = "1G"\ncpu_quota = "50%"\n')
    d = tmp_path / "noded.toml.d"
    d.mkdir()
    (d / "20-later.toml").write_text('[node_limits]\nmemory_max = "3G"\n')
    (d / "10-first.toml").write_text('log_level = "debug"\n[node_limits]\nmemory_max = "2G"\n')
    (d / "ignored.conf").write_text("not toml at all [")
    cfg = load_config(env={"NODED_CONFIG": str(tmp_path / "noded.toml")})
    assert cfg.log_level == "debug"
    assert cfg.node_limits.memory_max == 3 * 1024**3  # the later drop-in wins
    assert cfg.node_limits.cpu_quota == 0.5  # the main file's key in the same section stays
    assert [Path(f).name for f in cfg.files] == ["noded.toml", "10-first.toml", "20-later.toml"]
    assert describe(cfg)["files"] == list(cfg.files)


def test_a_bad_dropin_is_named(tmp_path: Path) -> None:
    (tmp_path / "noded.toml").write_text("")
    d = tmp_path / "noded.toml.d"
    d.mkdir()
    (d / "50-bad.toml").write_text('log_level = "loud"\n')
    (d / "60-typo.toml").write_text("log_levle = 'info'\n")
    with pytest.raises(ConfigError) as info:
        load_config(env={"NODED_CONFIG": str(tmp_path / "noded.toml")})
    assert "60-typo.toml: unknown key 'log_levle'" in str(info.value)
    (d / "60-typo.toml").unlink()
    with pytest.raises(ConfigError) as info:
        load_config(env={"NODED_CONFIG": str(tmp_path / "noded.toml")})
    assert str(info.value).startswith(f"{d / '50-bad.toml'}: key 'log_level': 'loud' is not one of")


def test_reload_keeps_the_settings_that_need_a_restart(tmp_path: Path) -> None:
    from noded.daemon.config import reloadable

    old = load(tmp_path, 'runtime_dir = "/run/a"\nmax_session_processes = 4\n')
    new = load(tmp_path, 'runtime_dir = "/run/b"\nmax_session_processes = 8\nlog_level = "debug"\n')
    applied, ignored = reloadable(old, new)
    assert ignored == ["runtime_dir"]
    assert applied.runtime_dir == Path("/run/a") and applied.max_session_processes == 8
    assert applied.log_level == "debug"


def test_check_config_verbose_shows_the_merge_order(tmp_path: Path) -> None:
    (tmp_path / "noded.toml").write_text('log_level = "warning"\n')
    d = tmp_path / "noded.toml.d"
    d.mkdir()
    (d / "b.toml").write_text('log_level = "error"\n')
    (d / "a.toml").write_text('log_level = "debug"\n')
    res = noded("--check-config", "--verbose", "--config", str(tmp_path / "noded.toml"), env={})
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.index("1. " + str(tmp_path / "noded.toml")) < out.index("2. " + str(d / "a.toml"))
    assert out.index("2. " + str(d / "a.toml")) < out.index("3. " + str(d / "b.toml"))
    assert 'log_level = "error"' in out
