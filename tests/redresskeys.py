"""Keys and self-signed certificates for the redress jCard, written to files the way an admin
makes them with openssl (docs/admin-guide.md): EC P-256 by default, and the wrong kinds."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    key_file: Path
    cert_file: Path
    cert: x509.Certificate


def key_pem(key: CertificateIssuerPrivateKeyTypes, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def certificate(
    key: CertificateIssuerPrivateKeyTypes,
    cn: str = "Example PBX redress",
    valid_days: tuple[int, int] = (-1, 365),
) -> x509.Certificate:
    """A self-signed certificate for `key`, as `openssl req -x509 -new -key` makes one."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=valid_days[0]))
        .not_valid_after(now + timedelta(days=valid_days[1]))
        .sign(key, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pair(folder: Path, valid_days: tuple[int, int] = (-1, 365)) -> Pair:
    """redress.key and redress.pem in `folder`: a new P-256 key and its certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(key, valid_days=valid_days)
    key_file, cert_file = folder / "redress.key", folder / "redress.pem"
    key_file.write_bytes(key_pem(key))
    cert_file.write_bytes(cert_pem(cert))
    return Pair(key_file, cert_file, cert)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verified(jws: str, cert: x509.Certificate) -> tuple[bytes, dict[str, Any]]:
    """(the header's bytes as sent, the payload) of a compact ES256 JWS, after checking its
    signature with the certificate's key (cryptography raises InvalidSignature if wrong)."""
    head, body, signature = jws.split(".")
    raw = _unb64(signature)
    assert len(raw) == 64, f"an ES256 signature is r||s, 64 bytes; got {len(raw)}"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, f"{head}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    payload: dict[str, Any] = json.loads(_unb64(body))
    return _unb64(head), payload
