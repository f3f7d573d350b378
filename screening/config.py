"""Settings from a TOML file (/etc/screening/screening.toml) and SCREENING_* environment
variables, which override the file; validated once at start-up.

Every setting has one key in the file (`ari.url`) and one variable (`SCREENING_ARI_URL`:
the key in capitals, dots as underscores). Secrets can also come from a file named by
`<key>_file` / `SCREENING_<KEY>_FILE`, so that they are in neither the environment nor the
process list. A wrong key, type or value stops the start naming where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers

from screening.core.challenge import Settings as ChallengeSettings
from screening.core.errors import ConfigError

DEFAULT_FILE = "/etc/screening/screening.toml"
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"

# Drivers we ship extras for; a bare scheme would make SQLAlchemy look for psycopg2/MySQLdb.
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


@dataclass(frozen=True)
class Config:
    # repr=False: a URL may carry a password; neither may reach a log line or a traceback.
    database_url: str = field(default="sqlite:///screening.db", repr=False)
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "screening"
    ari_password: str = field(default="", repr=False)
    ari_app: str = "screening"
    default_region: str = "US"
    # Longest a call may wait for a decision before it is continued unscreened.
    decision_timeout: float = 0.3
    # Reputation: this many distinct extensions marking a caller as spam within this many
    # days block it for everyone.
    reputation_reports: int = 3
    reputation_days: int = 30
    # The FastAGI door (`screening agi`): loopback by default, FastAGI has no authentication.
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # STIR/SHAKEN (README "Who is really calling"): the CA store signing certificates must
    # chain to; Asterisk's strict x5u rules unless relaxed (the sandbox, with http on
    # loopback); where certificates are cached, and for how long; how long a call waits for
    # a certificate that is not cached yet.
    stir_ca_file: str = SYSTEM_CAS
    stir_relax_x5u: bool = False
    stir_cache_dir: str = ""  # "" = ~/.cache/screening/stir
    stir_cache_max_age: int = 86400
    stir_fetch_wait: float = 1.0
    #: The PBX's own numbers (digits): a PASSporT naming one of them in dest is for us.
    stir_numbers: frozenset[str] = frozenset()
    # Log lines: "text" for people, "json" (one object per line) for journald and shippers.
    log_format: str = "text"
    # /metrics, /healthz, /readyz; None = not served.
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9469)
    # The web console (`screening web`), and the key its session cookies are signed with
    # ("" = a new one at each start: everyone logs in again after a restart).
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    web_secret_key: str = field(default="", repr=False)
    web_secure_cookies: bool = False  # behind a TLS proxy: the cookie only over https
    # The early-media challenge (policies with action challenge; README "The challenge").
    challenge: ChallengeSettings = field(default_factory=ChallengeSettings)

    @property
    def events_url(self) -> str:
        scheme = "wss" if self.ari_url.startswith("https") else "ws"
        host = self.ari_url.split("://", 1)[-1].rstrip("/")
        return f"{scheme}://{host}/ari/events?app={self.ari_app}&subscribeAll=false"


# -- the settings ---------------------------------------------------------------------------


def _region(text: str) -> str:
    region = text.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"expected a two-letter region code like US or DE, got {text!r}")
    return region


def _ari_url(text: str) -> str:
    url = text.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected http://HOST:PORT, got {text!r}")
    return url


def _app(text: str) -> str:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError(f"expected letters, digits, - or _, got {text!r}")
    return text


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ConfigError as e:
        raise ValueError(e.detail) from None


def _metrics_listen(text: str) -> tuple[str, int] | None:
    if text.strip().lower() in ("off", "no", ""):
        return None
    return _listen(text)


def _log_format(text: str) -> str:
    if text.strip().lower() not in ("text", "json"):
        raise ValueError(f"expected text or json, got {text!r}")
    return text.strip().lower()


def _between(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value}")
        return value

    return check


def _sip_code(value: int) -> int:
    if value not in (607, 608):
        raise ValueError(f"expected 607 or 608, got {value}")
    return value


def _prompt(text: str) -> str:
    """Sound files joined by &, as Read() takes them; the app adds digits/N."""
    files = text.strip().split("&")
    if not all(f and all(c.isalnum() or c in "-_/." for c in f) for f in files):
        raise ValueError(
            f"expected sound file names joined by & (like to-call-this-number&vm-press), "
            f"got {text!r}"
        )
    return "&".join(files)


_E164 = re.compile(r"\+[0-9]{6,15}")


def _numbers(text: str) -> tuple[str, ...]:
    """E.164 numbers, comma-separated; kept as digits (how SHAKEN writes dest.tn)."""
    numbers = [n.strip().replace(" ", "").replace("-", "") for n in text.split(",")]
    numbers = [n for n in numbers if n]
    for n in numbers:
        if not _E164.fullmatch(n):
            raise ValueError(
                f"expected E.164 numbers like +15551230000, comma-separated; got {n!r}"
            )
    return tuple(n[1:] for n in numbers)


def _database(text: str) -> str:
    return normalise_database_url(text)


@dataclass(frozen=True)
class Setting:
    key: str  # in the file, e.g. "ari.url"
    kind: type  # str, int or bool, as TOML writes it
    default: Any
    check: Callable[[Any], Any] = lambda v: v
    secret: bool = False  # masked in `config show`; may come from <key>_file
    help: str = ""

    @property
    def env(self) -> str:
        return "SCREENING_" + self.key.replace(".", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", str, "sqlite:///screening.db", _database, True, "SQLAlchemy URL"),
    Setting("default_region", str, "US", _region, help="how to read national numbers"),
    Setting("decision_timeout_ms", int, 300, _between(1, 10000), help="longest rule look-up"),
    Setting("ari.url", str, "http://127.0.0.1:8088", _ari_url, help="Asterisk's HTTP server"),
    Setting("ari.user", str, "screening", help="ARI user (ari.conf)"),
    Setting("ari.password", str, "", secret=True, help="its password"),
    Setting("ari.app", str, "screening", _app, help="Stasis application name"),
    Setting("agi.listen", str, "127.0.0.1:4573", _listen, help="where `screening agi` listens"),
    Setting("reputation.reports", int, 3, _between(1, 1000), help="reports that block a caller"),
    Setting("reputation.days", int, 30, _between(1, 3650), help="how long a report counts"),
    Setting("stir.ca_file", str, SYSTEM_CAS, help="CAs STIR/SHAKEN certificates chain to"),
    Setting("stir.relax_x5u", bool, False, help="fetch x5u over http and private addresses"),
    Setting("stir.cache_dir", str, "", help="where certificates are cached"),
    Setting(
        "stir.cache_max_age_s", int, 86400, _between(0, 30 * 86400), help="certificate cache age"
    ),
    Setting("stir.fetch_wait_ms", int, 1000, _between(1, 10000), help="longest certificate wait"),
    Setting(
        "stir.numbers", str, "", _numbers, help="your DIDs, for PASSporT destinations (a,b,...)"
    ),
    Setting("log.format", str, "text", _log_format, help="text or json"),
    Setting("metrics.listen", str, "127.0.0.1:9469", _metrics_listen, help="/metrics; off: none"),
    Setting("web.listen", str, "127.0.0.1:8089", _listen, help="where `screening web` listens"),
    Setting("web.secret_key", str, "", secret=True, help="signs the console's session cookies"),
    Setting("web.secure_cookies", bool, False, help="session cookie over https only"),
    Setting("challenge.timeout_s", int, 8, _between(1, 60), help="wait for the digit"),
    Setting("challenge.code", int, 608, _sip_code, help="SIP code for a refused challenge"),
    Setting(
        "challenge.remember_days",
        int,
        30,
        _between(0, 3650),
        help="a passed caller's allow entry; 0: none",
    ),
    Setting(
        "challenge.prompt",
        str,
        "to-call-this-number&vm-press",
        _prompt,
        help="sound files before digits/N",
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Loaded:
    """The settings in force and where each came from (for `screening config show`)."""

    config: Config
    values: dict[str, Any]  # key -> checked value
    sources: dict[str, str]  # key -> "default", "file F", "SCREENING_X", ...
    file: str | None  # the file read, if any


def load(environ: Mapping[str, str] | None = None, path: str | None = None) -> Config:
    return load_all(environ, path).config


def load_all(environ: Mapping[str, str] | None = None, path: str | None = None) -> Loaded:
    """The file (`path`, else SCREENING_CONFIG, else /etc/screening/screening.toml when it
    exists), then the environment over it."""
    env = os.environ if environ is None else environ
    chosen = path or env.get("SCREENING_CONFIG")
    file_name = chosen or (DEFAULT_FILE if Path(DEFAULT_FILE).is_file() else None)
    table = _read_file(file_name, required=chosen is not None) if file_name else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raw, where = _raw(setting, env, table, file_name)
        values[setting.key] = _checked(setting, raw, where)
        sources[setting.key] = where
    host, port = values["agi.listen"]
    config = Config(
        database_url=values["database_url"],
        ari_url=values["ari.url"],
        ari_user=values["ari.user"],
        ari_password=values["ari.password"],
        ari_app=values["ari.app"],
        default_region=values["default_region"],
        decision_timeout=values["decision_timeout_ms"] / 1000,
        reputation_reports=values["reputation.reports"],
        reputation_days=values["reputation.days"],
        agi_host=host,
        agi_port=port,
        stir_ca_file=values["stir.ca_file"],
        stir_relax_x5u=values["stir.relax_x5u"],
        stir_cache_dir=values["stir.cache_dir"],
        stir_cache_max_age=values["stir.cache_max_age_s"],
        stir_fetch_wait=values["stir.fetch_wait_ms"] / 1000,
        stir_numbers=frozenset(values["stir.numbers"]),
        log_format=values["log.format"],
        metrics_listen=values["metrics.listen"],
        web_host=values["web.listen"][0],
        web_port=values["web.listen"][1],
        web_secret_key=values["web.secret_key"],
        web_secure_cookies=values["web.secure_cookies"],
        challenge=ChallengeSettings(
            timeout_s=values["challenge.timeout_s"],
            sip_code=values["challenge.code"],
            remember_days=values["challenge.remember_days"],
            prompt=values["challenge.prompt"],
        ),
    )
    return Loaded(config, values, sources, file_name)


def _read_file(name: str, required: bool) -> dict[str, Any]:
    """The file as flat keys ("ari.url"); unknown keys and sections are errors."""
    try:
        with open(name, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(name, "no such file (see --config and SCREENING_CONFIG)") from None
        return {}
    except OSError as e:
        raise ConfigError(name, f"cannot read it: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(name, f"not valid TOML: {e}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                flat[f"{key}.{sub}"] = inner
        else:
            flat[key] = value
    known = set(_BY_KEY) | {f"{s.key}_file" for s in SETTINGS if s.secret}
    for key in flat:
        if key not in known:
            raise ConfigError(
                f"{name}: {key}", f"unknown setting; expected one of {', '.join(sorted(known))}"
            )
    return flat


def _raw(
    setting: Setting, env: Mapping[str, str], table: Mapping[str, Any], file_name: str | None
) -> tuple[Any, str]:
    """The value before checking, and where it came from. The environment beats the file;
    at each level a secret's *_file beats the plain value."""
    if setting.secret and env.get(setting.env + "_FILE"):
        return _secret_file(env[setting.env + "_FILE"], setting.env + "_FILE")
    if setting.env in env:
        return env[setting.env], setting.env
    if setting.secret and f"{setting.key}_file" in table:
        where = f"{file_name}: {setting.key}_file"
        named = table[f"{setting.key}_file"]
        if not isinstance(named, str):
            raise ConfigError(where, f"expected a file name (a string), got {named!r}")
        return _secret_file(named, where)
    if setting.key in table:
        return table[setting.key], f"{file_name}: {setting.key}"
    return setting.default, "default"


