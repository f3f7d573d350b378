"""Request bodies bounded before anything reads them: by the length a request declares, and
by what actually arrives. The limit is the route's: a login is a few hundred bytes, an API
call at most 16 KB, a console form 64 KB, only the admin's CSV upload up to 64 MB. Checked
outside the session and the routes, so no body is read, spooled or parsed on the way to a
refusal (login, CSRF or role)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGIN_BODY = 4096
API_BODY = 16 * 1024
FORM_BODY = 64 * 1024
#: The console's import form (web.pages.MAX_UPLOAD, and the multipart around it).
UPLOAD_BODY = 64 * 1024 * 1024 + 64 * 1024
UPLOAD_PATH = "/transfer"


def body_limit(path: str) -> int:
    if path == "/login":
        return LOGIN_BODY
    if path.startswith("/api/"):
        return API_BODY
    if path == UPLOAD_PATH:
        return UPLOAD_BODY
    return FORM_BODY


class BodyLimit:
    """413 for a body over its route's limit: at once when Content-Length says so, else as
    soon as the bytes that arrived pass it (the app is then told the client went away)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await _refuse(send, limit)
            return
        has_body = declared not in (None, 0) or _header(scope, b"transfer-encoding") is not None
        state = {"received": 0, "started": False, "refused": False, "read": not has_body}

        async def bounded() -> Message:
            message = await receive()
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
    body = f"refused: a request body of at most {limit} bytes here\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                _CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
