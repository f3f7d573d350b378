"""STIR/SHAKEN verification at the edge: real ES256 signatures, real certificate chains, and
a real HTTP server on loopback serving the x5u (relaxed, as in the sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from screening.core.identity import Result
from screening.sipprobe import identity_headers
from screening.stir import MAX_CERT_BYTES, Verifier, x5u_problem
from tests.stircerts import TN_FIRST, Issued, make_ca, make_intermediate, make_signer

CALLER = "+15551234567"
CA = make_ca()
SIGNER = make_signer(CA)


@dataclass
class CertServer:
    """Serves `routes[path] = (status, body, delay)` over HTTP/1.0 and counts requests."""

    routes: dict[str, tuple[int, bytes, float]] = field(default_factory=dict)
    hits: int = 0
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        status, body, delay = self.routes.get(path, (404, b"", 0.0))
        await asyncio.sleep(delay)
        extra = b"Location: http://127.0.0.1/elsewhere.pem\r\n" if status == 302 else b""
        writer.write(
            b"HTTP/1.0 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra) + body
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def serving(**routes: tuple[int, bytes, float]) -> AsyncIterator[CertServer]:
    server = CertServer({f"/{k}.pem": v for k, v in routes.items()})
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


def verifier(**kw: object) -> Verifier:
    return Verifier([CA.cert], relaxed=True, **kw)  # type: ignore[arg-type]


async def check(
    v: Verifier,
    url: str,
    *,
    signer: Issued = SIGNER,
    attest: str = "A",
    tamper: Callable[[str], str] = lambda s: s,
) -> tuple[Result, str | None]:
    h = identity_headers(signer.key_pem, url, CALLER, "201", attest)
    return await v.check(tamper(h["Identity"]), h["Date"], CALLER, datetime.now(UTC))


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_the_same_passport_is_accepted_once() -> None:
    # RFC 8224 s.12.1: a verifier that keeps state of recent requests detects an Identity
    # replayed within the freshness window.
    async def go() -> list[Result]:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier()
            h = identity_headers(SIGNER.key_pem, srv.url("/signer.pem"), CALLER, "201")
            now = datetime.now(UTC)
            first = await v.check(h["Identity"], h["Date"], CALLER, now)
            again = await v.check(h["Identity"], h["Date"], CALLER, now)
            fresh = await check(v, srv.url("/signer.pem"))  # a new PASSporT for a new call
            await v.aclose()
            return [first[0], again[0], fresh[0]]

    assert run(go()) == [Result.SUCCESS, Result.REPLAYED, Result.SUCCESS]


def test_a_forged_copy_cannot_use_up_the_real_passport() -> None:
    # Only tokens that verify are remembered: a copy with a broken signature sent first
    # does not make the real one look replayed.
    async def go() -> list[Result]:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier()
            h = identity_headers(SIGNER.key_pem, srv.url("/signer.pem"), CALLER, "201")
            token, _, params = h["Identity"].partition(";")
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            now = datetime.now(UTC)
            bad = await v.check(f"{forged};{params}", h["Date"], CALLER, now)
            real = await v.check(h["Identity"], h["Date"], CALLER, now)
            await v.aclose()
            return [bad[0], real[0]]

    assert run(go()) == [Result.SIGNATURE, Result.SUCCESS]


def test_a_signed_call_verifies_with_its_attestation() -> None:
    async def go() -> None:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier()
            assert await check(v, srv.url("/signer.pem")) == (Result.SUCCESS, "A")
            assert await check(v, srv.url("/signer.pem"), attest="C") == (Result.SUCCESS, "C")
            assert srv.hits == 1  # the second call used the cached certificate
            await v.aclose()

    run(go())


def test_a_changed_passport_fails_its_signature() -> None:
    def other_caller(identity: str) -> str:
        # Re-sign nothing: swap in the payload of a PASSporT for another number.
        other = identity_headers(SIGNER.key_pem, "x", "+15550000000", "201")["Identity"]
        head, _, rest = identity.partition(".")
        _, _, sig = rest.partition(".")
        return f"{head}.{other.split('.')[1]}.{sig}"

    async def go() -> None:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier()
            h = identity_headers(SIGNER.key_pem, srv.url("/signer.pem"), CALLER, "201")
            forged = other_caller(h["Identity"])
            got = await v.check(forged, h["Date"], "+15550000000", datetime.now(UTC))
            assert got == (Result.SIGNATURE, "A")
            stranger = make_signer(make_ca("someone else"))
            impostor = await check(v, srv.url("/signer.pem"), signer=stranger)
            assert impostor == (Result.SIGNATURE, "A")
            await v.aclose()

    run(go())


@pytest.mark.parametrize(
    ("cert", "result"),
    [
        (make_signer(make_ca("an untrusted CA")), Result.CERT_NOT_TRUSTED),
        (make_signer(CA, valid_days=(-30, -1)), Result.CERT_DATE),
        (make_signer(CA, tn_auth=None), Result.CERT_NO_TN_AUTH),
        (make_signer(CA, tn_auth=TN_FIRST), Result.CERT_NO_TN_AUTH),
    ],
)
def test_certificates_that_must_not_be_trusted(cert: Issued, result: Result) -> None:
    async def go() -> None:
        async with serving(bad=(200, cert.pem, 0.0)) as srv:
            v = verifier()
            assert await check(v, srv.url("/bad.pem"), signer=cert) == (result, "A")
            await v.aclose()

    run(go())


def test_chain_through_an_intermediate_sent_with_the_certificate() -> None:
    root = make_ca("root")
    inter = make_intermediate(root)
    leaf = make_signer(inter)
    # A signing certificate is not a CA: what it signs is not trusted.
    not_a_ca = make_signer(root, cn="not a CA")
    forged = make_signer(not_a_ca)

    async def go() -> None:
        async with serving(
            chain=(200, leaf.pem + inter.pem, 0.0), forged=(200, forged.pem + not_a_ca.pem, 0.0)
        ) as srv:
            v = Verifier([root.cert], relaxed=True)
            assert await check(v, srv.url("/chain.pem"), signer=leaf) == (Result.SUCCESS, "A")
            got = await check(v, srv.url("/forged.pem"), signer=forged)
            assert got == (Result.CERT_NOT_TRUSTED, "A")
            await v.aclose()

    run(go())


@pytest.mark.parametrize(
    ("route", "why"),
    [
        ((404, b"", 0.0), "not found"),
        ((302, b"", 0.0), "a redirect is not followed"),
        ((200, b"-----BEGIN CERTIFICATE-----\n" + b"A" * MAX_CERT_BYTES, 0.0), "too large"),
        ((200, b"not a certificate", 0.0), "not PEM"),
    ],
)
def test_a_certificate_that_cannot_be_had_is_a_retrieval_failure(
    route: tuple[int, bytes, float], why: str
) -> None:
    async def go() -> None:
        async with serving(c=route) as srv:
            v = verifier()
            assert await check(v, srv.url("/c.pem")) == (Result.CERT_RETRIEVAL, "A"), why
            await v.aclose()

    run(go())


def test_strict_x5u_rules_by_default() -> None:
    assert x5u_problem("https://cert.example.com/sp.pem", relaxed=False) is None
    assert x5u_problem("http://cert.example.com/sp.pem", relaxed=False)
    assert x5u_problem("https://cert.example.com:8443/sp.pem", relaxed=False)
    assert x5u_problem("https://cert.example.com/sp.pem?x=1", relaxed=False)
    assert x5u_problem("https://cert.example.com/sp.crt", relaxed=False)
    assert x5u_problem("https://user:pw@cert.example.com/sp.pem", relaxed=False)
    assert x5u_problem("notaurl", relaxed=True)
    assert x5u_problem("ftp://cert.example.com/sp.pem", relaxed=True)
    assert x5u_problem("http://127.0.0.1:8099/sp.pem", relaxed=True) is None


def test_strict_verifier_refuses_loopback_and_bad_urls_without_fetching() -> None:
    async def go() -> None:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = Verifier([CA.cert])  # strict: as a real PBX runs it
            # http on loopback: refused by the URL rules, never fetched.
            assert await check(v, srv.url("/signer.pem")) == (Result.NO_X5U, "A")
            assert (await check(v, "notaurl"))[0] is Result.NO_X5U
            assert srv.hits == 0
            await v.aclose()

    run(go())


def test_strict_verifier_refuses_an_https_url_on_a_private_address() -> None:
    async def go() -> None:
        v = Verifier([CA.cert])
        assert await check(v, "https://127.0.0.1/sp.pem") == (Result.CERT_RETRIEVAL, "A")
        assert await check(v, "https://10.1.2.3/sp.pem") == (Result.CERT_RETRIEVAL, "A")
        await v.aclose()

    run(go())


def test_a_slow_certificate_server_delays_the_first_call_only_within_its_bound() -> None:
    async def go() -> None:
        async with serving(slow=(200, SIGNER.pem, 0.5)) as srv:
            v = verifier(fetch_wait=0.1)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            first = await check(v, srv.url("/slow.pem"))
            waited = loop.time() - t0
            # Could not check in time: retrieval failure, which policies read as unverified.
            assert first == (Result.CERT_RETRIEVAL, "A") and waited < 0.4
            await asyncio.sleep(0.6)  # the fetch went on and filled the cache
            assert await check(v, srv.url("/slow.pem")) == (Result.SUCCESS, "A")
            assert srv.hits == 1
            await v.aclose()

    run(go())


def test_many_calls_naming_one_certificate_cost_one_fetch() -> None:
    async def go() -> None:
        async with serving(signer=(200, SIGNER.pem, 0.05), bad=(404, b"", 0.0)) as srv:
            v = verifier()
            got = await asyncio.gather(*(check(v, srv.url("/signer.pem")) for _ in range(50)))
            assert set(got) == {(Result.SUCCESS, "A")} and srv.hits == 1
            # A failing URL is remembered too: a flood naming it is not a flood of fetches.
            await asyncio.gather(*(check(v, srv.url("/bad.pem")) for _ in range(50)))
            assert srv.hits == 2
            await v.aclose()

    run(go())


def cached_files(directory: Path) -> int:
    return len(list(directory.glob("*.pem")))


def test_certificates_are_cached_on_disk_for_the_next_start(tmp_path: Path) -> None:
    async def go() -> None:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            url = srv.url("/signer.pem")
            first = verifier(cache_dir=tmp_path)
            assert (await check(first, url))[0] is Result.SUCCESS
            await first.aclose()
        assert cached_files(tmp_path) == 1
        # The server is gone; a new process still verifies from the disk cache.
        second = verifier(cache_dir=tmp_path)
        assert (await check(second, url))[0] is Result.SUCCESS
        await second.aclose()
        # Past the cache age it fetches again (and, the server being gone, cannot).
        third = verifier(cache_dir=tmp_path, cache_max_age=0.0)
        assert (await check(third, url))[0] is Result.CERT_RETRIEVAL
        await third.aclose()

    run(go())
