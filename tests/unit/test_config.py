"""Config loading: discovery, validation, environment overrides, secret files."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemons import resources
from daemons.core import config as config_mod
from daemons.core.config import Config, ConfigError, _is_secret, _leaves, env_name, load

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = resources.path("netd.example.toml")


@pytest.fixture(autouse=True)
def _no_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a ./netd.toml the test writes must be ignored


def write(tmp_path: Path, text: str, name: str = "netd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    loaded = load(None, {})
    assert loaded.path is None
    cfg = loaded.config
    assert cfg.database.embedded and cfg.redis.embedded
    assert cfg.api.host == "127.0.0.1" and cfg.api.port == 8080
    assert cfg.state_dir.is_absolute()


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ./netd.toml is never read: the working directory does not choose the instance.
    write(tmp_path, "[api]\nport = 1001\n")
    env_file = write(tmp_path, "[api]\nport = 1002\n", "env.toml")
    explicit = write(tmp_path, "[api]\nport = 1003\n", "explicit.toml")
    monkeypatch.setattr(config_mod, "_is_root", lambda: False)
    home = {"HOME": str(tmp_path / "home")}
    assert load(None, home).path is None
    assert load(None, {**home, "NETD_CONFIG": str(env_file)}).config.api.port == 1002
    assert load(str(explicit), {**home, "NETD_CONFIG": str(env_file)}).config.api.port == 1003
    user = tmp_path / "home" / ".config" / "netd" / "netd.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[api]\nport = 1004\n")
    assert load(None, home).path == user and load(None, home).config.api.port == 1004
    xdg = {**home, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert load(None, xdg).path is None  # XDG_CONFIG_HOME wins over ~/.config


def test_default_state_dir_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_mod, "_is_root", lambda: False)
    home = {"HOME": str(tmp_path / "h")}
    assert load(None, home).config.state_dir == tmp_path / "h" / ".local" / "state" / "netd"
    xdg = {**home, "XDG_STATE_HOME": "/x/state"}
    assert load(None, xdg).config.state_dir == Path("/x/state/netd")
    assert load(None, {**xdg, "STATE_DIRECTORY": "/var/lib/netd"}).config.state_dir == Path(
        "/var/lib/netd"
    )
    monkeypatch.setattr(config_mod, "_is_root", lambda: True)
    assert load(None, home).config.state_dir == Path("/var/lib/netd")
    assert load(None, home).config.policies.root == resources.path("policies")


def test_relative_paths_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc" / "netd.toml"
    conf.parent.mkdir()
    (conf.parent / "db.pw").write_text("s3cret\n")
    conf.write_text(
        'state_dir = "../state"\n[policies]\ndir = "pol"\n'
        '[radius]\ndictionaries = ["dicts", "/abs/d"]\n[database]\npassword_file = "db.pw"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load(str(conf), {"NETD_API_TLS_CERT": "c.pem", "NETD_API_TLS_KEY": "/k.pem"}).config
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.policies.root == conf.parent / "pol"
    assert cfg.radius.dictionaries == [conf.parent / "dicts", Path("/abs/d")]
    assert cfg.database.password is not None
    assert cfg.database.password.get_secret_value() == "s3cret"
    assert cfg.api.tls_cert == elsewhere / "c.pem"  # from the environment: the cwd, now


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "nope.toml"), {})
    assert "file not found" in str(err.value) and "nope.toml" in str(err.value)
    with pytest.raises(ConfigError, match="NETD_CONFIG"):
        load(None, {"NETD_CONFIG": str(tmp_path / "gone.toml")})


def test_bad_type_names_key_file_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\npool_max_size = "ten"\n')
    with pytest.raises(ConfigError) as err:
        load(str(path), {})
    e = err.value
    assert e.key == "database.pool_max_size"
    assert e.source == str(path)
    assert "expected a valid integer" in e.expected and "'ten'" in e.expected


def test_out_of_range_and_bad_choice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.port.*less than or equal to 65535"):
        load(str(write(tmp_path, "[api]\nport = 70000\n")), {})
    with pytest.raises(ConfigError, match=r"log\.level.*'debug', 'info'"):
        load(str(write(tmp_path, '[log]\nlevel = "loud"\n')), {})


def test_unknown_key_and_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(str(write(tmp_path, "[radius]\nbogus = 1\n")), {})
    assert err.value.key == "radius.bogus" and err.value.expected == "unknown key"
    with pytest.raises(ConfigError) as err:
        load(str(write(tmp_path, "[nosuch]\nx = 1\n")), {})
    assert err.value.key == "nosuch"


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[api\nport = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as err:
        load(str(path), {})
    assert err.value.source == str(path)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 8000\n[lifecycle]\ndrain_timeout = 3\n")
    cfg = load(str(path), {"NETD_API_PORT": "9000", "NETD_LOG_LEVEL": "debug"}).config
    assert cfg.api.port == 9000 and cfg.log.level == "debug"
    assert cfg.lifecycle.drain_timeout == 3.0


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(None, {"NETD_API_PORT": "http"})
    assert err.value.key == "api.port"
    assert err.value.source == "environment variable NETD_API_PORT"


def test_unknown_environment_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load(None, {"NETD_API_PROT": "1"})
    assert err.value.key == "NETD_API_PROT" and "unknown" in err.value.expected


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    path = write(tmp_path, f'[database]\npassword_file = "{secret}"\n')
    cfg = load(str(path), {}).config
    assert cfg.database.password is not None
    assert cfg.database.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)  # secrets never print
    env_cfg = load(None, {"NETD_REDIS_PASSWORD_FILE": str(secret)}).config
    assert env_cfg.redis.password is not None
    assert env_cfg.redis.password.get_secret_value() == "s3cret"


def test_secret_file_problems(tmp_path: Path) -> None:
    both = write(tmp_path, '[database]\npassword = "a"\npassword_file = "/x"\n')
    with pytest.raises(ConfigError, match="not both"):
        load(str(both), {})
    missing = write(tmp_path, f'[redis]\nurl_file = "{tmp_path / "none"}"\n', "m.toml")
    with pytest.raises(ConfigError) as err:
        load(str(missing), {})
    assert err.value.key == "redis.url_file" and "cannot read secret file" in err.value.expected


def test_bad_url_does_not_echo_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "mysql://u:hunter2@db/x"\n')
    with pytest.raises(ConfigError) as err:
        load(str(path), {})
    assert err.value.key == "database.url"
    assert "hunter2" not in str(err.value) and "postgresql://" in str(err.value)


def test_example_config_is_valid_and_documents_every_key() -> None:
    cfg = load(str(EXAMPLE), {}).config
    # the example shows the defaults (the state directory's depends on the user)
    assert cfg == Config().model_copy(update={"state_dir": cfg.state_dir})
    text = EXAMPLE.read_text()
    parsed = tomllib.loads(text)
    for leaf in _leaves(Config):
        name = leaf[-1]
        default: object = cfg
        for part in leaf:
            default = getattr(default, part, None)
        # TOML has no null: an optional key is shown commented, as is the state directory,
        # whose default depends on who runs netd
        unset = default is None or leaf == ("state_dir",)
        if name.endswith("_file") or unset or (_is_secret(leaf) and name != "url"):
            assert f"{name} =" in text, f"{'.'.join(leaf)} is not shown in the example"
            continue
        node = parsed
        for part in leaf:
            assert part in node, f"{'.'.join(leaf)} is not in the example config"
            node = node[part]
        assert env_name(leaf).startswith("NETD_")


def test_cli_config_error_is_one_line_and_status_2(tmp_path: Path) -> None:
    bad = write(tmp_path, '[database]\npool_max_size = "ten"\n')
    for args in (
        ["--config", str(bad), "check-config"],
        ["--config", str(tmp_path / "missing.toml"), "up"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "daemons.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("netd: config error")
        assert "Traceback" not in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "daemons.cli", "--config", str(EXAMPLE), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert ok.returncode == 0 and "config ok" in ok.stdout


def test_default_ports_are_distinct_and_leave_snmp_exporter_its_own() -> None:
    """`netd up` serves every daemon at once: no two default TCP ports may be equal, and the
    poller's exporter (9186) must not take snmp_exporter's 9116, so both run during a move."""
    tcp: dict[int, str] = {}
    UDP = ("radius.auth_port", "radius.acct_port", "poller.trap_port", "acs.stun_port")

    def walk(model: object, prefix: str) -> None:
        for name in type(model).model_fields:  # type: ignore[attr-defined]
            value = getattr(model, name)
            if hasattr(type(value), "model_fields"):
                walk(value, f"{prefix}{name}.")
            elif name.endswith("port") and value and f"{prefix}{name}" not in UDP:
                assert value not in tcp, f"{prefix}{name} = {value} is {tcp.get(value)}'s"
                tcp[value] = prefix + name

    walk(Config(), "")
    assert Config().poller.exporter_port == 9186 and 9116 not in tcp
    assert len(tcp) >= 10, tcp
