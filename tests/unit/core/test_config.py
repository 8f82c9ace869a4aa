"""Layered configuration (cronium.core.config) and `cronium config show`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from cronium.core.cli import cli
from cronium.core.config import (
    Setting,
    env_name,
    load_config,
    mask_url,
    parse_size,
    unknown_env,
)
from cronium.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def user_config(tmp_path: Path, text: str) -> Path:
    # conftest points XDG_CONFIG_HOME at tmp_path / "xdg-config"
    return write(tmp_path / "xdg-config" / "cronium" / "config.toml", text)


def load(tmp_path, *, file_text: str | None = None, environ=None, flags=None, **kwargs):
    config_file = write(tmp_path / "given.toml", file_text) if file_text is not None else None
    return load_config(config_file=config_file, environ=environ or {}, flags=flags,
                       use_user_config=kwargs.pop("use_user_config", False), cwd=tmp_path, **kwargs)


# --- precedence and provenance -------------------------------------------------------------------

def test_precedence_flag_env_file_user_defaults_with_sources(tmp_path):
    upath = user_config(tmp_path, """
namespace = "from-user"
[logs]
max_line_bytes = 1000
[sidecar]
pids = 11
[limits]
max_pids = 101
""")
    fpath = write(tmp_path / "given.toml", """
