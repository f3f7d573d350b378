"""The ARI client's REST transports, against a small fake ARI (the real one is in tests/e2e):
over the events websocket when Asterisk answers the probe, over HTTP when it does not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.server import ServerConnection, serve

from screening.asterisk.ari import AriClient
from screening.config import Config


class FakeAri:
    """An events websocket that sends one StasisStart and, if `rest` is set, answers
    RESTRequest frames the way Asterisk 22 does."""

    def __init__(self, rest: bool) -> None:
        self.rest = rest
        self.requests: list[dict[str, Any]] = []

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "StasisStart", "channel": {"id": "c1"}, "args": []}))
        async for raw in ws:
            request = json.loads(raw)
            self.requests.append(request)
            if self.rest:
                status = 404 if "gone" in request["uri"] else 204
                answer = {"type": "RESTResponse", "request_id": request["request_id"]}
                await ws.send(json.dumps(answer | {"status_code": status}))


@asynccontextmanager
async def connected(fake: FakeAri, http: httpx.AsyncClient) -> AsyncIterator[AriClient]:
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = AriClient(Config(ari_url=f"http://127.0.0.1:{port}"), http=http)
        events = client.events()
        reader = asyncio.create_task(_drain(events))
        for _ in range(100):
            if fake.requests and (client.rest_over_websocket or not fake.rest):
                break
            await asyncio.sleep(0.01)
        try:
            yield client
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await events.aclose()


async def _drain(events: Any) -> None:
    async for _ in events:
        pass


def recording_http(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    return httpx.AsyncClient(base_url="http://ari/ari", transport=httpx.MockTransport(respond))


def test_continue_travels_over_the_websocket_when_asterisk_answers_there() -> None:
    fake, http_seen = FakeAri(rest=True), list[httpx.Request]()

    async def scenario() -> tuple[bool, bool]:
        async with connected(fake, recording_http(http_seen)) as client:
            assert client.rest_over_websocket
            moved = await client.continue_in_dialplan("c1", "screening-reject", "607")
            gone = await client.continue_in_dialplan("gone")
            return moved, gone

    assert asyncio.run(scenario()) == (True, False)  # 404: the caller hung up
    probe, reject, _ = fake.requests
    assert probe["uri"] == "asterisk/ping"
    assert reject["method"] == "POST"
    assert reject["uri"] == (
        "channels/c1/continue?context=screening-reject&extension=607&priority=1"
    )
    assert http_seen == []


def test_continue_falls_back_to_http_when_asterisk_ignores_the_probe() -> None:
    fake, http_seen = FakeAri(rest=False), list[httpx.Request]()

    async def scenario() -> bool:
        async with connected(fake, recording_http(http_seen)) as client:
            assert not client.rest_over_websocket
            return await client.continue_in_dialplan("c1", "screening-reject", "608")

    assert asyncio.run(scenario()) is True
    assert [(r.method, r.url.path, r.url.params.get("extension")) for r in http_seen] == [
        ("POST", "/ari/channels/c1/continue", "608")
    ]
    assert [r["uri"] for r in fake.requests] == ["asterisk/ping"]  # only the probe
