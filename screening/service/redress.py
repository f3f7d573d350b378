"""Whom a wrongly blocked caller can contact: the jCard (RFC 7095) a 608 points to with
`Call-Info: <URL>;purpose=jwscard` (RFC 8688), signed as a compact JWS (RFC 7515, ES256)
with the admin's key, whose certificate is the JWS's x5u. `screening web` serves both;
`screening redress show` prints them; problems() says what stands in the way.

The key and certificate are read and checked once (Redress, at start-up); the signature is
kept and made again every RESIGN_S seconds, because a UAC refuses a jCard whose iat is old
(RFC 8688: "on the order of a minute")."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from screening.config import Config
from screening.core.errors import ConfigError
from screening.core.wire import Settings, blocked_reason

log = logging.getLogger(__name__)

#: A served JWS is re-signed once its iat is this old: well inside RFC 8688's minute.
RESIGN_S = 30.0
#: Longest key or certificate file read: a PEM chain of a few certificates is 2-8 KB.
MAX_PEM_BYTES = 64 * 1024
#: The jCard's fn when neither a name nor an organisation is set (fn is required).
FALLBACK_NAME = "Call screening"
MEDIA_TYPE = "vcard+json"


def jcard(settings: Settings) -> list[Any]:
    """The jCard (RFC 7095) of the redress contact: fn always, the rest when set."""
    name = settings.name or settings.organisation or FALLBACK_NAME
    props: list[list[Any]] = [["version", {}, "text", "4.0"], ["fn", {}, "text", name]]
    if settings.organisation:
        props.append(["org", {}, "text", settings.organisation])
    if settings.phone:
        props.append(["tel", {"type": "work"}, "uri", f"tel:{settings.phone}"])
    if settings.email:
        props.append(["email", {"type": "work"}, "text", settings.email])
    if settings.url:
        props.append(["url", {"type": "work"}, "uri", settings.url])
    return ["vcard", props]


def configured(config: Config) -> bool:
    """Redress is asked for: rejections point to a jCard URL."""
    return bool(config.wire.jcard_url)


def cert_url(config: Config) -> str:
    """The JWS's x5u: redress.cert_url, else `cert.pem` in place of the jCard URL's last
    path segment (where `screening web` serves it); "" when neither is set."""
    if config.redress_cert_url or not config.wire.jcard_url:
        return config.redress_cert_url
    parts = urlsplit(config.wire.jcard_url)
    folder = parts.path.rpartition("/")[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{folder}/cert.pem", "", ""))


def header(config: Config) -> dict[str, str]:
    """The JWS protected header RFC 8688 asks for, in this order."""
    return {"alg": "ES256", "typ": MEDIA_TYPE, "x5u": cert_url(config)}


def signed_jcard(config: Config, now: float, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    """The compact JWS of the jCard, issued at `now` (seconds since the epoch). `key` is
    the one Redress loaded at start; without it the files are read and checked now (for
    one-off use: the CLI, tests)."""
    if key is None:
        key = _load(config, now).key
    payload = {"iat": int(now), "jcard": jcard(config.wire)}
    signing_input = f"{_b64(_json(header(config)))}.{_b64(_json(payload))}"
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    # JWS wants ES256 as r and s, 32 bytes each (RFC 7518 §3.4), not the DER sequence.
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Redress:
    """The jCard as `screening web` serves it, made once at start-up: the key and the
    certificate are read and checked here (ConfigError naming the setting otherwise), so
    that a request costs one signature every RESIGN_S at most and nothing else."""

    def __init__(self, config: Config, now: float | None = None) -> None:
        now = datetime.now(UTC).timestamp() if now is None else now
        refused = _settings_problems(config)
        if refused:
            raise refused[0]
        loaded = _load(config, now)
        self.config = config
        self.cert_url = cert_url(config)
        self.certificate = loaded.certs[0]
        #: What /redress/cert.pem serves: the file's certificates, written again, so that
        #: a private key someone kept in the same file is never served.
        self.cert_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in loaded.certs)
        self._key = loaded.key
        self._signed: tuple[int, str] | None = None
        self._warned_expiry = False

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def jws(self, now: float) -> str:
        """The signed jCard, at most RESIGN_S old. Two requests racing may both sign: both
        results are valid, so no lock."""
        signed = self._signed
        if signed is None or not 0 <= now - signed[0] < RESIGN_S:
            signed = (int(now), signed_jcard(self.config, now, self._key))
            self._signed = signed
            self._check_expiry(now)
        return signed[1]

    def _check_expiry(self, now: float) -> None:
        # Checked at start; a console runs for months, and a UAC refuses a jCard whose
        # certificate has expired, so say so once in the log.
        if not self._warned_expiry and now > self.not_after.timestamp():
            self._warned_expiry = True
            log.warning(
                "redress.cert_file: %s expired on %s: callers' networks refuse the jCard",
                self.config.redress_cert_file,
                _day(self.not_after),
            )


def load(config: Config) -> Redress | None:
    """The Redress to serve, or None when none is asked for (no redress.jcard_url)."""
    return Redress(config) if configured(config) else None


def problems(config: Config, now: float | None = None) -> list[str]:
    """What stands between these settings and a jCard a caller's network can verify, each
    naming its setting; [] when all is well or nothing of redress is set."""
    now = datetime.now(UTC).timestamp() if now is None else now
    found = [str(e) for e in _settings_problems(config)]
    key_file, cert_file = config.redress_key_file, config.redress_cert_file
    try:
        if key_file and cert_file:
            _load(config, now)
        elif key_file:
            _read_key(key_file)
        elif cert_file:
            _in_date(cert_file, _read_certs(cert_file)[0], now)
    except ConfigError as e:
        found.append(str(e))
    return found


# -- what `screening redress show` prints ---------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What a caller's network gets from these settings."""

    configured: bool
    call_info: str | None  # the Call-Info header's value
    carried_on: list[str]  # the codes and rule kinds that carry it (redress.on)
    provider_mode: bool
    reason_603: str  # 603+'s Reason header
    jcard: list[Any]
    header: dict[str, str]
    jws: str | None  # signed now, when the key and certificate load
    certificate: dict[str, str] | None
    problems: list[str]

    @property
    def usable(self) -> bool:
        """False when redress is asked for and a caller's network could not verify it."""
        return not (self.configured and self.problems)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def report(config: Config, now: float) -> Report:
    found = problems(config, now)
    wire = config.wire
    signed: Redress | None = None
    if configured(config) and not found:
        signed = Redress(config, now)
    return Report(
        configured=configured(config),
        call_info=f"<{wire.jcard_url}>;purpose=jwscard" if wire.jcard_url else None,
        carried_on=sorted(wire.redress_on, key=lambda v: (not v.isdigit(), v)),
        provider_mode=wire.provider_mode,
        reason_603=blocked_reason(wire),
        jcard=jcard(wire),
        header=header(config),
        jws=signed.jws(now) if signed else None,
        certificate=_described(signed) if signed else None,
        problems=found,
    )