namespace = "from-file"
[sidecar]
pids = 12
[limits]
max_pids = 102
""")
    environ = {"CRONIUM_NAMESPACE": "from-env", "CRONIUM_SIDECAR_PIDS": "13"}
    flags = {"namespace": "from-flag"}
    cfg = load_config(config_file=fpath, environ=environ, flags=flags, use_user_config=True, cwd=tmp_path)

    # only in the defaults
    assert cfg["docker.timeout"] == 60 and cfg.source("docker.timeout") == "defaults"
    # user config over defaults
    assert cfg["logs.max_line_bytes"] == 1000 and cfg.source("logs.max_line_bytes") == str(upath)
    # --config file over user config
    assert cfg["limits.max_pids"] == 102 and cfg.source("limits.max_pids") == str(fpath)
    # env over the file (and parsed as a number)
    assert cfg["sidecar.pids"] == 13 and cfg.source("sidecar.pids") == "env CRONIUM_SIDECAR_PIDS"
    # flag over everything
    assert cfg["namespace"] == "from-flag" and cfg.source("namespace") == "flag --namespace"


def test_cwd_cronium_toml_is_used_when_no_config_file_is_given(tmp_path):
    local = write(tmp_path / "cronium.toml", "namespace = \"from-cwd\"\n")
    cfg = load_config(environ={}, use_user_config=False, cwd=tmp_path)
    assert cfg["namespace"] == "from-cwd"
    assert cfg.source("namespace") == str(local)


def test_config_file_replaces_cwd_cronium_toml(tmp_path):
    write(tmp_path / "cronium.toml", "namespace = \"from-cwd\"\ntimeout = 7\n")
    cfg = load(tmp_path, file_text="namespace = \"from-file\"\n")
    assert cfg["namespace"] == "from-file"
    assert cfg["timeout"] == 3600  # ./cronium.toml was not read at all


def test_cronium_config_env_names_the_file(tmp_path):
    fpath = write(tmp_path / "elsewhere.toml", "namespace = \"via-env\"\n")
    cfg = load_config(environ={"CRONIUM_CONFIG": str(fpath)}, use_user_config=False, cwd=tmp_path)
    assert cfg["namespace"] == "via-env" and cfg.source("namespace") == str(fpath)


def test_user_config_is_skipped_when_asked(tmp_path):
    user_config(tmp_path, "namespace = \"from-user\"\n")
    assert load(tmp_path, use_user_config=True)["namespace"] == "from-user"
    assert load(tmp_path, use_user_config=False)["namespace"] == "default"


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(config_file=tmp_path / "nope.toml", environ={}, use_user_config=False)
    assert info.value.exit_code == 2
    assert "nope.toml" in str(info.value) and "not found" in str(info.value)


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="timeout = = 3\n")
    assert "given.toml" in str(info.value) and "TOML" in str(info.value)


# --- bad values ----------------------------------------------------------------------------------

def test_string_timeout_names_file_key_and_expected_type(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text='timeout = "abc"\n')
    exc = info.value
    assert exc.exit_code == 2
    assert exc.source == str(tmp_path / "given.toml")
    assert exc.key == "timeout"
    assert re.search(r"integer|number", exc.expected)
    text = str(exc)
    assert str(tmp_path / "given.toml") in text
    assert "'timeout'" in text
    assert exc.expected in text
    assert "'abc'" in text


@pytest.mark.parametrize("text, key, suggestion", [
    ("timout = 5\n", "timout", "timeout"),
    ("[redis]\nurll = \"redis://h\"\n", "redis.urll", "redis.url"),
    ("[logs]\nmax_line_byte = 10\n", "logs.max_line_byte", "logs.max_line_bytes"),
])
def test_unknown_key_with_near_miss_suggestion(tmp_path, text, key, suggestion):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text=text)
    assert info.value.key == key
    assert "unknown key" in str(info.value)
    assert f"did you mean '{suggestion}'" in str(info.value)


def test_unknown_key_without_near_miss(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="[zebra]\nstripes = 3\n")
    assert info.value.key == "zebra.stripes"
    assert "did you mean" not in str(info.value)


def test_unknown_key_in_a_profile(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="[profiles.custom]\nwings = 2\n")
    assert info.value.key == "profiles.custom.wings"


BAD_VALUES = [
    ("[sidecar]\nmemory = \"12 parsecs\"\n", "sidecar.memory", "size"),
    ("[profiles.default]\nmemory = \"lots\"\n", "profiles.default.memory", "size"),
    ("[profiles.custom]\ntmpfs_size = \"-1m\"\n", "profiles.custom.tmpfs_size", "size"),
    ("[token]\nalgorithm = \"RS256\"\n", "token.algorithm", "'EdDSA'"),
    ("[redis]\nsidecar_auth = \"none\"\n", "redis.sidecar_auth", "'acl'"),
    ("[logs]\ndocker_driver = \"syslog\"\n", "logs.docker_driver", "'json-file'"),
    ("[network]\npool = \"10.0.0.1/16\"\n", "network.pool", "network"),
    ("[network]\npool = \"not-a-net\"\n", "network.pool", "network"),
    ("[network]\nsubnet_prefix = 30\n", "network.subnet_prefix", "prefix"),
    ("[network]\nsubnet_prefix = \"28\"\n", "network.subnet_prefix", "integer"),
    ("[profiles.default]\nuser = \"0\"\n", "profiles.default.user", "non-root"),
    ("[profiles.default]\nuser = \"0:0\"\n", "profiles.default.user", "non-root"),
    ("[profiles.strict]\nuser = \"root\"\n", "profiles.strict.user", "non-root"),
    ("[profiles.default]\ncap_drop = \"ALL\"\n", "profiles.default.cap_drop", "list"),
    ("namespace = \"has space\"\n", "namespace", "namespace"),
    ("timeout = -1\n", "timeout", "positive"),
    ("timeout = true\n", "timeout", ""),
    ("[logs]\nfile = \"yes\"\n", "logs.file", "boolean"),
    ("[limits]\nmax_cpus = \"2\"\n", "limits.max_cpus", "number"),
]


@pytest.mark.parametrize("text, key, expected_fragment", BAD_VALUES,
                         ids=[f"{key}={text.split('=', 1)[1].strip()}" for text, key, _ in BAD_VALUES])
def test_bad_values_are_config_errors(tmp_path, text, key, expected_fragment):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text=text)
    exc = info.value
    assert exc.exit_code == 2
    assert exc.key == key
    assert exc.source == str(tmp_path / "given.toml")
    assert expected_fragment in (exc.expected or "")


def test_good_values_are_accepted_and_normalised(tmp_path):
    cfg = load(tmp_path, file_text="""
