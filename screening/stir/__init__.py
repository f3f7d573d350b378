"""STIR/SHAKEN at the edge: fetch the certificate a PASSporT names (x5u), check it chains to
the admin's CA store, is in date and carries a TNAuthList, and check the ES256 signature.

The dialplan hands us the raw Identity and Date headers; Asterisk's own verification is not
used because reading its result after a malformed x5u stops Asterisk 22.10.1 (docs/identity.md).
Fetching (stir.fetch) is at least as strict as Asterisk's by default. Certificates are
checked before anything is cached, then kept in memory and on disk until their cache age or
expiry, and failures (apart, so they never push a good one out) for a minute, so that a
flood of calls naming one bad URL costs one fetch. Every cache is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from screening.core.identity import MAX_AGE, Destination, Passport, Result, parse_passport
from screening.stir.fetch import FETCH_TIMEOUT, MAX_CERT_BYTES, Fetcher, Refused, x5u_problem

__all__ = ["FETCH_TIMEOUT", "MAX_CERT_BYTES", "SYSTEM_CAS", "Verifier", "load_cas", "x5u_problem"]

log = logging.getLogger(__name__)

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")
#: How long a failed fetch or an untrusted certificate is remembered.
FAILURE_TTL = 60.0
#: Longest chain walked from the signing certificate to a trusted one.
MAX_CHAIN = 5
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
#: Certificates kept in memory, trusted ones and failures apart; files in the disk cache.
MAX_CERTS = 1000
MAX_FAILURES = 1000
MAX_DISK_FILES = 1000


@dataclass(frozen=True)
class _Cert:
    key: ec.EllipticCurvePublicKey | None  # None: this URL failed; see `failure`
    until: float  # time.time() after which it is fetched again
    failure: Result | None = None


def load_cas(path: str) -> list[x509.Certificate]:
    """The CA store: a PEM file of one or more certificates."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


class Verifier:
    """Checks Identity headers; one per process, shared by all calls."""

    def __init__(
        self,
        cas: list[x509.Certificate],
        *,
        relaxed: bool = False,
        cache_dir: Path | None = None,
        cache_max_age: float = 86400.0,
        fetch_wait: float = 1.0,
        fetch_timeout: float = FETCH_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._cas = {ca.subject.public_bytes(): ca for ca in cas}
        self._cache_dir = cache_dir
        self._max_age = cache_max_age
        self.fetch_wait = fetch_wait
        self._certs: OrderedDict[str, _Cert] = OrderedDict()  # trusted, most recent last
        self._failures: OrderedDict[str, _Cert] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[_Cert]] = {}
        self._fetcher = Fetcher(relaxed, fetch_timeout, tls)
        self._disk_warned = False
        self._replays = ReplayCache()

    @property
    def relaxed(self) -> bool:
        return self._fetcher.relaxed

    def cached(self) -> tuple[int, int]:
        """(trusted certificates, failures) held in memory."""
        return len(self._certs), len(self._failures)

    async def aclose(self) -> None:
        for task in self._fetching.values():
            task.cancel()
        await self._fetcher.aclose()

    async def check(
        self,
        identity: str,
        date: str,
        caller: str,
        now: datetime,
        to: Destination | None = None,
    ) -> tuple[Result, str | None]:
        """(result, attestation) for one call's Identity and Date headers, for a call to
        `to` (None: the destination is not checked)."""
        passport = parse_passport(identity, caller, date, now, to)
        if isinstance(passport, Result):
            return passport, None
        cert = await self._cert(passport.x5u)
        if cert.key is None:
            return cert.failure or Result.CERT_RETRIEVAL, passport.attest
        result = _signature(passport, cert.key)
        if result is Result.SUCCESS and not self._replays.first_use(passport, now):
            log.warning(
                "STIR/SHAKEN: a PASSporT from %s already used for another call within its "
                "%d s: replayed",
                passport.orig_tn[:32],
                MAX_AGE.total_seconds(),
            )
            return Result.REPLAYED, passport.attest
        return result, passport.attest

    async def _cert(self, url: str) -> _Cert:
        now = time.time()
        cached = self._certs.get(url) or self._failures.get(url)
        if cached is not None and cached.until > now:
            if cached.key is not None:
                self._certs.move_to_end(url)
            return cached
        task = self._fetching.get(url)
        if task is None:
            # One fetch per URL however many calls wait for it; it finishes (and fills the
            # cache) even when the calls that started it stopped waiting.
            task = asyncio.create_task(self._load(url))
            self._fetching[url] = task
            task.add_done_callback(lambda _: self._fetching.pop(url, None))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.fetch_wait)
        except TimeoutError:
            return _Cert(None, 0.0, Result.CERT_RETRIEVAL)

    async def _load(self, url: str) -> _Cert:
        now = time.time()
        pem = self._from_disk(url, now)
        try:
            fetched = pem is None
            if pem is None:
                pem = await self._fetcher.fetch(url)
            chain = x509.load_pem_x509_certificates(pem)
            key, not_after = self._trusted(chain, datetime.now(UTC))
        except (Refused, ValueError) as e:  # ValueError: not PEM
            result = e.result if isinstance(e, Refused) else Result.CERT_RETRIEVAL
            log.warning("STIR/SHAKEN certificate %s refused: %s (%s)", url[:200], e, result)
            if isinstance(e, Refused) and e.busy:
                return _Cert(None, 0.0, result)  # the next call may try again
            self._forget_disk(url)
            failed = _Cert(None, now + FAILURE_TTL, result)
            return self._remember(self._failures, MAX_FAILURES, url, failed)
        # Only now, trusted, is it kept: junk never reaches the disk or pushes a good one out.
        if fetched:
            self._to_disk(url, pem)
        self._fetcher.trusted(url)
        self._failures.pop(url, None)
        cert = _Cert(key, min(now + self._max_age, not_after))
        return self._remember(self._certs, MAX_CERTS, url, cert)

    @staticmethod
    def _remember(cache: OrderedDict[str, _Cert], most: int, url: str, cert: _Cert) -> _Cert:
        cache[url] = cert
        cache.move_to_end(url)
        while len(cache) > most:
            cache.popitem(last=False)
        return cert

    def _trusted(
        self, chain: list[x509.Certificate], now: datetime
    ) -> tuple[ec.EllipticCurvePublicKey, float]:
        """The signing key, if the chain leads to a CA in the store; and when the first
        certificate on the way expires."""
        if not chain:
            raise Refused(Result.CERT_RETRIEVAL, "no certificate in the response")
        leaf = chain[0]
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise Refused(Result.CERT_NOT_TRUSTED, "the signing key is not EC P-256")
        if not _spc_first(leaf):
            raise Refused(Result.CERT_NO_TN_AUTH, "no TNAuthList with an SPC first")
        not_after = min(c.not_valid_after_utc for c in chain)
        cert = leaf
        for _ in range(MAX_CHAIN):
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise Refused(Result.CERT_DATE, f"{cert.subject.rfc4514_string()} out of date")
            issuer = self._cas.get(cert.issuer.public_bytes()) or next(
                (c for c in chain[1:] if c.subject == cert.issuer and c is not cert), None
            )
            if issuer is None:
                break
            if issuer.subject.public_bytes() not in self._cas and not _is_ca(issuer):
                raise Refused(Result.CERT_NOT_TRUSTED, "a certificate in the chain is no CA")
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise Refused(
                    Result.CERT_NOT_TRUSTED, "a signature in the chain is wrong"
                ) from None
            if issuer.subject.public_bytes() in self._cas:
                ca = self._cas[issuer.subject.public_bytes()]
                if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
                    raise Refused(Result.CERT_DATE, "the CA certificate is out of date")
                return key, min(not_after, ca.not_valid_after_utc).timestamp()
            cert = issuer
        raise Refused(Result.CERT_NOT_TRUSTED, "the chain does not lead to a trusted CA")

    def _disk_path(self, url: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".pem")

    def _from_disk(self, url: str, now: float) -> bytes | None:
        path = self._disk_path(url)
        try:
            if path is not None and now - path.stat().st_mtime < self._max_age:
                return path.read_bytes()[: MAX_CERT_BYTES + 1]
        except OSError:
            pass
        return None

    def _to_disk(self, url: str, pem: bytes) -> None:
        path = self._disk_path(url)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pem)
            tmp.replace(path)  # never a half-written file under the real name
            self._prune_disk(path.parent)
        except OSError as e:
            if not self._disk_warned:
                log.warning("cannot cache STIR/SHAKEN certificates in %s: %s", path.parent, e)
                self._disk_warned = True

    @staticmethod
    def _prune_disk(folder: Path) -> None:
        """At most MAX_DISK_FILES certificates on disk: the oldest go first."""
        files = sorted(folder.glob("*.pem"), key=lambda f: f.stat().st_mtime)
        for old in files[: max(0, len(files) - MAX_DISK_FILES)]:
            old.unlink(missing_ok=True)

    def _forget_disk(self, url: str) -> None:
        """A cached file that no longer checks out (expired, or left by an older version
        that cached before checking) goes."""
        path = self._disk_path(url)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


