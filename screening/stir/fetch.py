"""Getting an x5u certificate over HTTP(S), as strictly as Asterisk's defaults and then some:
the URL's rules, one resolution whose every address must be public (IPv4 inside IPv6
forms included), the connection made to the address that was checked (no second look-up
for DNS rebinding to answer), one deadline for the whole fetch, a size cap, and fetch slots
a stranger's slow servers cannot all take."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from urllib.parse import SplitResult, urlsplit

import httpx

from screening.core.identity import Result

#: A certificate with a chain is a few KB; anything larger is not one.
MAX_CERT_BYTES = 32 * 1024
#: One fetch may take this long in all: resolving, connecting, and every byte of the body.
FETCH_TIMEOUT = 4.0
#: Fetches at once from hosts that served a trusted certificate before, and from others: a
#: flood of x5u URLs on strangers' servers cannot take the slots a carrier's needs.
KNOWN_SLOTS = 4
NEW_SLOTS = 8
#: Fetches at once from one address (whatever names point at it).
PER_ADDRESS = 2
#: Hosts remembered as having served a trusted certificate.
MAX_KNOWN_HOSTS = 1000

# An ASCII host name (letters, digits, hyphens; dots between labels). Anything else (IDNA
# U-labels above all: IDNA2003 and 2008 encode some differently, so the name checked could
# differ from the name connected to) is refused.
_HOST = re.compile(r"(?=.{1,253}\.?\Z)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The certificate could not be had or trusted; the message says why, for the log.
    `busy`: only because too many fetches ran at once (not remembered as a failure)."""

    def __init__(self, result: Result, why: str, busy: bool = False) -> None:
        super().__init__(why)
        self.result = result
        self.busy = busy