timeout = 2.5
[profiles.default]
user = "1000"
memory = "1GiB"
[network]
pool = "10.99.0.0/20"
subnet_prefix = 29
[token]
algorithm = "HS256"
secret = "0123456789abcdef0123456789abcdef"
""")
    assert cfg["timeout"] == 2.5
    assert cfg["profiles.default.user"] == "1000"
    assert parse_size(cfg["profiles.default.memory"]) == 1024**3
    assert cfg["network.subnet_prefix"] == 29
    assert cfg["token.algorithm"] == "HS256"


@pytest.mark.parametrize("text, expected", [
    ("256m", 256 * 1024**2), ("1g", 1024**3), ("512k", 512 * 1024), ("1.5g", int(1.5 * 1024**3)),
    ("100", 100), ("64MiB", 64 * 1024**2), ("2gb", 2 * 1024**3), (4096, 4096), ("0", 0),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "1x", "-5m", -1, True, "m"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


# --- environment ---------------------------------------------------------------------------------

def test_env_name():
    assert env_name("timeout") == "CRONIUM_TIMEOUT"
    assert env_name("redis.sidecar_url") == "CRONIUM_REDIS_SIDECAR_URL"
    assert env_name("profiles.default.memory") == "CRONIUM_PROFILES_DEFAULT_MEMORY"


@pytest.mark.parametrize("raw, value", [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_env_booleans(tmp_path, raw, value):
    cfg = load(tmp_path, environ={"CRONIUM_LOGS_FILE": raw})
    assert cfg["logs.file"] is value
    assert cfg.source("logs.file") == "env CRONIUM_LOGS_FILE"


def test_env_numbers_and_lists(tmp_path):
    cfg = load(tmp_path, environ={
        "CRONIUM_TIMEOUT": "2.5",
        "CRONIUM_LIMITS_MAX_PIDS": "77",
        "CRONIUM_SIDECAR_CPUS": "2",
        "CRONIUM_PLUGINS_DISABLED": "recorder, logs,,",
        "CRONIUM_PROFILES_DEFAULT_MEMORY": "300m",
    })
    assert cfg["timeout"] == 2.5
    assert cfg["limits.max_pids"] == 77 and isinstance(cfg["limits.max_pids"], int)
    assert cfg["sidecar.cpus"] == 2.0 and isinstance(cfg["sidecar.cpus"], float)
    assert cfg["plugins.disabled"] == ["recorder", "logs"]
    assert cfg["profiles.default.memory"] == "300m"


@pytest.mark.parametrize("name, raw", [
    ("CRONIUM_LOGS_FILE", "maybe"),
    ("CRONIUM_TIMEOUT", "abc"),
    ("CRONIUM_LIMITS_MAX_PIDS", "1.5"),
    ("CRONIUM_NETWORK_POOL", "banana"),
])
def test_env_bad_values_name_the_variable(tmp_path, name, raw):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ={name: raw})
    assert info.value.source == f"env {name}"
    assert f"env {name}" in str(info.value)


def test_unknown_env(tmp_path):
    cfg = load(tmp_path)
    environ = {"CRONIUM_TIMEOUTT": "5", "CRONIUM_TIMEOUT": "5", "CRONIUM_DEBUG": "1",
               "CRONIUM_DISABLE_PLUGINS": "x", "CRONIUM_CONFIG": "f", "HOME": "/root",
               "CRONIUM_PROFILES_STRICT_MEMORY": "1m"}
    assert unknown_env(environ, cfg) == ["CRONIUM_TIMEOUTT"]


def test_env_for_a_profile_defined_in_a_file(tmp_path):
    cfg = load(tmp_path, file_text="[profiles.custom]\ncpus = 0.25\n",
               environ={"CRONIUM_PROFILES_CUSTOM_PIDS": "99"})
    assert cfg["profiles.custom.pids"] == 99
    assert cfg.source("profiles.custom.pids") == "env CRONIUM_PROFILES_CUSTOM_PIDS"


# --- profiles ------------------------------------------------------------------------------------

def test_new_profile_inherits_from_default(tmp_path):
    cfg = load(tmp_path, file_text="""