class ReplayCache:
    """PASSporTs that verified, each kept until its freshness window has passed (after
    which it is refused as stale anyway): the same token is accepted once (RFC 8224 s.12.1).
    Only verified tokens enter, so no one without a carrier's key can fill it; it is bounded
    all the same, the oldest going first. Per process: each door keeps its own."""

    def __init__(self, most: int = 100_000) -> None:
        self._most = most
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # token -> until (timestamp)

    def first_use(self, passport: Passport, now: datetime) -> bool:
        t = now.timestamp()
        while self._seen and next(iter(self._seen.values())) < t:
            self._seen.popitem(last=False)
        # What was signed, not the signature: an ECDSA signature (r, s) has a twin
        # (r, n - s) that verifies as well, and would pass for a new token.
        key = hashlib.sha256(passport.signing_input).digest()
        if key in self._seen:
            return False
        # Fresh for MAX_AGE either side of iat: remembered well past the later edge.
        self._seen[key] = passport.iat + 2 * MAX_AGE.total_seconds()
        while len(self._seen) > self._most:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


def _signature(passport: Passport, key: ec.EllipticCurvePublicKey) -> Result:
    if len(passport.signature) != 64:
        return Result.SIGNATURE
    r = int.from_bytes(passport.signature[:32], "big")
    s = int.from_bytes(passport.signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), passport.signing_input, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return Result.SIGNATURE
    return Result.SUCCESS


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _spc_first(cert: x509.Certificate) -> bool:
    """A TNAuthList (RFC 8226) whose first entry is a service provider code: DER
    SEQUENCE { [0] EXPLICIT ... } as the extension's raw value."""
    try:
        ext = cert.extensions.get_extension_for_oid(TN_AUTH_LIST)
    except x509.ExtensionNotFound:
        return False
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) < 4 or raw[0] != 0x30:
        return False
    # Skip the SEQUENCE's length (short or long form) to the first entry's tag.
    offset = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
    return offset < len(raw) and raw[offset] == 0xA0
