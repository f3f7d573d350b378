"""STIR/SHAKEN at the edge: fetch the certificate a PASSporT names (x5u), check it chains to
the admin's CA store, is in date and carries a TNAuthList, and check the ES256 signature.

The dialplan hands us the raw Identity and Date headers; Asterisk's own verification is not
used because reading its result after a malformed x5u stops Asterisk 22.10.1 (README).
Fetching is as strict as Asterisk's by default: https on port 443, a path ending in .pem
with no query, only public addresses, no redirects, a small size cap and a short time-out.
Certificates are cached in memory and on disk until their cache age or expiry, and failures
for a minute, so that a flood of calls naming one bad URL costs one fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from screening.core.identity import MAX_AGE, Destination, Passport, Result, parse_passport

log = logging.getLogger(__name__)

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")
#: A certificate with a chain is a few KB; anything larger is not one.
MAX_CERT_BYTES = 32 * 1024
#: One fetch may take this long; calls wait at most Verifier.fetch_wait for it.
FETCH_TIMEOUT = 4.0
#: How long a failed fetch or an untrusted certificate is remembered.
FAILURE_TTL = 60.0
#: Longest chain walked from the signing certificate to a trusted one.
MAX_CHAIN = 5
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


class _Refused(Exception):
    """The certificate could not be had or trusted; the message says why, for the log."""

    def __init__(self, result: Result, why: str) -> None:
        super().__init__(why)
        self.result = result


@dataclass(frozen=True)
class _Cert:
    key: ec.EllipticCurvePublicKey | None  # None: this URL failed; see `failure`
    until: float  # time.time() after which it is fetched again
    failure: Result | None = None


def x5u_problem(url: str, relaxed: bool) -> str | None:
    """Why Asterisk's default rules refuse this x5u URL, or None. Relaxed (sandbox, or an
    admin who chose it) allows http, any port and any path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"not a URL ({e})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "not an http(s) URL"
    if parts.username or parts.password:
        return "credentials in the URL"
    if relaxed:
        return None
    if parts.scheme != "https" or port not in (None, 443):
        return "not https on port 443"
    if parts.query or parts.fragment or not parts.path.endswith(".pem"):
        return "the path must end in .pem, with no query or fragment"
    return None


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


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
    ) -> None:
        self._cas = {ca.subject.public_bytes(): ca for ca in cas}
        self.relaxed = relaxed
        self._cache_dir = cache_dir
        self._max_age = cache_max_age
        self.fetch_wait = fetch_wait
        self._certs: dict[str, _Cert] = {}
        self._fetching: dict[str, asyncio.Task[_Cert]] = {}
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=fetch_timeout,
            trust_env=False,  # never through a proxy from the environment
            limits=httpx.Limits(max_connections=8),
        )
        self._disk_warned = False
        self._replays = ReplayCache()

    async def aclose(self) -> None:
        for task in self._fetching.values():
            task.cancel()
        await self._client.aclose()

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
        cached = self._certs.get(url)
        if cached is not None and cached.until > now:
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
        try:
            pem = self._from_disk(url, now)
            if pem is None:
                pem = await self._fetch(url)
                self._to_disk(url, pem)
            chain = x509.load_pem_x509_certificates(pem)
            key, not_after = self._trusted(chain, datetime.now(UTC))
            cert = _Cert(key, min(now + self._max_age, not_after))
        except _Refused as e:
            log.warning("STIR/SHAKEN certificate %s refused: %s (%s)", url[:200], e, e.result)
            cert = _Cert(None, now + FAILURE_TTL, e.result)
        except ValueError as e:  # not PEM
            log.warning("STIR/SHAKEN certificate %s unreadable: %s", url[:200], e)
            cert = _Cert(None, now + FAILURE_TTL, Result.CERT_RETRIEVAL)
        self._certs[url] = cert
        return cert

    async def _fetch(self, url: str) -> bytes:
        problem = x5u_problem(url, self.relaxed)
        if problem is not None:
            raise _Refused(Result.NO_X5U, problem)
        host = urlsplit(url).hostname or ""
        if not self.relaxed:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            except OSError as e:
                raise _Refused(Result.CERT_RETRIEVAL, f"cannot resolve {host}: {e}") from None
            addresses = {str(info[4][0]) for info in infos}
            if not addresses or not all(_public(a) for a in addresses):
                raise _Refused(Result.CERT_RETRIEVAL, f"{host} is not a public address")
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _Refused(Result.CERT_RETRIEVAL, f"HTTP {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CERT_BYTES:
                        raise _Refused(Result.CERT_RETRIEVAL, f"over {MAX_CERT_BYTES} bytes")
                return body
        except httpx.HTTPError as e:
            raise _Refused(Result.CERT_RETRIEVAL, f"{type(e).__name__}: {e}") from None

    def _trusted(
        self, chain: list[x509.Certificate], now: datetime
    ) -> tuple[ec.EllipticCurvePublicKey, float]:
        """The signing key, if the chain leads to a CA in the store; and when the first
        certificate on the way expires."""
        if not chain:
            raise _Refused(Result.CERT_RETRIEVAL, "no certificate in the response")
        leaf = chain[0]
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise _Refused(Result.CERT_NOT_TRUSTED, "the signing key is not EC P-256")
        if not _spc_first(leaf):
            raise _Refused(Result.CERT_NO_TN_AUTH, "no TNAuthList with an SPC first")
        not_after = min(c.not_valid_after_utc for c in chain)
        cert = leaf
        for _ in range(MAX_CHAIN):
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise _Refused(Result.CERT_DATE, f"{cert.subject.rfc4514_string()} out of date")
            issuer = self._cas.get(cert.issuer.public_bytes()) or next(
                (c for c in chain[1:] if c.subject == cert.issuer and c is not cert), None
            )
            if issuer is None:
                break
            if issuer.subject.public_bytes() not in self._cas and not _is_ca(issuer):
                raise _Refused(Result.CERT_NOT_TRUSTED, "a certificate in the chain is no CA")
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise _Refused(
                    Result.CERT_NOT_TRUSTED, "a signature in the chain is wrong"
                ) from None
            if issuer.subject.public_bytes() in self._cas:
                ca = self._cas[issuer.subject.public_bytes()]
                if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
                    raise _Refused(Result.CERT_DATE, "the CA certificate is out of date")
                return key, min(not_after, ca.not_valid_after_utc).timestamp()
            cert = issuer
        raise _Refused(Result.CERT_NOT_TRUSTED, "the chain does not lead to a trusted CA")

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
        except OSError as e:
            if not self._disk_warned:
                log.warning("cannot cache STIR/SHAKEN certificates in %s: %s", path.parent, e)
                self._disk_warned = True


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
        key = hashlib.sha256(passport.signature).digest()
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
