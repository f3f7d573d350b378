"""The signed jCard a 608 points to and its certificate, under /redress/ (RFC 8688). Public
by design: the network of a caller we rejected fetches them, so no session or login is
asked for, and nothing here touches one. GET and HEAD only; no body is read (web.limits
allows none here) and the query is never parsed."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from screening.service.redress import Redress

log = logging.getLogger(__name__)

NOT_SET = "not found: no redress jCard is set up here\n"
#: A caller's network may keep the certificate a while; the jCard never (its iat ages).
CERT_CACHE = "public, max-age=300"


def _redress(request: Request) -> Redress | None:
    found: Redress | None = request.app.state.redress
    return found


async def jcard(request: Request) -> Response:
    redress = _redress(request)
    if redress is None:
        return PlainTextResponse(NOT_SET, 404)
    # One ES256 signature every RESIGN_S at most (about 0.1 ms): fine on the event loop.
    body = redress.jws(time.time())
    return Response(body, media_type="application/jose", headers={"Cache-Control": "no-store"})


async def certificate(request: Request) -> Response:
    redress = _redress(request)
    if redress is None:
        return PlainTextResponse(NOT_SET, 404)
    return Response(
        redress.cert_pem,
        media_type="application/pem-certificate-chain",
        headers={"Cache-Control": CERT_CACHE},
    )


def routes() -> list[Route]:
    # methods=["GET"]: Starlette answers HEAD too, and 405 to anything else.
    return [
        Route("/redress/jcard", jcard, methods=["GET"]),
        Route("/redress/cert.pem", certificate, methods=["GET"]),
    ]


def announce(redress: Redress | None) -> None:
    """One line at start: what a caller's network is sent to, and until when it verifies."""
    if redress is not None:
        log.info(
            "redress jCard for %s served at /redress/jcard; its certificate (x5u %s) is valid "
            "until %s",
            redress.config.wire.jcard_url,
            redress.cert_url,
            redress.not_after.strftime("%Y-%m-%d %H:%M UTC"),
        )
