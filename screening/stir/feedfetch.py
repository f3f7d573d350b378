"""Getting a spam feed's body over HTTPS by the certificate fetcher's rules (stir.fetch): an
ASCII host, every address it resolves to public, the connection made to the address that was
checked, no redirects, no proxy from the environment, no compression; plus conditional
requests (ETag, Last-Modified), a size cap checked on Content-Length before reading and on
every chunk, and one deadline for the whole body. The body is streamed, never held whole."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from screening.core.errors import ScreeningError
from screening.stir.fetch import fetchable, public

#: The largest body taken (the FTC's daily file is a few MB; a year of it is not 256 MB).
MAX_FEED_BYTES = 256 * 1024 * 1024
#: The whole fetch, every byte of the body included, ends after this long.
FEED_TIMEOUT = 600.0
#: One read (connecting, or the next chunk) waits this long at most.
READ_TIMEOUT = 30.0
CHUNK = 64 * 1024


class FeedRefused(Exception):
    """The feed could not be had; the message says why, for `feed show` and the log."""


def url_problem(url: str, relaxed: bool) -> str | None:
    """Why a feed's URL is refused, or None. Relaxed (loopback tests, a feed on the LAN)
    allows http and hosts that are not public; never credentials or a non-ASCII host."""
    parts, problem = fetchable(url, "expected an https:// URL")
    if parts is None:
        return problem
    if parts.scheme != "https" and not relaxed:
        return "expected an https:// URL (http only with --relax)"
    return None


@dataclass
class Body:
    """What the server answered: 200 with a body, 304 (not modified) or 404 (no such file)."""

    status: int
    etag: str | None
    last_modified: str | None
    length: int | None  # Content-Length, when the server said it
    chunks: Iterator[bytes]


@contextmanager
def get_feed(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    relaxed: bool = False,
    timeout: float = FEED_TIMEOUT,
    max_bytes: int = MAX_FEED_BYTES,
) -> Iterator[Body]:
    """GET `url` as a stream. Raises FeedRefused before or while the body arrives."""
    problem = url_problem(url, relaxed)
    if problem is not None:
        raise FeedRefused(problem)
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    address = _address(parts, relaxed)
    headers = {"Accept-Encoding": "identity", "User-Agent": "screening-feeds"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    port = f":{parts.port}" if parts.port else ""
    host = parts.hostname or ""
    headers["Host"] = (f"[{host}]" if ":" in host else host) + port
    ip = f"[{address}]" if ":" in address else address
    target = f"{parts.scheme}://{ip}{port}{parts.path or '/'}"
    if parts.query:
        target += f"?{parts.query}"
    client = httpx.Client(
        follow_redirects=False, timeout=min(READ_TIMEOUT, timeout), trust_env=False
    )
    # The deadline holds whatever the server does: a header or body trickled a byte at a
    # time keeps every single read inside READ_TIMEOUT, so past the deadline the client
    # is closed under the reader, which then fails.
    watchdog = threading.Timer(timeout, client.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        with client.stream(
            "GET", target, headers=headers, extensions={"sni_hostname": host}
        ) as response:
            yield _body(response, deadline, timeout, max_bytes)
    except (FeedRefused, ScreeningError):
        raise  # ours, or the caller's (a body not in the feed's format)
    except Exception as e:
        if time.monotonic() >= deadline:
            raise FeedRefused(f"the feed took longer than {timeout:g}s") from None
        if isinstance(e, httpx.HTTPError | httpx.StreamError | UnicodeError | OSError):
            raise FeedRefused(f"{type(e).__name__}: {str(e)[:200]}") from None
        raise
    finally:
        watchdog.cancel()
        client.close()


def _body(response: httpx.Response, deadline: float, timeout: float, max_bytes: int) -> Body:
    status = response.status_code
    if status not in (200, 304, 404):
        raise FeedRefused(f"HTTP {status} {response.reason_phrase}"[:200])
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FeedRefused(f"a {encoding[:32]!r}-encoded body")
    length_header = response.headers.get("content-length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    if status == 200 and length is not None and length > max_bytes:
        raise FeedRefused(f"Content-Length {length} is over the cap of {max_bytes} bytes")

    def chunks() -> Iterator[bytes]:
        seen = 0
        # As the network hands data over (no chunk size: httpx would hold bytes back until
        # it had a whole chunk), so that the deadline is checked on every read.
        for chunk in response.iter_raw():
            seen += len(chunk)
            if seen > max_bytes:
                raise FeedRefused(f"the body is over the cap of {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FeedRefused(f"the body took longer than {timeout:g}s")
            yield chunk
        if length is not None and seen != length:
            raise FeedRefused(f"the body ended after {seen} of {length} bytes")

    return Body(
        status,
        response.headers.get("etag"),
        response.headers.get("last-modified"),
        length,
        chunks() if status == 200 else iter(()),
    )


def _address(parts: SplitResult, relaxed: bool) -> str:
    """One look-up; every address must be public unless relaxed; the first is used."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise FeedRefused(f"cannot resolve {host}: {e}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise FeedRefused(f"{host} has no address")
    if not relaxed and not all(public(a) for a in addresses):
        raise FeedRefused(f"{host} is not a public address (a local feed needs --relax)")
    return addresses[0]