def fetchable(url: str, not_http: str) -> tuple[SplitResult | None, str | None]:
    """(the URL's parts, None) when any of our fetchers may ask it at all: http or https,
    no credentials, a host of ASCII letters, digits, hyphens and dots (or an address);
    else (None, why not), `not_http` being the words for another scheme or no host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        return None, f"not a URL ({e})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None, not_http
    if parts.username or parts.password:
        return None, "credentials in the URL"
    if not _is_ip(parts.hostname) and not _HOST.fullmatch(parts.hostname):
        return None, "the host must be ASCII letters, digits, hyphens and dots"
    return parts, None


def x5u_problem(url: str, relaxed: bool) -> str | None:
    """Why Asterisk's default rules refuse this x5u URL, or None. Relaxed (sandbox, or an
    admin who chose it) allows http, any port and any path; never a host that is not ASCII."""
    parts, problem = fetchable(url, "not an http(s) URL")
    if parts is None or relaxed:
        return problem
    if parts.scheme != "https" or parts.port not in (None, 443):
        return "not https on port 443"
    if parts.query or parts.fragment or not parts.path.endswith(".pem"):
        return "the path must end in .pem, with no query or fragment"
    return None


def public(address: str) -> bool:
    """An address the fetcher may connect to: global, not multicast, and for IPv6 forms that
    carry an IPv4 address (mapped, 6to4, NAT64), that one too. The IPv4-compatible form
    (::a.b.c.d, long deprecated) and the local-use NAT64 prefix are never public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if int(ip) >> 32 == 0 or ip in ipaddress.ip_network("64:ff9b:1::/48"):
        return False
    inner = [ip.ipv4_mapped, ip.sixtofour]
    if ip in _NAT64:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(public(str(v4)) for v4 in inner if v4 is not None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Fetcher:
    """Fetches certificate bodies; one per verifier."""

    def __init__(
        self,
        relaxed: bool = False,
        timeout: float = FETCH_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.relaxed = relaxed
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=timeout,
            verify=tls if tls is not None else True,  # the system's web CAs by default
            trust_env=False,  # never through a proxy from the environment
            limits=httpx.Limits(max_connections=KNOWN_SLOTS + NEW_SLOTS),
        )
        self._slots = {True: asyncio.Semaphore(KNOWN_SLOTS), False: asyncio.Semaphore(NEW_SLOTS)}
        self._busy: Counter[str] = Counter()  # address -> fetches in flight
        self._known: OrderedDict[str, None] = OrderedDict()  # hosts with a trusted cert

    async def aclose(self) -> None:
        await self._client.aclose()

    def trusted(self, url: str) -> None:
        """The certificate at `url` was trusted: its host gets the known hosts' slots."""
        host = urlsplit(url).hostname or ""
        self._known[host] = None
        self._known.move_to_end(host)
        while len(self._known) > MAX_KNOWN_HOSTS:
            self._known.popitem(last=False)

    async def fetch(self, url: str) -> bytes:
        """The body at `url`, within one deadline. Raises Refused."""
        problem = x5u_problem(url, self.relaxed)
        if problem is not None:
            raise Refused(Result.NO_X5U, problem)
        parts = urlsplit(url)
        try:
            async with asyncio.timeout(self._timeout):
                address = await self._address(parts)
                async with self._slot(parts.hostname or "", address):
                    return await self._get(parts, address)
        except TimeoutError:
            raise Refused(Result.CERT_RETRIEVAL, f"no answer within {self._timeout:g}s") from None

    async def _address(self, parts: SplitResult) -> str:
        """One look-up; every address it gives must be public (unless relaxed), and the
        first is the one connected to."""
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as e:
            raise Refused(Result.CERT_RETRIEVAL, f"cannot resolve {host}: {e}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise Refused(Result.CERT_RETRIEVAL, f"{host} has no address")
        if not self.relaxed and not all(public(a) for a in addresses):
            raise Refused(Result.CERT_RETRIEVAL, f"{host} is not a public address")
        return addresses[0]

    @contextlib.asynccontextmanager
    async def _slot(self, host: str, address: str) -> AsyncIterator[None]:
        if self._busy[address] >= PER_ADDRESS:
            why = f"{PER_ADDRESS} fetches from {address} already"
            raise Refused(Result.CERT_RETRIEVAL, why, busy=True)
        slots = self._slots[host in self._known]
        if slots.locked():
            raise Refused(Result.CERT_RETRIEVAL, "too many certificate fetches at once", busy=True)
        self._busy[address] += 1
        try:
            async with slots:
                yield
        finally:
            self._busy[address] -= 1
            if not self._busy[address]:
                del self._busy[address]

    async def _get(self, parts: SplitResult, address: str) -> bytes:
        """GET from `address` itself, with the host name as Host and TLS server name (so the
        certificate is still checked against the name)."""
        port = f":{parts.port}" if parts.port else ""
        ip = f"[{address}]" if ":" in address else address
        target = f"{parts.scheme}://{ip}{port}{parts.path or '/'}"
        if parts.query:
            target += f"?{parts.query}"
        host = parts.hostname or ""
        named = f"[{host}]" if ":" in host else host
        try:
            async with self._client.stream(
                "GET",
                target,
                # Never compressed: httpx would inflate a whole chunk before any size check,
                # and 270 bytes of nested gzip make a gigabyte.
                headers={"Host": f"{named}{port}", "Accept-Encoding": "identity"},
                extensions={"sni_hostname": host},
            ) as response:
                if response.status_code != 200:
                    raise Refused(Result.CERT_RETRIEVAL, f"HTTP {response.status_code}")
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise Refused(Result.CERT_RETRIEVAL, f"a {encoding[:32]!r}-encoded body")
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_CERT_BYTES:
                        raise Refused(Result.CERT_RETRIEVAL, f"over {MAX_CERT_BYTES} bytes")
                return body
        except httpx.HTTPError as e:
            raise Refused(Result.CERT_RETRIEVAL, f"{type(e).__name__}: {e}") from None
