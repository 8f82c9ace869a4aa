"""Layered configuration with provenance.

Precedence, highest first: command-line flag > `CRONIUM_*` environment > `--config FILE` (or
`./cronium.toml`) > user config (`~/.config/cronium/config.toml`) > system config
(`/etc/cronium/config.toml`, or the file named by `CRONIUM_SYSTEM_CONFIG`) > the shipped defaults
(`config/defaults.toml`). The defaults file is the schema: every known key is in it, and a value's
type comes from its default, refined by the validators below. Unknown keys and bad values are
`ConfigError`s naming the source, the key, what was expected and what was found.
"""
from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError, ConfigInvalid
from .values import VALIDATORS, _describe, parse_duration, parse_size  # noqa: F401 - parsers re-exported

#: Keys whose values are secrets: shown masked by `cronium config show`.
SECRET_KEYS = {"token.secret", "redis.url", "redis.sidecar_url", "dashboard.admin_token", "dashboard.readonly_token"}
#: Tables whose sub-keys are free-form (plugin settings).
FREE_FORM_TABLES = ("plugin",)
#: Tables whose entries are named profiles sharing the schema of `profiles.default`.
PROFILE_TABLE = "profiles"


def mask_url(url: str) -> str:
    """Hide the password of a URL like redis://user:secret@host (even one with an unencoded '@')."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hostpart}"


def _validator_for(key: str) -> Callable[[Any], Any] | None:
    parts = key.split(".")
    if parts[0] == PROFILE_TABLE and len(parts) == 3:
        return VALIDATORS.get(f"profile.{parts[2]}")
    return VALIDATORS.get(key)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if not v:
                yield key, {}
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _load_toml(path: Path, source: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", source=source, hint="check the path given to --config") from None
    except PermissionError:
        raise ConfigError("file is not readable (permission denied)", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source,
                          hint="see https://toml.io for the syntax") from None


def default_data() -> dict[str, Any]:
    """The shipped defaults (config/defaults.toml, installed as package data)."""
    import importlib.util

    spec = importlib.util.find_spec("cronium.config")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    path = Path(folders[0]) / "defaults.toml" if folders else None
    if path is not None and path.is_file():  # a folder on disk: read it without importlib.resources (CLI start-up)
        return tomllib.loads(path.read_text())
    from importlib import resources

    return tomllib.loads(resources.files("cronium.config").joinpath("defaults.toml").read_text())


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "cronium" / "config.toml"


#: The system-wide layer, below the user's config; `CRONIUM_SYSTEM_CONFIG` names another file (tests).
SYSTEM_CONFIG_PATH = "/etc/cronium/config.toml"


def system_config_path() -> Path:
    return Path(os.environ.get("CRONIUM_SYSTEM_CONFIG") or SYSTEM_CONFIG_PATH)


def state_dir() -> Path:
    """This user's state folder: `CRONIUM_STATE_DIR`, else `$XDG_STATE_HOME/cronium`, else
    `~/.local/state/cronium` (the managed Redis password, the record spool, logs, the agent's socket)."""
    if os.environ.get("CRONIUM_STATE_DIR"):
        return Path(os.environ["CRONIUM_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "cronium"


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str
    secret: bool = False

    def shown(self) -> Any:
        """The value as it may be printed: secrets masked."""
        if not self.secret or self.value in ("", None):
            return self.value
        if isinstance(self.value, str) and "://" in self.value:
            return mask_url(self.value)
        return "***"


class Config:
    """The effective configuration: flat dotted keys, each with the source it came from."""

    def __init__(self, settings: dict[str, Setting]):
        self._settings = settings

    # -- access --------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._settings[key].value
        except KeyError:
            raise KeyError(f"unknown config key '{key}'") from None

    def get(self, key: str, default: Any = None) -> Any:
        s = self._settings.get(key)
        return default if s is None else s.value

    def source(self, key: str) -> str:
        return self._settings[key].source

    def settings(self) -> list[Setting]:
        return [self._settings[k] for k in sorted(self._settings)]

    def section(self, name: str) -> dict[str, Any]:
        """Keys directly under `name.` as a dict (one level)."""
        prefix = name + "."
        return {k[len(prefix):]: s.value for k, s in self._settings.items()
                if k.startswith(prefix) and "." not in k[len(prefix):]}

    def profile_names(self) -> list[str]:
        return sorted({k.split(".")[1] for k in self._settings if k.startswith(PROFILE_TABLE + ".")})

    def profile(self, name: str) -> dict[str, Any]:
        if name not in self.profile_names():
            raise ConfigError(f"unknown security profile '{name}'",
                              hint="choose one of: " + ", ".join(self.profile_names())
                              + " (or define [profiles." + name + "] in config)")
        return self.section(f"{PROFILE_TABLE}.{name}")

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        return {k[len(f"plugin.{plugin}."):]: s.value for k, s in self._settings.items()
                if k.startswith(f"plugin.{plugin}.")}

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "override") -> "Config":
        """A copy with some values replaced (validated like any other layer)."""
        schema = {k: s.value for k, s in self._settings.items()}
        settings = dict(self._settings)
        for key, value in overrides.items():
            if value is None:
                continue
            settings[key] = Setting(key, _validate(key, value, schema, source), source, key in SECRET_KEYS)
        return Config(settings)

    @property
    def redis_managed(self) -> bool:
        return not self["redis.url"]


def _schema_type_check(key: str, value: Any, default: Any, source: str) -> Any:
    expected = _describe(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError("bad value", source=source, key=key, expected=expected, found=value,
                          hint=f"set {key} to {expected}")
    return value


def _validate(key: str, value: Any, schema: Mapping[str, Any], source: str) -> Any:
    parts = key.split(".")
    if parts[0] in FREE_FORM_TABLES and len(parts) >= 3:
        return value
    schema_key = key
    if parts[0] == PROFILE_TABLE and len(parts) == 3:
        schema_key = f"{PROFILE_TABLE}.default.{parts[2]}"
    if schema_key not in schema:
        raise ConfigError("unknown key", source=source, key=key,
                          hint=_suggest(key, schema) or "see `cronium config show` for the known keys")
    default = schema[schema_key]
    validator = _validator_for(key)
    if validator is None:
        return _schema_type_check(key, value, default, source)
    # A validator decides the accepted types itself (timeout takes 2.5, a size takes 1024 or "1k")
    # and says what it expects in its own words.
    try:
        return validator(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError("bad value", source=source, key=key, expected=str(exc), found=value,
                          hint=f"set {key} to {exc}") from None


def _suggest(key: str, schema: Mapping[str, Any]) -> str | None:
    import difflib
    match = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.75)
    return f"did you mean '{match[0]}'?" if match else None


def _env_value(raw: str, default: Any) -> Any:
    """Parse an environment string into the type of the default."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return raw
    if isinstance(default, (int, float)):
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw
    if isinstance(default, list):
        return [x.strip() for x in raw.split(",") if x.strip()]
    return raw


def env_name(key: str) -> str:
    return "CRONIUM_" + key.replace(".", "_").upper()


#: CRONIUM_* variables that are not configuration keys.
NON_CONFIG_ENV = {"CRONIUM_CONFIG", "CRONIUM_DISABLE_PLUGINS", "CRONIUM_DEBUG", "CRONIUM_SYSTEM_CONFIG",
                  "CRONIUM_STATE_DIR"}


def _config_files(config_file: str | os.PathLike | None, environ: Mapping[str, str], use_user_config: bool,
                  cwd: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """The config files to apply, lowest layer first, each with the source name it is reported under:
    system, user, then `--config FILE` (or `CRONIUM_CONFIG`) or else `./cronium.toml`."""
    files: list[tuple[Path, str]] = []
    if use_user_config:
        spath, upath = system_config_path(), user_config_path()
        if spath.is_file():
            files.append((spath, f"system ({spath})"))
        if upath.is_file():
            files.append((upath, str(upath)))
    if config_file is None:
        config_file = environ.get("CRONIUM_CONFIG") or None
    if config_file is not None:
        files.append((Path(config_file), str(config_file)))
    else:
        local = Path(cwd or os.getcwd()) / "cronium.toml"
        if local.is_file():
            files.append((local, str(local)))
    return files


def load_config(*, config_file: str | os.PathLike | None = None,
                flags: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None,
                use_user_config: bool = True,
                cwd: str | os.PathLike | None = None,
                flag_sources: Mapping[str, str] | None = None) -> Config:
    """Build the effective configuration from all layers (see module docstring).
    `use_user_config=False` skips both the user's and the system config file (hermetic callers).
    `flag_sources` names where a flag value came from as the user gave it (`--set timeout=10`);
    by default a flag is reported as `flag --KEY`. Every bad key and value of every layer is
    reported, in one `ConfigInvalid` when there are several."""
    environ = os.environ if environ is None else environ
    defaults = dict(_flatten(default_data()))
    defaults = {k: v for k, v in defaults.items() if v != {}}
    settings: dict[str, Setting] = {
        k: Setting(k, v, "defaults", k in SECRET_KEYS) for k, v in defaults.items()
    }
    problems: list[ConfigError] = []

    def put(key: str, value: Any, source: str) -> None:
        try:
            settings[key] = Setting(key, _validate(key, value, defaults, source), source, key in SECRET_KEYS)
        except ConfigError as exc:
            problems.append(exc)

    for path, source in _config_files(config_file, environ, use_user_config, cwd):
        try:
            data = _load_toml(path, source)
        except ConfigError as exc:
            problems.append(exc)
            continue
        for key, value in _flatten(data):
            if value != {}:
                put(key, value, source)
    _inherit_profiles(settings, defaults)
    env_keys = {env_name(k): k for k in settings if k.split(".")[0] not in FREE_FORM_TABLES}
    for name, raw in environ.items():
        key = env_keys.get(name)
        if key is not None:
            put(key, _env_value(raw, settings[key].value), f"env {name}")
    for key, value in (flags or {}).items():
        if value is not None:
            put(key, value, (flag_sources or {}).get(key) or f"flag --{key.replace('.', '-').replace('_', '-')}")
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigInvalid(problems)
    cfg = Config(settings)
    _cross_checks(cfg)
    return cfg


def _inherit_profiles(settings: dict[str, Setting], defaults: Mapping[str, Any]) -> None:
    """Profiles defined in files inherit unspecified keys from the default profile."""
    for name in {k.split(".")[1] for k in settings if k.startswith(PROFILE_TABLE + ".")}:
        for dkey in defaults:
            if dkey.startswith(f"{PROFILE_TABLE}.default."):
                pkey = f"{PROFILE_TABLE}.{name}.{dkey.rsplit('.', 1)[1]}"
                if pkey not in settings:
                    settings[pkey] = Setting(pkey, settings[dkey].value, f"profiles.default ({settings[dkey].source})")


def unknown_env(environ: Mapping[str, str] | None = None, config: Config | None = None) -> list[str]:
    """CRONIUM_* environment variables that match no key (probably typos)."""
    environ = os.environ if environ is None else environ
    known = {env_name(s.key) for s in (config.settings() if config else [])} | NON_CONFIG_ENV
    return sorted(n for n in environ if n.startswith("CRONIUM_") and n not in known)


def check_own_folder(folder: Path, *, key: str, source: str | None = None) -> None:
    """Refuse a folder (when it exists) that is not a folder of the user running cronium: another
    user could plant symlinks or hard links in it (used for `logs.dir`)."""
    try:
        held = folder.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(held.st_mode) or held.st_uid != os.geteuid():
        raise ConfigError(f"the folder '{folder}' belongs to uid {held.st_uid}, not to this user (uid {os.geteuid()}), "
                          "or is not a folder: another user could plant links there", source=source, key=key,
                          hint="use a folder of your own (the default is under ~/.local/state)")


def _cross_checks(cfg: Config) -> None:
    pool = ipaddress.ip_network(cfg["network.pool"])
    if cfg["network.subnet_prefix"] <= pool.prefixlen:
        raise ConfigError("bad value", source=cfg.source("network.subnet_prefix"), key="network.subnet_prefix",
                          expected=f"a prefix longer than the pool's /{pool.prefixlen}",
                          found=cfg["network.subnet_prefix"])
    if cfg["token.algorithm"] == "HS256" and len(cfg["token.secret"]) < 32:
        raise ConfigError("token.algorithm is HS256 but token.secret is shorter than 32 characters",
                          source=cfg.source("token.secret"), key="token.secret",
                          hint="set a long random secret, or use the default EdDSA algorithm")
    if cfg["heartbeat.interval"] * 2 > cfg["heartbeat.ttl"]:
        raise ConfigError("bad value", source=cfg.source("heartbeat.interval"), key="heartbeat.interval",
                          expected=f"at most half of heartbeat.ttl ({cfg['heartbeat.ttl']})",
                          found=cfg["heartbeat.interval"])
    for key in ("queue.max_deliveries", "worker.concurrency"):
        if cfg[key] < 1:
            raise ConfigError("bad value", source=cfg.source(key), key=key, expected="a whole number >= 1",
                              found=cfg[key])
    if cfg["plugins_dir"] and not Path(cfg["plugins_dir"]).expanduser().is_dir():
        raise ConfigError(f"the plugins directory '{cfg['plugins_dir']}' does not exist or is not a directory",
                          source=cfg.source("plugins_dir"), key="plugins_dir",
                          hint="create it, or set plugins_dir (CRONIUM_PLUGINS_DIR, --plugins-dir) to the folder "
                               "holding your plugin files, or to \"\" for none")
    if cfg["logs.file"] and cfg["logs.dir"]:
        check_own_folder(Path(cfg["logs.dir"]).expanduser(), key="logs.dir", source=cfg.source("logs.dir"))
    if not 0 <= cfg["metrics.port"] <= 65535:
        raise ConfigError("bad value", source=cfg.source("metrics.port"), key="metrics.port",
                          expected="a TCP port (0 = off)", found=cfg["metrics.port"])
    _pool_checks(cfg)
    if cfg["timeout"] > cfg["limits.max_timeout"]:
        raise ConfigError("bad value", source=cfg.source("timeout"), key="timeout",
                          expected=f"at most limits.max_timeout ({cfg['limits.max_timeout']})", found=cfg["timeout"])
    _check_uid_range(cfg)


def _check_uid_range(cfg: Config) -> None:
    """Per-execution uids must never be a profile's user (the sidecars run as that user)."""
    from .values import uid_range

    low, high = uid_range(cfg["security.uid_range"])
    for name in cfg.profile_names():
        uid = int(cfg[f"{PROFILE_TABLE}.{name}.user"].partition(":")[0])
        if low <= uid <= high:
            raise ConfigError(f"the range holds uid {uid}, the user of profile '{name}' (its sidecars run as it)",
                              source=cfg.source("security.uid_range"), key="security.uid_range",
                              hint=f"choose a range without {uid}, e.g. 200000-265535")


def _pool_checks(cfg: Config) -> None:
    """[pool]: bounds that keep the pool finite and an idle sidecar's deadline label ahead of a job."""
    checks = (("pool.max_idle", 0 <= cfg["pool.max_idle"], "a whole number >= 0"),
              ("pool.demand_window", 0 < cfg["pool.demand_window"] <= 3600, "seconds, > 0 and <= 3600"),
              ("pool.idle_timeout", 0 < cfg["pool.idle_timeout"] <= 1800, "seconds, > 0 and <= 1800"))
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError("bad value", source=cfg.source(key), key=key, expected=expected, found=cfg[key])
