"""Test certificates for STIR/SHAKEN: a CA and signing certificates made in memory, the way
scripts/sandbox makes them with openssl (EC P-256, TNAuthList with an SPC first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")
# SEQUENCE { [0] EXPLICIT IA5String "1234" }: one entry, a service provider code.
SPC_FIRST = bytes.fromhex("3008a006160431323334")
# SEQUENCE { [2] EXPLICIT IA5String "1234" }: a telephone number first, no SPC.
TN_FIRST = bytes.fromhex("3008a206160431323334")


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    issuer: Issued | None,
    *,
    ca: bool,
    tn_auth: bytes | None = None,
    valid_days: tuple[int, int] = (-1, 365),
) -> Issued:
    """A certificate for a new P-256 key, signed by `issuer` (itself when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=valid_days[0]))
        .not_valid_after(now + timedelta(days=valid_days[1]))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if tn_auth is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(TN_AUTH_LIST, tn_auth), False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def make_ca(cn: str = "screening test CA") -> Issued:
    return _issue(cn, None, ca=True)


def make_intermediate(ca: Issued, cn: str = "screening test intermediate") -> Issued:
    return _issue(cn, ca, ca=True)


def make_signer(
    ca: Issued,
    *,
    tn_auth: bytes | None = SPC_FIRST,
    valid_days: tuple[int, int] = (-1, 30),
    cn: str = "screening test signer",
) -> Issued:
    """A signing certificate as an STI-CA issues it: not a CA, TNAuthList with an SPC."""
    return _issue(cn, ca, ca=False, tn_auth=tn_auth, valid_days=valid_days)


def make_tls_server(ca: Issued, name: str) -> Issued:
    """A web server's certificate for `name` (subjectAltName DNS), signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)