def _secret_file(name: str, where: str) -> tuple[str, str]:
    try:
        return Path(name).read_text().strip(), f"{where} ({name})"
    except OSError as e:
        raise ConfigError(where, f"cannot read {name}: {e.strerror}") from None


def _checked(setting: Setting, raw: Any, where: str) -> Any:
    from_env = where.startswith("SCREENING_")
    name = where.split(" (", 1)[0]
    value: Any = raw
    if setting.kind is int:
        if from_env or where == "default":
            text = str(raw).strip()
            if not (text.isascii() and text.isdigit() and len(text) <= 18):
                raise ConfigError(name, f"expected a whole number, got {raw!r}")
            value = int(text)
        elif not isinstance(raw, int) or isinstance(raw, bool):
            raise ConfigError(name, f"expected a whole number, got {raw!r}")
    elif setting.kind is bool:
        if isinstance(raw, str) and (from_env or where == "default"):
            text = raw.strip().lower()
            if text not in ("yes", "no", "true", "false", "1", "0"):
                raise ConfigError(name, f"expected yes or no, got {raw!r}")
            value = text in ("yes", "true", "1")
        elif not isinstance(raw, bool):
            raise ConfigError(name, f"expected true or false, got {raw!r}")
    elif not isinstance(raw, str):
        raise ConfigError(name, f"expected a string, got {raw!r}")
    try:
        return setting.check(value)
    except ValueError as e:
        raise ConfigError(name, str(e)) from None


