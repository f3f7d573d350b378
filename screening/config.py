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
from zoneinfo import ZoneInfo

import phonenumbers

from screening.core.challenge import Settings as ChallengeSettings
from screening.core.errors import ConfigError
from screening.core.wire import LOCATIONS, REDRESS_KINDS
from screening.core.wire import Settings as WireSettings
from screening.core.zones import is_zone_name

DEFAULT_FILE = "/etc/screening/screening.toml"
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"

# Drivers we ship extras for; a bare scheme would make SQLAlchemy look for psycopg2/MySQLdb.
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


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


def _zone(text: str) -> str:
    """An IANA zone name, or "" for the machine's own (resolved where it is used)."""
    name = text.strip()
    # ZoneInfo also takes file paths and odd spellings; only IANA names mean the same zone
    # on every machine.
    if name and not is_zone_name(name):
        raise ValueError(f"expected an IANA time zone like Europe/Berlin or UTC, got {text!r}")
    if name:
        ZoneInfo(name)  # its data must be there (tzdata, when the OS has none)
    return name


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


def _location(text: str) -> str:
    if text not in LOCATIONS:
        raise ValueError(f"expected one of {', '.join(LOCATIONS)} (RFC 8606), got {text!r}")
    return text


#: What a value that goes into a SIP header may hold: printable ASCII without a space,
#: a quote, angle brackets, a backslash or a semicolon (each would end or split the header
#: field or 603+'s quoted text).
_HEADER_SAFE = re.compile(r"[!#-:=?-\[\]-~]+")


def _https_url(text: str) -> str:
    if not text:
        return ""
    if len(text) > 256 or not _HEADER_SAFE.fullmatch(text):
        raise ValueError(
            "expected a URL of at most 256 characters without spaces, quotes, <, >, \\ or ;"
        )
    if not text.startswith("https://") or len(text) <= len("https://"):
        raise ValueError(f"expected an https:// URL, got {text!r}")
    return text


def _one_number(text: str) -> str:
    number = text.strip().replace(" ", "").replace("-", "")
    if number and not _E164.fullmatch(number):
        raise ValueError(f"expected an E.164 number like +15551230000, got {text!r}")
    return number


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def _email(text: str) -> str:
    if text and (len(text) > 254 or not _EMAIL.fullmatch(text)):
        raise ValueError(f"expected an email address like help@example.com, got {text!r}")
    return text


def _words(text: str) -> str:
    if len(text) > 100 or not text.isprintable():
        raise ValueError("expected one line of at most 100 printable characters")
    return text.strip()


def _redress_on(text: str) -> frozenset[str]:
    items = [c.strip() for c in text.split(",") if c.strip()]
    known = ("607", "608", *REDRESS_KINDS)
    if any(item not in known for item in items):
        raise ValueError(
            f"expected codes (607, 608) and rule kinds ({', '.join(REDRESS_KINDS)}), "
            f"comma-separated, or empty for none; got {text!r}"
        )
    return frozenset(items)


def _database(text: str) -> str:
    return normalise_database_url(text)


def _as(
    *names: str, scale: float | None = None, then: Callable[[Any], Any] | None = None
) -> Callable[[Any], dict[str, Any]]:
    """Where a checked value goes in Config: one field (scaled to its unit: ms -> s, or
    made its type), or a pair's two (HOST:PORT). "challenge.x" is Config.challenge.x."""

    def into(value: Any) -> dict[str, Any]:
        if len(names) == 2:
            return dict(zip(names, value, strict=True))
        if scale is not None:
            value = value * scale
        return {names[0]: then(value) if then else value}

    return into


