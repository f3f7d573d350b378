"""The metrics listener on its own: what it answers, what it refuses, and that a taken port
costs only the metrics."""

from __future__ import annotations

import asyncio
import logging

import pytest

from screening.service.metrics import Metrics, MetricsServer


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_answers_and_refusals() -> None:
    async def go() -> None:
        metrics = Metrics()
        metrics.call("ari", "rejected", 607, "block")

        async def down() -> bool:
            return False

        server = await MetricsServer(metrics, {"database": down}).start("127.0.0.1", 0)
        assert server is not None
        port = server.sockets[0].getsockname()[1]
        text = await request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert text.startswith(b"HTTP/1.0 200 OK")
        assert (
            b'screening_calls_total{door="ari",outcome="rejected",rule_kind="block",'
            b'sip_code="607"} 1.0' in text
        )
        ready = await request(port, b"GET /readyz HTTP/1.0\r\n\r\n")
        assert ready.startswith(b"HTTP/1.0 503") and ready.endswith(b'{"database": false}\n')
        assert (await request(port, b"POST /metrics HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.0 405")
        assert (await request(port, b"GET /x HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.0 404")
        # Garbage and an endless header are closed without an answer, the server stays up.
        assert await request(port, b"\x00\xff" * 5000) == b""
        assert (await request(port, b"GET /healthz HTTP/1.0\r\n\r\n")).endswith(b"ok\n")
        server.close()

    asyncio.run(go())


def test_a_taken_port_costs_only_the_metrics(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        first = await MetricsServer(Metrics(), {}).start("127.0.0.1", 0)
        assert first is not None
        port = first.sockets[0].getsockname()[1]
        with caplog.at_level(logging.WARNING):
            second = await MetricsServer(Metrics(), {}).start("127.0.0.1", port)
        assert second is None
        assert f"metrics not served: cannot listen on 127.0.0.1:{port}" in caplog.text
        first.close()

    asyncio.run(go())


def test_the_sample_dashboard_asks_only_for_metrics_we_export() -> None:
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "screening-dashboard.json"
    dashboard = json.loads(path.read_text())
    exported = set(re.findall(r"^# TYPE (\S+) ", Metrics().text().decode(), flags=re.M))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"screening_[a-z_]+", target["expr"]):
                assert name.removesuffix("_bucket") in exported, (panel["title"], name)
