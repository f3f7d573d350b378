"""What a running door counts, in Prometheus' text format at /metrics, with /healthz (the
event loop answers) and /readyz (the database and Asterisk are reachable), on
127.0.0.1:9469 by default (metrics.listen). Labels never carry phone numbers: callers are
unbounded and personal.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from screening.core.challenge import Outcome

log = logging.getLogger(__name__)

#: Decision time buckets, seconds: from 0.25 ms (a look-up alone) to the 300 ms time-out.
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 1.0)
#: The longest request line and headers we read: nothing but a GET is expected here.
MAX_REQUEST = 8192
#: Connections at once; more are closed as soon as they are accepted.
MAX_CONNECTIONS = 32


class Metrics:
    """One registry per process (and per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter(
            "screening_calls",
            "Calls decided, by door, outcome (allowed, rejected, failed_open), SIP code and "
            "the kind of rule that decided.",
            ["door", "outcome", "sip_code", "rule_kind"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "screening_decision_seconds",
            "From the door receiving the call to its answer, as the app measures it.",
            ["door"],
            buckets=BUCKETS,
            registry=r,
        )
        self.lookup_errors = Counter(
            "screening_lookup_errors",
            "Rule look-ups that failed (error) or ran past the decision time-out (timeout); "
            "each call continued unscreened.",
            ["kind"],
            registry=r,
        )
        self.verifications = Counter(
            "screening_verifications",
            "STIR/SHAKEN and carrier verdicts of calls that carried one, by status and "
            "attestation.",
            ["status", "attestation"],
            registry=r,
        )
        self.challenges = Counter(
            "screening_challenges",
            "Early-media challenges, by outcome (passed, wrong-digit, timed-out, abandoned, "
            "failed).",
            ["outcome"],
            registry=r,
        )
        self.asterisk_connected = Gauge(
            "screening_asterisk_connected",
            "1 while the ARI events websocket is connected (ARI door).",
            registry=r,
        )
        self.asterisk_reconnects = Counter(
            "screening_asterisk_reconnects",
            "Times the ARI connection came back after an outage.",
            registry=r,
        )
        self.call_log_queue = Gauge(
            "screening_call_log_queue",
            "Call-log rows waiting to be written.",
            registry=r,
        )
        self.call_log_lost = Counter(
            "screening_call_log_rows_lost",
            "Call-log rows lost: not written before the app stopped, or dropped while "
            "MAX_PENDING rows waited for a database that was away.",
            registry=r,
        )
        self.call_log_refused = Counter(
            "screening_call_log_rows_refused",
            "Call-log rows the database refused: written repaired, or set aside (in the log "
            "only) when it refused them even so.",
            ["outcome"],
            registry=r,
        )
        self.fastagi_connections = Gauge(
            "screening_fastagi_connections",
            "FastAGI connections open right now (FastAGI door).",
            registry=r,
        )

        # Series that exist from the start (at 0), so that rate() and alerts see them
        # before the first event.
        for door in ("ari", "agi"):
            self.decision_seconds.labels(door)
        for kind in ("error", "timeout"):
            self.lookup_errors.labels(kind)
        for outcome in Outcome:
            self.challenges.labels(outcome.value)

    def call(self, door: str, outcome: str, sip_code: int | None, rule_kind: str | None) -> None:
        self.calls.labels(door, outcome, str(sip_code or ""), rule_kind or "").inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


#: Named checks for /readyz: each answers whether its part is reachable now.
Check = Callable[[], Awaitable[bool]]


class MetricsServer:
    """GET /metrics, /healthz and /readyz over HTTP/1.0; anything else is 404, and every
    connection is closed after one answer or a bounded wait."""

    def __init__(self, metrics: Metrics, checks: dict[str, Check]) -> None:
        self._metrics = metrics
        self._checks = checks
        self._open = 0

    async def start(self, host: str, port: int) -> asyncio.Server | None:
        """Listening, or None (with a warning) when the address cannot be had: metrics are
        never worth not screening calls."""
        try:
            return await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST)
        except OSError as e:
            log.warning("metrics not served: cannot listen on %s:%d: %s", host, port, e)
            return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.close()  # a scraper needs one; a flood must not take the process's files
            return
        self._open += 1
        try:
            async with asyncio.timeout(2):
                head = await reader.readuntil(b"\r\n\r\n")
                method, _, rest = head.decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0].split("?", 1)[0]
                status, kind, body = await self._answer(method, path)
                writer.write(
                    f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._open -= 1
            writer.close()

    async def _answer(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self._metrics.text()
        if path == "/healthz":
            # Answered by the event loop itself: if it hangs, this times out.
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            results = {}
            for name, check in self._checks.items():
                try:
                    results[name] = await asyncio.wait_for(check(), 2)
                except Exception:
                    results[name] = False
            status = "200 OK" if all(results.values()) else "503 Service Unavailable"
            return status, "application/json", json.dumps(results).encode() + b"\n"
        return "404 Not Found", "text/plain", b"/metrics, /healthz or /readyz\n"
