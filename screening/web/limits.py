"""Request bodies bounded before anything reads them: by the length a request declares, and
by what actually arrives. The limit is the route's: a login is a few hundred bytes, an API
call at most 16 KB, a console form 64 KB, only the admin's CSV upload up to 64 MB, and the
public redress jCard (web.redress) takes none. Checked
outside the session and the routes, so no body is read, spooled or parsed on the way to a
refusal (login, CSRF or role). Time is bounded too: a request's line and headers must
arrive within HEAD_S (HeadDeadline) and its body within its route's time (BodyLimit), so
clients that send slowly cannot hold the console's connections. And costly work is bounded
by a Gate: a password check takes 64 MiB and tens of milliseconds of CPU, so only a few run
at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import h11
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

LOGIN_BODY = 4096
API_BODY = 16 * 1024
FORM_BODY = 64 * 1024
#: The console's import form (web.pages.transfer.MAX_UPLOAD, and the multipart around it).
UPLOAD_BODY = 64 * 1024 * 1024 + 64 * 1024
UPLOAD_PATH = "/transfer"
#: Public: GET and HEAD only, so a body is never wanted there.
REDRESS_PREFIX = "/redress/"
#: Seconds for a request's line and headers, from connecting or from the last answer.
HEAD_S = 10.0
#: Seconds for a body to arrive: the CSV upload may be large on a slow line.
BODY_S = 20.0
UPLOAD_S = 600.0

P = ParamSpec("P")
T = TypeVar("T")


def body_limit(path: str) -> int:
    if path == "/login":
        return LOGIN_BODY
    if path.startswith("/api/"):
        return API_BODY
    if path == UPLOAD_PATH:
        return UPLOAD_BODY
    if path.startswith(REDRESS_PREFIX):
        return 0
    return FORM_BODY


def body_seconds(path: str) -> float:
    return UPLOAD_S if path == UPLOAD_PATH else BODY_S


class BodyLimit:
    """413 for a body over its route's limit: at once when Content-Length says so, else as
    soon as the bytes that arrived pass it; 408 for one not all there in its route's time
    (the app is then told the client went away)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = body_limit(path)
        deadline = asyncio.get_running_loop().time() + body_seconds(path)
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await _refuse(send, limit)
            return
        has_body = declared not in (None, 0) or _header(scope, b"transfer-encoding") is not None
        state = {"received": 0, "started": False, "refused": False, "read": not has_body}

        async def bounded() -> Message:
            if state["read"]:
                return await receive()  # the body is in: waits for a disconnect, unbounded
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                if not state["started"]:
                    state["refused"] = True
                    await _answer(send, 408, "refused: the request body came too slowly\n")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["read"] = state["read"] or not message.get("more_body", False)
                if state["received"] > limit:
                    if not state["started"]:
                        state["refused"] = True
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if state["refused"]:
                return  # we answered already
            if message["type"] == "http.response.start" and not state["read"]:
                # Answered without the body (a refusal): close rather than let the server
                # take the rest of it to keep the connection.
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, bounded, guarded)
        except ClientDisconnect:
            if not state["refused"]:
                raise


_CLOSE = (b"connection", b"close")


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    """The declared length; -1 when it is not a plain ASCII number."""
    value = _header(scope, b"content-length")
    if value is None:
        return None
    return int(value) if value.isdigit() and len(value) <= 18 else -1


async def _refuse(send: Send, limit: int) -> None:
    await _answer(send, 413, f"refused: a request body of at most {limit} bytes here\n")


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                _CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 with a deadline for each request's line and headers: HEAD_S from
    connecting, or from the last answer on a kept-alive connection. uvicorn has none, so
    clients that never finished their headers held every one of the console's connections
    and everyone else got 503 for as long as they stayed.

    And a connection that arrives when all are taken makes room: the one waiting longest
    for a request's headers is closed (else the one longest sending a body), so clients
    that open connections and send nothing, however often they come back, cannot keep
    out one that asks."""

    _head_timer: asyncio.TimerHandle | None = None
    _waiting_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        most = self.limit_concurrency
        if most is not None and len(self.connections) >= most:
            self._make_room()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request that follows disarms it again
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since = self.loop.time()
        self._head_timer = self.loop.call_later(HEAD_S, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        waiting, sending = [], []
        for other in self.connections:
            if other is self or not isinstance(other, HeadDeadline):
                continue
            if other._head_timer is not None:
                waiting.append(other)
            elif other.conn.their_state is h11.SEND_BODY:
                sending.append(other)
        for kind in (waiting, sending):
            if kind:
                oldest = min(kind, key=lambda c: c._waiting_since)
                oldest._disarm()
                oldest.connections.discard(oldest)  # counted out now, not when it is gone
                oldest.transport.close()
                return


class Gate:
    """A costly job run on `at_once` threads of its own with at most `waiting` more queued,
    and at most `per_key` of one key's (a source address, an account) in either; past
    that, refused at once (None), so a flood holds neither memory nor the threads other
    pages use, and one client cannot fill the queue for all. A job counts until it ends,
    even when its client has gone."""

    def __init__(self, at_once: int, waiting: int, per_key: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(at_once, thread_name_prefix=name)
        self._room = at_once + waiting
        self._per_key = per_key
        self._jobs: dict[str, int] = {}
        self._lock = threading.Lock()

    async def run(
        self, key: str, job: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        with self._lock:
            if sum(self._jobs.values()) >= self._room or self._jobs.get(key, 0) >= self._per_key:
                return None
            self._jobs[key] = self._jobs.get(key, 0) + 1
        future = self._pool.submit(job, *args, **kwargs)
        future.add_done_callback(lambda _: self._ended(key))
        return await asyncio.wrap_future(future)

    def _ended(self, key: str) -> None:
        with self._lock:
            left = self._jobs.pop(key) - 1
            if left:
                self._jobs[key] = left
