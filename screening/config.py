"""Settings from SCREENING_* environment variables, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from screening.core.errors import ConfigError

# Drivers we ship extras for; a bare scheme would make SQLAlchemy look for psycopg2/MySQLdb.
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Config:
    database_url: str = "sqlite:///screening.db"
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "screening"
    # repr=False: the password must never reach a log line or a traceback.
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

    @property
    def events_url(self) -> str:
        scheme = "wss" if self.ari_url.startswith("https") else "ws"
        host = self.ari_url.split("://", 1)[-1].rstrip("/")
        return f"{scheme}://{host}/ari/events?app={self.ari_app}&subscribeAll=false"


def normalise_database_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            "SCREENING_DATABASE_URL",
            f"expected a URL like sqlite:///screening.db or postgresql://host/db, got {url!r}",
        )
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def load(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    region = env.get("SCREENING_DEFAULT_REGION", "US").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            "SCREENING_DEFAULT_REGION",
            f"expected a two-letter region code like US or DE, got {region!r}",
        )
    ari_url = env.get("SCREENING_ARI_URL", "http://127.0.0.1:8088").rstrip("/")
    if not ari_url.startswith(("http://", "https://")):
        raise ConfigError("SCREENING_ARI_URL", f"expected http://HOST:PORT, got {ari_url!r}")
    timeout_ms = env.get("SCREENING_DECISION_TIMEOUT_MS", "300")
    try:
        timeout = int(timeout_ms) / 1000
    except ValueError:
        timeout = -1
    if not 0 < timeout <= 10:
        raise ConfigError(
            "SCREENING_DECISION_TIMEOUT_MS",
            f"expected milliseconds between 1 and 10000, got {timeout_ms!r}",
        )
    password = env.get("SCREENING_ARI_PASSWORD", "")
    password_file = env.get("SCREENING_ARI_PASSWORD_FILE")
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as e:
            raise ConfigError(
                "SCREENING_ARI_PASSWORD_FILE", f"cannot read {password_file}: {e.strerror}"
            ) from None
    app = env.get("SCREENING_ARI_APP", "screening")
    if not app or not all(c.isalnum() or c in "-_" for c in app):
        raise ConfigError("SCREENING_ARI_APP", f"expected letters, digits, - or _, got {app!r}")
    reports = _int(env, "SCREENING_REPUTATION_REPORTS", 3, 1, 1000)
    days = _int(env, "SCREENING_REPUTATION_DAYS", 30, 1, 3650)
    agi_host, agi_port = parse_listen(env.get("SCREENING_AGI_LISTEN", "127.0.0.1:4573"))
    relax = env.get("SCREENING_STIR_RELAX_X5U", "no").strip().lower()
    if relax not in ("yes", "no", "true", "false", "1", "0"):
        raise ConfigError("SCREENING_STIR_RELAX_X5U", f"expected yes or no, got {relax!r}")
    fetch_wait_ms = _int(env, "SCREENING_STIR_FETCH_WAIT_MS", 1000, 1, 10000)
    return Config(
        database_url=normalise_database_url(
            env.get("SCREENING_DATABASE_URL", "sqlite:///screening.db")
        ),
        ari_url=ari_url,
        ari_user=env.get("SCREENING_ARI_USER", "screening"),
        ari_password=password,
        ari_app=app,
        default_region=region,
        decision_timeout=timeout,
        reputation_reports=reports,
        reputation_days=days,
        agi_host=agi_host,
        agi_port=agi_port,
        stir_ca_file=env.get("SCREENING_STIR_CA_FILE", SYSTEM_CAS),
        stir_relax_x5u=relax in ("yes", "true", "1"),
        stir_cache_dir=env.get("SCREENING_STIR_CACHE_DIR", ""),
        stir_cache_max_age=_int(env, "SCREENING_STIR_CACHE_MAX_AGE_S", 86400, 0, 30 * 86400),
        stir_fetch_wait=fetch_wait_ms / 1000,
    )


def parse_listen(raw: str, field: str = "SCREENING_AGI_LISTEN") -> tuple[str, int]:
    """HOST:PORT, or [IPv6]:PORT, or PORT alone (on loopback)."""
    text = raw.strip()
    if text.isdigit():
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or " " in host:
        raise ConfigError(field, f"expected HOST:PORT like 127.0.0.1:4573, got {raw!r}")
    return host, int(port)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, str(default))
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise ConfigError(name, f"expected a whole number from {low} to {high}, got {raw!r}")
    return int(raw)