def _described(redress: Redress) -> dict[str, str]:
    cert = redress.certificate
    return {
        "subject": cert.subject.rfc4514_string(),
        "not_after": _day(cert.not_valid_after_utc),
        "x5u": redress.cert_url,
    }


# -- checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    key: ec.EllipticCurvePrivateKey
    certs: list[x509.Certificate]  # the signing certificate first


def _settings_problems(config: Config) -> list[ConfigError]:
    """What is missing or wrong in the settings themselves, before any file is read."""
    wire = config.wire
    files = config.redress_key_file or config.redress_cert_file or config.redress_cert_url
    if not wire.jcard_url and not files:
        return []  # nothing of redress is set: nothing is missing
    found = []
    if not wire.jcard_url:
        found.append(
            ConfigError(
                "redress.jcard_url",
                "not set: no rejection points to the jCard, so its key and certificate go unused",
            )
        )
    if not wire.has_contact:
        found.append(
            ConfigError(
                "redress.phone",
                "none of redress.phone, redress.email or redress.url is set: the jCard must "
                "name a way to reach you (RFC 8688: URL, EMAIL, TEL or ADR)",
            )
        )
    for setting, value, use in (
        ("redress.key_file", config.redress_key_file, "the jCard cannot be signed"),
        ("redress.cert_file", config.redress_cert_file, "there is no certificate for its x5u"),
    ):
        if not value:
            found.append(ConfigError(setting, f"not set: {use}"))
    url = cert_url(config)
    if url and not url.startswith("https://"):
        found.append(ConfigError("redress.cert_url", f"{url!r}: expected an https:// URL"))
    return found


def _load(config: Config, now: float) -> _Loaded:
    """The key and the certificates, each checked: ConfigError naming the setting."""
    key_file, cert_file = config.redress_key_file, config.redress_cert_file
    for setting, value in (("redress.key_file", key_file), ("redress.cert_file", cert_file)):
        if not value:
            raise ConfigError(setting, "not set")
    key = _read_key(key_file)
    certs = _read_certs(cert_file)
    if certs[0].public_key() != key.public_key():
        raise ConfigError(
            "redress.cert_file",
            f"{cert_file}: its public key is not that of redress.key_file ({key_file})",
        )
    _in_date(cert_file, certs[0], now)
    return _Loaded(key, certs)


def _read(setting: str, path: str) -> bytes:
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as e:
        raise ConfigError(setting, f"{path}: cannot read it: {e.strerror or e}") from None
    if len(data) > MAX_PEM_BYTES:
        raise ConfigError(setting, f"{path}: larger than {MAX_PEM_BYTES // 1024} KB: not PEM")
    return data


def _read_key(path: str) -> ec.EllipticCurvePrivateKey:
    wanted = "not an EC P-256 private key"
    try:
        key = serialization.load_pem_private_key(_read("redress.key_file", path), None)
    except TypeError:  # what cryptography raises for a key with a passphrase
        raise ConfigError(
            "redress.key_file", f"{path}: encrypted: screening needs it without a passphrase"
        ) from None
    except ValueError:
        raise ConfigError("redress.key_file", f"{path}: {wanted} in PEM") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("redress.key_file", f"{path}: {wanted} (ES256 needs one)")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("redress.key_file", f"{path}: {wanted} (its curve is {key.curve.name})")
    return key


def _read_certs(path: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(_read("redress.cert_file", path))
    except ValueError:
        raise ConfigError("redress.cert_file", f"{path}: not a PEM certificate") from None


def _in_date(path: str, cert: x509.Certificate, now: float) -> None:
    if now > cert.not_valid_after_utc.timestamp():
        raise ConfigError(
            "redress.cert_file", f"{path}: expired on {_day(cert.not_valid_after_utc)}"
        )
    if now < cert.not_valid_before_utc.timestamp():
        raise ConfigError(
            "redress.cert_file", f"{path}: not valid until {_day(cert.not_valid_before_utc)}"
        )


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