def normalise_database_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"expected a URL like sqlite:///screening.db or postgresql://host/db, got {url!r}"
        )
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def parse_listen(raw: str, field: str = "SCREENING_AGI_LISTEN") -> tuple[str, int]:
    """HOST:PORT, or [IPv6]:PORT, or PORT alone (on loopback)."""
    text = raw.strip()
    if text.isascii() and text.isdigit():
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    good_port = port.isascii() and port.isdigit() and len(port) <= 5
    if not host or not good_port or not 1 <= int(port) <= 65535 or " " in host:
        raise ConfigError(field, f"expected HOST:PORT like 127.0.0.1:4573, got {raw!r}")
    return host, int(port)


_SECRET_KEY = re.compile(r"(?i)pass|pwd|secret|token|key")


def masked_url(url: str) -> str:
    """A database URL fit to print: the password (whatever it holds: "/", "@", ":") and any
    query value that may be one (?password=, ?sslpassword=, ...) as ***. Read from the
    last "@" before the query, not by URL rules a password may break."""
    scheme, sep, rest = url.partition("://")
    if 0 <= rest.find("?") < rest.rfind("@"):
        # A password holding "?", or a query value holding "@": which part is secret
        # cannot be told, so none of it is shown.
        return f"{scheme}{sep}***"
    before, q, query = rest.partition("?")
    at = before.rfind("@")
    if at >= 0:
        user, colon, _ = before[:at].partition(":")
        before = f"{user}{':***' if colon else ''}@{before[at + 1 :]}"
    pairs = []
    for pair in query.split("&") if q else ():
        key, eq, _ = pair.partition("=")
        pairs.append(f"{key}=***" if eq and _SECRET_KEY.search(key) else pair)
    return f"{scheme}{sep}{before}{q}{'&'.join(pairs)}"


def shown(setting: Setting, value: Any) -> str:
    """A setting's value as `config show` prints it: secrets masked."""
    if setting.secret:
        if not value:
            return "(empty)"
        if setting.key == "database_url":
            # The URL is useful to see; only its password is hidden.
            return masked_url(str(value))
        return "(set, hidden)"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"{value[0]}:{value[1]}"
    if isinstance(value, tuple):
        return ",".join(f"+{n}" for n in value) or "(none)"
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
