"""A thin ARI client: the events websocket (reconnecting) and the few REST calls we make.

REST calls travel over the events websocket when Asterisk supports it (ARI REST over
WebSocket: Asterisk 20.14, 21.9, 22.4 and later), else over HTTP. Over the websocket a
`continue` costs one small JSON frame each way; over HTTP it costs a request through a
connection pool, which was most of the app's CPU per call (docs/benchmarks.md, "Where a
call's time goes").
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from screening.config import Config
from screening.core.errors import ScreeningError

log = logging.getLogger(__name__)

# Reconnect quickly: every second without the app is a second of unscreened calls.
_BACKOFF = (0.1, 0.2, 0.5, 1.0)
#: A REST call that takes longer than this has failed; the caller continues the call.
REST_TIMEOUT = 2.0
_PROBE = "probe"


class AriError(ScreeningError):
    pass


class AriAuthError(AriError):
    pass


@dataclass(frozen=True)
class StasisStart:
    """The parts of a StasisStart event the app uses; parsed once, here."""

    channel_id: str
    channel_name: str
    caller_number: str
    caller_name: str
    dialplan_exten: str
    args: tuple[str, ...]
    dialplan_context: str = ""


def parse_stasis_start(event: dict[str, Any]) -> StasisStart | None:
    if event.get("type") != "StasisStart":
        return None
    channel = event.get("channel") or {}
    caller = channel.get("caller") or {}
    dialplan = channel.get("dialplan") or {}
    return StasisStart(
        channel_id=str(channel.get("id", "")),
        channel_name=str(channel.get("name", "")),
        caller_number=str(caller.get("number", "")),
        caller_name=str(caller.get("name", "")),
        dialplan_exten=str(dialplan.get("exten", "")),
        args=tuple(str(a) for a in event.get("args") or ()),
        dialplan_context=str(dialplan.get("context", "")),
    )


def destroyed_channel(event: dict[str, Any]) -> str | None:
    """The channel id of a ChannelDestroyed event (the channel is gone: hung up)."""
    if event.get("type") != "ChannelDestroyed":
        return None
    return str((event.get("channel") or {}).get("id", "")) or None


class AriClient:
    def __init__(self, config: Config, http: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._http = http or httpx.AsyncClient(
            base_url=f"{config.ari_url}/ari",
            auth=(config.ari_user, config.ari_password),
            timeout=httpx.Timeout(REST_TIMEOUT),
            # A small pool: httpcore scans every connection for every request, which
            # turned a burst into a spiral of CPU when the pool was allowed to grow.
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            trust_env=False,  # ARI is local; a proxy from the environment would break it
        )
        self._ws: ClientConnection | None = None
        self._ws_rest = False  # Asterisk answered our probe over the websocket
        self._pending: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._ids = itertools.count(1)
        self.connected = False  # the events websocket is open
        self.on_reconnect: Callable[[], None] = lambda: None  # after an outage ends

    async def reachable(self) -> bool:
        """For /readyz: the events websocket is open, or failing that ARI answers a ping."""
        if self.connected:
            return True
        try:
            return (await self._http.get("/asterisk/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def rest_over_websocket(self) -> bool:
        return self._ws is not None and self._ws_rest

    async def _rest(self, method: str, path: str, params: dict[str, str]) -> int:
        """One REST call; returns the HTTP status code. Raises AriError when Asterisk
        cannot be reached or does not answer within REST_TIMEOUT."""
        return (await self._rest_body(method, path, params))[0]

    async def _rest_body(self, method: str, path: str, params: dict[str, str]) -> tuple[int, str]:
        """One REST call; returns the HTTP status code and the body."""
        ws = self._ws
        if ws is None or not self._ws_rest:
            response = await self._http.request(method, path, params=params)
            return response.status_code, response.text
        request_id = str(next(self._ids))
        uri = path.lstrip("/") + (f"?{urlencode(params)}" if params else "")
        answer: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await ws.send(
                json.dumps(
                    {"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri}
                )
            )
            return await asyncio.wait_for(answer, REST_TIMEOUT)
        except TimeoutError:
            raise AriError(f"{method} {path}: no answer within {REST_TIMEOUT:g}s") from None
        except WebSocketException as e:
            raise AriError(f"{method} {path}: {e}") from None
        finally:
            self._pending.pop(request_id, None)

    def _answered(self, message: dict[str, Any]) -> None:
        request_id = str(message.get("request_id", ""))
        if request_id == _PROBE:
            self._ws_rest = True
            log.info("REST calls go over the events websocket")
            return
        answer = self._pending.get(request_id)
        if answer is not None and not answer.done():
            body = message.get("message_body")
            answer.set_result((int(message.get("status_code", 0)), str(body or "")))

    def _lost(self) -> None:
        self._ws, self._ws_rest = None, False
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(AriError("the ARI websocket closed"))

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str | None = None
    ) -> bool:
        """Leave Stasis: to the next priority, or to context/extension priority 1.
        False when the channel is already gone (the caller hung up)."""
        params = {}
        if context is not None:
            params = {"context": context, "extension": extension or "s", "priority": "1"}
        status = await self._rest("POST", f"/channels/{channel_id}/continue", params)
        if status in (404, 409):  # hung up, or no longer in Stasis
            return False
        if status >= 300:
            raise AriError(f"continue {channel_id}: HTTP {status}")
        return True

    async def set_variable(self, channel_id: str, name: str, value: str) -> bool:
        """Set a channel variable; False when the channel is already gone."""
        params = {"variable": name, "value": value}
        status = await self._rest("POST", f"/channels/{channel_id}/variable", params)
        if status == 404:
            return False
        if status >= 300:
            raise AriError(f"set {name} on {channel_id}: HTTP {status}")
        return True

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """A channel variable, or a dialplan function's value (`DIALPLAN_EXISTS(...)`);
        None when the channel is gone or the value cannot be read."""
        status, body = await self._rest_body(
            "GET", f"/channels/{channel_id}/variable", {"variable": name}
        )
        if status != 200:
            return None
        try:
            value = json.loads(body).get("value")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    async def watch(self, channel_id: str, on: bool = True) -> None:
        """Hear (or stop hearing) the channel's events after it leaves Stasis: how the app
        learns that a caller hung up during the challenge, which runs in the dialplan."""
        params = {"eventSource": f"channel:{channel_id}"}
        path = f"/applications/{self._config.ari_app}/subscription"
        status = await self._rest("POST" if on else "DELETE", path, params)
        if status >= 300 and status not in (404, 409, 422):
            raise AriError(f"{'watch' if on else 'unwatch'} {channel_id}: HTTP {status}")

    async def parked_channels(self) -> list[StasisStart]:
        """Channels already in our app, e.g. left there when a previous run of the app died.
        Their Stasis arguments are not available, so args is empty."""
        response = await self._http.get(f"/applications/{self._config.ari_app}")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        parked = []
        for channel_id in response.json().get("channel_ids", []):
            r = await self._http.get(f"/channels/{channel_id}")
            if r.status_code == 200:
                start = parse_stasis_start({"type": "StasisStart", "channel": r.json()})
                if start is not None:
                    parked.append(start)
        return parked

    async def events(
        self, on_connect: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every event of our app, forever: reconnects with capped backoff and logs once per
        outage. Raises AriAuthError when Asterisk refuses our credentials."""
        token = base64.b64encode(
            f"{self._config.ari_user}:{self._config.ari_password}".encode()
        ).decode()
        attempt = 0
        outage = False
        while True:
            try:
                async with connect(
                    self._config.events_url,
                    additional_headers={"Authorization": f"Basic {token}"},
                    proxy=None,
                    open_timeout=5,
                    max_queue=None,  # never stall Asterisk's event stream behind our reads
                ) as ws:
                    attempt = 0
                    self._ws = ws
                    # Ask whether this Asterisk takes REST calls on the websocket; until it
                    # answers (older versions never do) they go over HTTP.
                    await ws.send(
                        json.dumps(
                            {
                                "type": "RESTRequest",
                                "request_id": _PROBE,
                                "method": "GET",
                                "uri": "asterisk/ping",
                            }
                        )
                    )
                    self.connected = True
                    if outage:
                        log.warning("reconnected to ARI at %s", self._config.ari_url)
                        self.on_reconnect()
                    else:
                        log.info(
                            "connected to ARI at %s as app %r",
                            self._config.ari_url,
                            self._config.ari_app,
                        )
                    outage = False
                    if on_connect is not None:
                        await on_connect()
                    async for message in _messages(ws):
                        if message.get("type") == "RESTResponse":
                            self._answered(message)
                        else:
                            yield message
                reason = "Asterisk closed the connection"
            except InvalidStatus as e:
                if e.response.status_code in (401, 403):
                    raise AriAuthError(
                        f"ARI at {self._config.ari_url} refused user {self._config.ari_user!r}: "
                        "check SCREENING_ARI_USER and SCREENING_ARI_PASSWORD against ari.conf"
                    ) from None
                reason = f"HTTP {e.response.status_code}"
            except (TimeoutError, OSError, WebSocketException) as e:
                reason = str(e) or type(e).__name__
            finally:
                self.connected = False
                self._lost()
            if not outage:
                log.warning(
                    "lost ARI at %s (%s); calls pass unscreened until it is back",
                    self._config.ari_url,
                    reason,
                )
                outage = True
            await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
            attempt += 1


async def _messages(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    async for raw in ws:
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("ignoring an ARI message that is not JSON")
            continue
        if isinstance(event, dict):
            yield event