[profiles.default]
pids = 200
[profiles.custom]
memory = "64m"
""")
    custom = cfg.profile("custom")
    default = cfg.profile("default")
    assert custom["memory"] == "64m"
    assert cfg.source("profiles.custom.memory") == str(tmp_path / "given.toml")
    assert set(custom) == set(default)
    assert custom["pids"] == 200  # the effective default profile, including the file's change
    assert custom["user"] == default["user"] and custom["seccomp"] == default["seccomp"]
    assert "profiles.default" in cfg.source("profiles.custom.cpus")
    assert "custom" in cfg.profile_names() and "strict" in cfg.profile_names()


def test_unknown_profile_lists_the_known_ones(tmp_path):
    cfg = load(tmp_path)
    with pytest.raises(ConfigError) as info:
        cfg.profile("nope")
    assert "nope" in str(info.value) and "default" in str(info.value) and "strict" in str(info.value)
    assert info.value.exit_code == 2


def test_plugin_tables_are_free_form(tmp_path):
    cfg = load(tmp_path, file_text="[plugin.myplug]\nendpoint = \"http://x\"\nretries = 3\n")
    assert cfg.plugin_settings("myplug") == {"endpoint": "http://x", "retries": 3}
    with pytest.raises(ConfigError):
        load(tmp_path, file_text="[plugin]\nloose = 1\n")  # only plugin.<name>.<key> is free-form


# --- secrets -------------------------------------------------------------------------------------

def test_secrets_are_masked_in_shown(tmp_path):
    cfg = load(tmp_path, file_text="""
[redis]
url = "redis://cronium:hunter2@db.example:6379/0"
sidecar_url = "redis://:s3cr3t@redis:6379/0"
[token]
algorithm = "HS256"
secret = "0123456789abcdef0123456789abcdef-topsecret"
""")
    by_key = {s.key: s for s in cfg.settings()}
    assert by_key["token.secret"].secret
    assert by_key["token.secret"].shown() == "***"
    assert by_key["redis.url"].shown() == "redis://cronium:***@db.example:6379/0"
    assert by_key["redis.sidecar_url"].shown() == "redis://:***@redis:6379/0"
    # the real values are still there for the code that needs them
    assert cfg["redis.url"] == "redis://cronium:hunter2@db.example:6379/0"
    shown = json.dumps({s.key: s.shown() for s in cfg.settings()})
    for secret in ("hunter2", "s3cr3t", "topsecret"):
        assert secret not in shown
    # non-secret values are shown as they are
    assert by_key["namespace"].shown() == "default"


def test_secret_from_env_and_flag_is_masked(tmp_path):
    cfg = load(tmp_path, environ={"CRONIUM_REDIS_URL": "redis://u:envpass@h:1/0"},
               flags={"token.secret": "x" * 40})
    by_key = {s.key: s for s in cfg.settings()}
    assert "envpass" not in by_key["redis.url"].shown()
    assert by_key["token.secret"].shown() == "***"


def test_mask_url_leaves_urls_without_password_alone():
    assert mask_url("redis://db:6379/0") == "redis://db:6379/0"
    assert Setting("redis.url", "", "defaults", True).shown() == ""


# --- cross-checks --------------------------------------------------------------------------------

def test_hs256_needs_a_long_secret(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="[token]\nalgorithm = \"HS256\"\nsecret = \"short\"\n")
    assert info.value.key == "token.secret"
    assert "32" in str(info.value)
    with pytest.raises(ConfigError):
        load(tmp_path, file_text="[token]\nalgorithm = \"HS256\"\n")  # no secret at all


def test_subnet_prefix_must_be_longer_than_the_pool(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="[network]\npool = \"10.1.0.0/24\"\nsubnet_prefix = 24\n")
    assert info.value.key == "network.subnet_prefix"
    assert "/24" in info.value.expected
    with pytest.raises(ConfigError):
        load(tmp_path, file_text="[network]\npool = \"10.1.0.0/24\"\nsubnet_prefix = 20\n")
    assert load(tmp_path, file_text="[network]\npool = \"10.1.0.0/24\"\nsubnet_prefix = 28\n")


def test_timeout_above_max_timeout(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="timeout = 100\n[limits]\nmax_timeout = 50\n")
    assert info.value.key == "timeout"
    assert "max_timeout" in info.value.expected
    # the error names where the offending timeout came from
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file_text="[limits]\nmax_timeout = 50\n", environ={"CRONIUM_TIMEOUT": "60"})
    assert info.value.source == "env CRONIUM_TIMEOUT"


def test_with_overrides_validates_and_records_source(tmp_path):
    cfg = load(tmp_path)
    changed = cfg.with_overrides({"timeout": 12, "namespace": None}, source="job spec")
    assert changed["timeout"] == 12 and changed.source("timeout") == "job spec"
    assert changed["namespace"] == "default"
    assert cfg["timeout"] == 3600  # the original is untouched
    with pytest.raises(ConfigError):
        cfg.with_overrides({"timout": 1})


# --- through the CLI -----------------------------------------------------------------------------

def test_cli_config_show_bad_file_exits_2_naming_file_key_and_type(tmp_path):
    bad = write(tmp_path / "bad.toml", 'timeout = "abc"\n')
    result = CliRunner().invoke(cli, ["--config", str(bad), "config", "show"])
    assert result.exit_code == 2
    assert str(bad) in result.output
    assert "timeout" in result.output
    assert re.search(r"expected (an integer|a positive number)", result.output)
    assert "Traceback" not in result.output


def test_cli_config_show_json_has_value_and_source_and_masks_secrets(tmp_path):
    good = write(tmp_path / "good.toml", """