@dataclass(frozen=True)
class Setting:
    """One setting, declared once: its key in the file, its variable, type, default, check,
    where it goes in Config, and its line in the reference (`screening config reference`)."""

    key: str  # in the file, e.g. "ari.url"
    kind: type  # str, int or bool, as TOML writes it
    default: Any
    check: Callable[[Any], Any] = lambda v: v
    secret: bool = False  # masked in `config show`; may come from <key>_file
    help: str = ""
    into: Callable[[Any], dict[str, Any]] | None = None  # None: Config's field named as the key
    docs_default: str | None = None  # the reference's words for a default that is not a value

    @property
    def env(self) -> str:
        return "SCREENING_" + self.key.replace(".", "_").upper()

    def fields(self, value: Any) -> dict[str, Any]:
        return self.into(value) if self.into else {self.key.replace(".", "_"): value}


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        str,
        "sqlite:///screening.db",
        _database,
        secret=True,
        help="SQLAlchemy URL; `postgresql://`, `mysql://`, `mariadb://` use the bundled drivers "
        "(psycopg 3, PyMySQL)",
    ),
    Setting("default_region", str, "US", _region, help="how to read national-format numbers"),
    Setting(
        "decision_timeout_ms",
        int,
        300,
        _between(1, 10000),
        help="longest look-up before a call is continued unscreened",
        into=_as("decision_timeout", scale=1 / 1000),
    ),
    Setting("ari.url", str, "http://127.0.0.1:8088", _ari_url, help="Asterisk's HTTP server"),
    Setting("ari.user", str, "screening", help="user in `ari.conf`"),
    Setting("ari.password", str, "", secret=True, help="its password", docs_default="(empty)"),
    Setting(
        "ari.app",
        str,
        "screening",
        _app,
        help="Stasis application name (first argument of `Stasis()`)",
    ),
    Setting(
        "agi.listen",
        str,
        "127.0.0.1:4573",
        _listen,
        help="where `screening agi` listens (`HOST:PORT`, `[IPv6]:PORT`); FastAGI has no "
        "authentication, so anything but loopback logs a warning",
        into=_as("agi_host", "agi_port"),
    ),
    Setting(
        "reputation.reports",
        int,
        3,
        _between(1, 1000),
        help="distinct extensions whose spam reports block a caller for everyone",
    ),
    Setting("reputation.days", int, 30, _between(1, 3650), help="how long a spam report counts"),
    Setting(
        "stir.ca_file",
        str,
        SYSTEM_CAS,
        help="PEM file of the CAs STIR/SHAKEN signing certificates must chain to (the STI-PA's "
        "roots for a real carrier); unreadable stops the start with this name",
    ),
    Setting(
        "stir.relax_x5u",
        bool,
        False,
        help="`true` also fetches x5u over http, from any port and path, and from private and "
        "loopback addresses: for the sandbox, never for a real trunk",
    ),
    Setting(
        "stir.cache_dir",
        str,
        "",
        help="where fetched certificates are kept across restarts",
        docs_default="`~/.cache/screening/stir`",
    ),
    Setting(
        "stir.cache_max_age_s",
        int,
        86400,
        _between(0, 30 * 86400),
        help="how long a fetched certificate is used before it is fetched again (never past its "
        "expiry)",
        into=_as("stir_cache_max_age"),
    ),
    Setting(
        "stir.fetch_wait_ms",
        int,
        1000,
        _between(1, 10000),
        help="longest a call waits for a certificate that is not cached; after that it is "
        "unverified",
        into=_as("stir_fetch_wait", scale=1 / 1000),
    ),
    Setting(
        "stir.numbers",
        str,
        "",
        _numbers,
        help="your DIDs in E.164, comma-separated: a PASSporT must name one of them or the number"
        " dialled ([STIR/SHAKEN](identity.md#stirshaken))",
        into=_as("stir_numbers", then=frozenset),
        docs_default="(none)",
    ),
    Setting(
        "log.format",
        str,
        "text",
        _log_format,
        help="`json`: one JSON object per line (time, level, logger, message and, for a call, "
        "`channel`, `caller`, `caller_id` as it came, `extension`, `outcome`, `sip_code`, "
        "`rule`, `door`, `ms`, and a challenge's `digit`), for journald and log shippers",
    ),
    Setting(
        "metrics.listen",
        str,
        "127.0.0.1:9469",
        _metrics_listen,
        help="`/metrics`, `/healthz`, `/readyz`; `off` for none. If the port is taken the door "
        "logs a warning and screens calls without metrics",
    ),
    Setting(
        "web.listen",
        str,
        "127.0.0.1:8089",
        _listen,
        help="where `screening web` listens",
        into=_as("web_host", "web_port"),
    ),
    Setting(
        "web.secret_key",
        str,
        "",
        secret=True,
        help="signs the console's session cookies (at least 32 characters)",
        docs_default="(a new one at each start)",
    ),
    Setting(
        "web.secure_cookies",
        bool,
        False,
        help="mark the session cookie `Secure` (behind a TLS proxy)",
    ),
    Setting(
        "web.timezone",
        str,
        "",
        _zone,
        help="the IANA zone (`Europe/Berlin`) the console shows times in, reads the times its "
        "forms take in, and draws its 30-day chart's days in; the API stays in UTC",
        docs_default="the machine's (`TZ`, `/etc/localtime`; else `UTC`)",
    ),
    Setting(
        "challenge.timeout_s",
        int,
        8,
        _between(1, 60),
        help="seconds after the prompt for the digit ([the challenge](challenge.md))",
        into=_as("challenge.timeout_s"),
    ),
    Setting(
        "challenge.code",
        int,
        608,
        _sip_code,
        help="the code a refused challenge gets (607 or 608)",
        into=_as("challenge.sip_code"),
    ),
    Setting(
        "challenge.remember_days",
        int,
        30,
        _between(0, 3650),
        help="how long a passed caller rings without a challenge; 0: ask every time",
        into=_as("challenge.remember_days"),
    ),
    Setting(
        "challenge.prompt",
        str,
        "to-call-this-number&vm-press",
        _prompt,
        help="sound files played before `digits/N`",
        into=_as("challenge.prompt"),
    ),
    Setting(
        "sip.provider_mode",
        bool,
        False,
        help="`true` for a provider blocking on analytics: reputation, feed and policy rejections "
        "answer 603+ (`603 Network Blocked`, ATIS-1000099, as the FCC requires since 25 March "
        "2026), not 607/608; a person's own block stays 607. Needs a `redress.url`, "
        "`redress.phone` or `redress.email` ([607 or 608?](../README.md#607-or-608))",
        into=_as("wire.provider_mode"),
    ),
    Setting(
        "sip.blocked_location",
        str,
        "RLN",
        _location,
        help="where 603+ says the call was blocked (RFC 8606): `RLN` the network serving the "
        "called party, `RPN` a private network serving it, `TN` transit, `LN`, `LPN`",
        into=_as("wire.location"),
    ),
    Setting(
        "redress.name",
        str,
        "",
        _words,
        help="whom a wrongly blocked caller can contact: a name (the jCard's `fn`)",
        into=_as("wire.name"),
    ),
    Setting(
        "redress.organisation",
        str,
        "",
        _words,
        help="the organisation (the jCard's `org`)",
        into=_as("wire.organisation"),
    ),
    Setting(
        "redress.phone",
        str,
        "",
        _one_number,
        help="a phone number in E.164 (jCard `tel`, 603+ `tel=`)",
        into=_as("wire.phone"),
    ),
    Setting(
        "redress.email",
        str,
        "",
        _email,
        help="an email address (jCard `email`, 603+ `email=`)",
        into=_as("wire.email"),
    ),
    Setting(
        "redress.url",
        str,
        "",
        _https_url,
        help="an https page where a caller can ask to be unblocked (jCard `url`, 603+ `url=`)",
        into=_as("wire.url"),
    ),
    Setting(
        "redress.jcard_url",
        str,
        "",
        _https_url,
        help="the public https URL at which `screening web` serves the signed jCard "
        "(`/redress/jcard`, behind your TLS proxy); set, the rejections in `redress.on` carry "
        "`Call-Info: <URL>;purpose=jwscard` (RFC 8688)",
        into=_as("wire.jcard_url"),
        docs_default="(none: no Call-Info)",
    ),
    Setting(
        "redress.on",
        str,
        "608",
        _redress_on,
        help="which rejections carry the jCard: by code (`608`: 607 is the callee's own "
        "verdict; `607,608`) or by the kind of rule that rejected the call (`policy,dnd`; "
        "also `block`, `name-block`, `reputation`, `feed`, `manual-dnd`, `not-an-extension`), "
        "comma-separated; empty for none",
        into=_as("wire.redress_on"),
    ),
    Setting(
        "redress.key_file",
        str,
        "",
        help="PEM file of the EC P-256 key that signs the jCard (ES256)",
        docs_default="(none)",
    ),
    Setting(
        "redress.cert_file",
        str,
        "",
        help="PEM file of that key's certificate, served at `/redress/cert.pem` (the JWS's x5u)",
        docs_default="(none)",
    ),
    Setting(
        "redress.cert_url",
        str,
        "",
        _https_url,
        help="the public URL of that certificate, the JWS's `x5u`",
        docs_default="`cert.pem` beside `redress.jcard_url`",
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
    config = Config(**_config_fields(values))
    if config.wire.provider_mode and not config.wire.has_contact:
        raise ConfigError(
            sources["sip.provider_mode"],
            "603+ must name where to seek redress: set redress.url, redress.phone or "
            "redress.email too",
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
    if isinstance(value, frozenset):  # redress.on's codes and rule kinds, codes first
        return ",".join(sorted(value, key=lambda v: (not v.isdigit(), v))) or "(none)"
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# -- what the settings make (after every check they use is defined) ---------------------


def _config_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Config's fields from checked values by key: each setting's, the challenge's together."""
    fields: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {"challenge": {}, "wire": {}}
    for setting in SETTINGS:
        for name, value in setting.fields(values[setting.key]).items():
            part, dot, inner = name.partition(".")
            if dot:
                parts[part][inner] = value
            else:
                fields[name] = value
    return {
        **fields,
        "challenge": ChallengeSettings(**parts["challenge"]),
        "wire": WireSettings(**parts["wire"]),
    }


_DEFAULT = _config_fields({s.key: s.check(s.default) for s in SETTINGS})


@dataclass(frozen=True)
class Config:
    """The settings in force, in the units the code uses. Defaults are SETTINGS' own."""

    # repr=False: a URL may carry a password; neither may reach a log line or a traceback.
    database_url: str = field(default=_DEFAULT["database_url"], repr=False)
    ari_url: str = _DEFAULT["ari_url"]
    ari_user: str = _DEFAULT["ari_user"]
    ari_password: str = field(default=_DEFAULT["ari_password"], repr=False)
    ari_app: str = _DEFAULT["ari_app"]
    default_region: str = _DEFAULT["default_region"]
    decision_timeout: float = _DEFAULT["decision_timeout"]  # seconds
    reputation_reports: int = _DEFAULT["reputation_reports"]
    reputation_days: int = _DEFAULT["reputation_days"]
    agi_host: str = _DEFAULT["agi_host"]
    agi_port: int = _DEFAULT["agi_port"]
    stir_ca_file: str = _DEFAULT["stir_ca_file"]
    stir_relax_x5u: bool = _DEFAULT["stir_relax_x5u"]
    stir_cache_dir: str = _DEFAULT["stir_cache_dir"]  # "" = ~/.cache/screening/stir
    stir_cache_max_age: int = _DEFAULT["stir_cache_max_age"]  # seconds
    stir_fetch_wait: float = _DEFAULT["stir_fetch_wait"]  # seconds
    #: The PBX's own numbers (digits): a PASSporT naming one of them in dest is for us.
    stir_numbers: frozenset[str] = _DEFAULT["stir_numbers"]
    log_format: str = _DEFAULT["log_format"]
    metrics_listen: tuple[str, int] | None = _DEFAULT["metrics_listen"]  # None: not served
    web_host: str = _DEFAULT["web_host"]
    web_port: int = _DEFAULT["web_port"]
    # "" = a new key at each start: everyone logs in again after a restart.
    web_secret_key: str = field(default=_DEFAULT["web_secret_key"], repr=False)
    web_secure_cookies: bool = _DEFAULT["web_secure_cookies"]
    web_timezone: str = _DEFAULT["web_timezone"]  # "" = the machine's zone
    challenge: ChallengeSettings = field(default_factory=lambda: _DEFAULT["challenge"])
    wire: WireSettings = field(default_factory=lambda: _DEFAULT["wire"])
    redress_key_file: str = _DEFAULT["redress_key_file"]
    redress_cert_file: str = _DEFAULT["redress_cert_file"]
    redress_cert_url: str = _DEFAULT["redress_cert_url"]  # "" = beside the jCard URL

    @property
    def events_url(self) -> str:
        scheme = "wss" if self.ari_url.startswith("https") else "ws"
        host = self.ari_url.split("://", 1)[-1].rstrip("/")
        return f"{scheme}://{host}/ari/events?app={self.ari_app}&subscribeAll=false"


def reference() -> str:
    """The settings as a Markdown table: the one in docs/configuration.md, and what
    `screening config reference` prints."""
    rows = ["| key (file) | variable | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = s.docs_default or f"`{str(s.default).lower() if s.kind is bool else s.default}`"
        secret = f"; or from a file: `{s.key}_file`, `{s.env}_FILE`" if s.secret else ""
        rows.append(f"| `{s.key}` | `{s.env}` | {default} | {s.help}{secret} |")
    return "\n".join(rows) + "\n"
