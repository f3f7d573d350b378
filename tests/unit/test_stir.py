"""STIR/SHAKEN verification at the edge: real ES256 signatures, real certificate chains, and
a real HTTP server on loopback serving the x5u (relaxed, as in the sandbox)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from screening.core.identity import Result
from screening.stir import MAX_CERT_BYTES, Verifier, x5u_problem
from screening.stir.fetch import public
from tests.sipprobe import identity_headers
from tests.stircerts import (
    TN_FIRST,
    Issued,
    make_ca,
    make_intermediate,
    make_signer,
    make_tls_server,
)

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


#: P-256's group order.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def twin(identity: str) -> str:
    """The same PASSporT with its ECDSA twin signature, (r, n - s): it verifies too."""
    token, _, params = identity.partition(";")
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    s = int.from_bytes(raw[32:], "big")
    other = raw[:32] + (P256_N - s).to_bytes(32, "big")
    return f"{head}.{payload}.{base64.urlsafe_b64encode(other).rstrip(b'=').decode()};{params}"


@pytest.mark.parametrize("replay", [lambda i: i, twin], ids=["same", "twin"])
def test_the_same_passport_is_accepted_once(replay: Callable[[str], str]) -> None:
    # RFC 8224 s.12.1: a verifier that keeps state of recent requests detects an Identity
    # replayed within the freshness window. The cache was keyed on the signature, so the
    # twin of a used PASSporT's signature verified as a new one.
    async def go() -> list[Result]:
        async with serving(signer=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier()
            h = identity_headers(SIGNER.key_pem, srv.url("/signer.pem"), CALLER, "201")
            now = datetime.now(UTC)
            first = await v.check(h["Identity"], h["Date"], CALLER, now)
            again = await v.check(replay(h["Identity"]), h["Date"], CALLER, now)
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


# -- what a caller's x5u can aim at, and how much it can take ---------------------------------


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("93.184.216.34", True),
        ("2001:4860:4860::8888", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1: is_global says yes
        ("64:ff9b:1::a00:1", False),  # the local-use NAT64 prefix (RFC 8215)
        ("::127.0.0.1", False),  # IPv4-compatible: is_global says yes
        ("::8.8.8.8", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1: is_global says yes
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("ff02::1", False),
    ],
)
def test_private_addresses_in_every_form_are_not_public(address: str, ok: bool) -> None:
    assert public(address) is ok


def test_a_host_that_is_not_ascii_is_refused_before_any_look_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # IDNA2003 and IDNA2008 encode "faß" differently: the name checked and the name
    # connected to could differ. Real certificate repositories have ASCII names.
    looked_up: list[object] = []

    def look_up(*args: object, **kwargs: object) -> list[object]:
        looked_up.append(args)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", look_up)
    for url in ["https://faß.example/sp.pem", "https://xn--fa-hia.example\u200b/sp.pem"]:
        assert "ASCII" in (x5u_problem(url, relaxed=False) or "")
        assert "ASCII" in (x5u_problem(url, relaxed=True) or "")

    async def go() -> tuple[Result, str | None]:
        v = Verifier([CA.cert])
        got = await check(v, "https://faß.example/sp.pem")
        await v.aclose()
        return got

    assert run(go()) == (Result.NO_X5U, "A")
    assert looked_up == []


def test_the_fetch_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding: the name resolves to a public address when it is checked and to
    # loopback a moment later. The fetcher used to check one look-up and let httpx make
    # another, and connected to 127.0.0.1.
    answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 10)
    real = socket.getaddrinfo

    def rebinding(host: str | bytes, port: object, *args: object, **kwargs: object) -> object:
        if host in ("rebind.example", b"rebind.example"):  # httpx's stack asks with bytes
            address = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    accepted: list[int] = []

    async def go() -> Result:
        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            writer.close()

        try:
            loopback = await asyncio.start_server(count, "127.0.0.1", 443)
        except OSError as e:
            pytest.fail(f"this test needs 127.0.0.1:443 (as root, and free): {e}")
        async with loopback:
            v = Verifier([CA.cert], fetch_timeout=1.0, fetch_wait=2.0)
            result, _ = await check(v, "https://rebind.example/sp.pem")
            await v.aclose()
            return result

    assert run(go()) is Result.CERT_RETRIEVAL
    assert accepted == []  # never connected to the address it had not checked


def test_junk_is_never_cached_on_disk_and_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 300 junk URLs used to leave 300 files and 300 memory entries, and a good
    # certificate's entry could be pushed out by them.
    monkeypatch.setattr("screening.stir.MAX_FAILURES", 50)
    junk = {f"junk{n}": (200, b"not a certificate at all", 0.0) for n in range(300)}

    async def go() -> tuple[int, tuple[int, int], int]:
        async with serving(signer=(200, SIGNER.pem, 0.0), **junk) as srv:
            v = verifier(cache_dir=tmp_path)
            assert await check(v, srv.url("/signer.pem")) == (Result.SUCCESS, "A")
            for n in range(300):
                assert (await check(v, srv.url(f"/junk{n}.pem")))[0] is Result.CERT_RETRIEVAL
            hits = srv.hits
            assert await check(v, srv.url("/signer.pem")) == (Result.SUCCESS, "A")
            again = srv.hits - hits  # 0: the good one was still in memory
            sizes = v.cached()
            await v.aclose()
            return cached_files(tmp_path), sizes, again

    files, (good, failed), refetched = asyncio.run(go())
    assert (files, good, refetched) == (1, 1, 0)
    assert failed == 50


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An x5u server that answers a byte at a time, for ever (each read well within any
    per-read time-out)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 30000\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        for _ in range(100):
            writer.write(b"-")
            await writer.drain()
            await asyncio.sleep(0.2)
    writer.close()


def test_a_slow_drip_server_is_cut_off_by_one_deadline_for_the_whole_fetch() -> None:
    async def go() -> float:
        server = await asyncio.start_server(_drip, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            v = verifier(fetch_timeout=1.0, fetch_wait=5.0)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            result, _ = await check(v, f"http://127.0.0.1:{port}/drip.pem")
            assert result is Result.CERT_RETRIEVAL
            await v.aclose()
            return loop.time() - t0

    assert asyncio.run(go()) < 2.5  # 1 s, not the 5 s the caller would wait (or for ever)


def test_strangers_slow_servers_cannot_starve_a_known_carriers_certificate() -> None:
    # Slow-drip x5u servers on eight addresses, two URLs each, in flight; a carrier's
    # repository that served a trusted certificate before still gets its new one at once.
    # All eight fetch slots used to be theirs, and the carrier's call went unverified.
    async def go() -> tuple[Result, str | None]:
        drips = [await asyncio.start_server(_drip, f"127.0.0.{n}", 0) for n in range(2, 10)]
        async with serving(signer=(200, SIGNER.pem, 0.0), signer2=(200, SIGNER.pem, 0.0)) as srv:
            v = verifier(fetch_timeout=3.0, fetch_wait=1.0)
            assert await check(v, srv.url("/signer.pem")) == (Result.SUCCESS, "A")
            flood = [
                asyncio.create_task(
                    check(v, f"http://127.0.0.{n}:{d.sockets[0].getsockname()[1]}/x{k}.pem")
                )
                for n, d in enumerate(drips, start=2)
                for k in range(2)
            ]
            await asyncio.sleep(0.3)  # all of them connected and dripping
            got = await check(v, srv.url("/signer2.pem"))
            await asyncio.gather(*flood)
            await v.aclose()
        for d in drips:
            d.close()
        return got

    assert run(go()) == (Result.SUCCESS, "A")


def test_https_to_the_checked_address_still_checks_the_servers_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connecting to the address itself must not cost TLS its point: the web server's
    # certificate is checked against the x5u's host name (sent as SNI and Host).
    web_ca = make_ca("web CA")
    real = socket.getaddrinfo

    def hosts(host: str | bytes, port: object, *args: object, **kwargs: object) -> object:
        if host in ("cert.test", b"cert.test", "other.test", b"other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hosts)

    async def serve_tls(name: str) -> tuple[asyncio.Server, int]:
        issued = make_tls_server(web_ca, name)
        (tmp_path / "c.pem").write_bytes(issued.pem)
        (tmp_path / "k.pem").write_bytes(issued.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        server = CertServer({"/signer.pem": (200, SIGNER.pem, 0.0)})
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ctx)
        return listener, listener.sockets[0].getsockname()[1]

    async def go() -> list[Result]:
        client = ssl.create_default_context(cadata=web_ca.pem.decode())
        results = []
        for served, asked in [("cert.test", "cert.test"), ("other.test", "cert.test")]:
            listener, port = await serve_tls(served)
            async with listener:
                v = verifier(tls=client)
                results.append((await check(v, f"https://{asked}:{port}/signer.pem"))[0])
                await v.aclose()
        return results

    assert run(go()) == [Result.SUCCESS, Result.CERT_RETRIEVAL]


def test_a_compressed_certificate_is_refused_unread() -> None:
    # 270 bytes of gzip inside gzip inside gzip inflate to a gigabyte: httpx inflated a
    # whole chunk before the size check, on the event loop, and every call waited.
    import gzip
    import resource

    zeros = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=1)
    bomb = gzip.compress(gzip.compress(zeros))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.0 200 OK\r\nContent-Encoding: gzip, gzip, gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(bomb), bomb)
        )
        await writer.drain()
        writer.close()

    async def go() -> tuple[Result, float]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            v = verifier(fetch_wait=3.0)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            result, _ = await check(v, f"http://127.0.0.1:{port}/bomb.pem")
            await v.aclose()
            return result, loop.time() - t0

    result, took = asyncio.run(go())
    assert result is Result.CERT_RETRIEVAL
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 100 and took < 1.0  # refused at its header, nothing inflated