[redis]
url = "redis://u:hunter2@h:6379/0"
[token]
secret = "sup3rsecret-sup3rsecret-sup3rsecret"
""")
    result = CliRunner().invoke(cli, ["--config", str(good), "config", "show", "--json"],
                                env={"CRONIUM_NAMESPACE": "from-env"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert all(set(entry) == {"value", "source"} for entry in data.values())
    assert data["timeout"] == {"value": 3600, "source": "defaults"}
    assert data["namespace"] == {"value": "from-env", "source": "env CRONIUM_NAMESPACE"}
    assert data["redis.url"] == {"value": "redis://u:***@h:6379/0", "source": str(good)}
    assert data["token.secret"]["value"] == "***"
    assert "hunter2" not in result.output and "sup3rsecret" not in result.output


def test_cli_set_wins_over_env(tmp_path):
    result = CliRunner().invoke(cli, ["--set", "timeout=10", "--set", "logs.file=false", "config", "show", "--json"],
                                env={"CRONIUM_TIMEOUT": "20", "CRONIUM_LOGS_FILE": "true"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # Attributed to the option as given: there is no global --timeout or --logs-file flag.
    assert data["timeout"] == {"value": 10, "source": "--set timeout=10"}
    assert data["logs.file"] == {"value": False, "source": "--set logs.file=false"}


def test_cli_warns_about_unknown_cronium_env(tmp_path):
    result = CliRunner().invoke(cli, ["config", "show"], env={"CRONIUM_TIMEOUTT": "5"})
    assert result.exit_code == 0
    assert "CRONIUM_TIMEOUTT" in result.stderr
    assert "CRONIUM_TIMEOUTT" not in result.stdout


def test_cli_bad_set_value_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["--set", "network.subnet_prefix=99", "config", "show"])
    assert result.exit_code == 2
    assert "--set network.subnet_prefix=99: key 'network.subnet_prefix'" in result.output
