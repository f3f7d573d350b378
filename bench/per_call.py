"""Where a call's time goes in the app: each step of screening one call, measured alone.

    .venv/bin/python bench/per_call.py [--calls 2000]

On the 1M-entry SQLite database bench/calls.py builds (run that first) and the sandbox's
ARI: parsing the StasisStart event, normalising the caller, the rule look-up, the decision,
the hop to the look-up thread and back, the REST `continue` round trip (over the events
websocket and, for comparison, over HTTP), and writing one call-log row (in batches, after
the call has moved on). Median microseconds per step. py-spy gives the same picture under
load: `py-spy record --pid $(pgrep -f 'screening serve')` while bench/calls.py runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy.orm import Session  # noqa: E402

from bench._harness import sandbox_env  # noqa: E402
from bench.calls import CACHE, DATASET_VERSION, make_dataset  # noqa: E402
from screening.asterisk.ari import AriClient, parse_stasis_start  # noqa: E402
from screening.config import Config  # noqa: E402
from screening.core.decision import IncomingCall, decide  # noqa: E402
from screening.core.numbers import normalise  # noqa: E402
from screening.store import migrate  # noqa: E402
from screening.store.calllog import CallRecord, write_call_log  # noqa: E402
from screening.store.engine import lookup_engine, make_engine  # noqa: E402
from screening.store.lookup import sql_rules_lookup  # noqa: E402

# A StasisStart as Asterisk 22 sends it (trimmed of nothing: its size matters).
EVENT = json.dumps(
    {
        "type": "StasisStart",
        "timestamp": "2026-11-24T09:00:00.000+0000",
        "args": ["201"],
        "channel": {
            "id": "1795511239.41046",
            "name": "PJSIP/trunk-00000a1f",
            "state": "Ring",
            "protocol_id": "1-25606@127.0.0.1",
            "caller": {"name": "", "number": "+15550900001"},
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {
                "context": "screening-inbound",
                "exten": "201",
                "priority": 1,
                "app_name": "Stasis",
                "app_data": "screening,201",
            },
            "creationtime": "2026-11-24T09:00:00.000+0000",
            "language": "en",
            "tenantid": "",
        },
        "asterisk_id": "02:fc:00:00:00:01",
        "application": "screening",
    }
)


def median_us(step: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


async def async_median_us(step: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await step(i)  # type: ignore[misc]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    n = args.calls
    cached = CACHE / f"screening-1m-v{DATASET_VERSION}.db"
    if not cached.exists():
        raise SystemExit(f"{cached} is missing: run bench/calls.py once first")
    data = make_dataset()
    callers = [(c, d) for c, d, _ in data.callers]
    now = datetime.now(UTC)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "1m.db"
        shutil.copy(cached, db)
        engine = make_engine(f"sqlite:///{db}")
        migrate.upgrade(engine)  # the cached database may be a revision behind
        lookup = sql_rules_lookup(lookup_engine(engine))
        for c, d in callers:  # warm the page cache, as a running app has it
            lookup(normalise(c, "US"), d, now)

        rows.append(
            (
                "parse the StasisStart event",
                median_us(lambda i: parse_stasis_start(json.loads(EVENT)), n),
            )
        )
        rows.append(
            (
                "normalise the caller",
                median_us(lambda i: normalise(callers[i % len(callers)][0], "US"), n),
            )
        )
        normalised = [(normalise(c, "US"), d) for c, d in callers]
        rows.append(
            (
                "rule look-up, 1M entries (connection + 2 queries)",
                median_us(lambda i: lookup(*normalised[i % len(normalised)], now), n),
            )
        )
        rules = [lookup(c, d, now) for c, d in normalised]
        rows.append(
            (
                "decision (pure core)",
                median_us(
                    lambda i: decide(
                        IncomingCall(
                            callers[i % len(callers)][0],
                            normalised[i % len(normalised)][0],
                            normalised[i % len(normalised)][1],
                        ),
                        rules[i % len(rules)],
                        now,
                    ),
                    n,
                ),
            )
        )

        async def hops() -> float:
            return await async_median_us(lambda i: asyncio.to_thread(lambda: None), n)

        rows.append(("hop to the look-up thread and back", asyncio.run(hops())))

        record = CallRecord(
            now,
            "1795511239.41046",
            "+15550900001",
            "+15550900001",
            "201",
            "rejected",
            607,
            "block",
            1,
            "block #1 global +15550900001",
            2900,
        )

        def write_batch(i: int) -> None:
            with Session(engine) as session, session.begin():
                write_call_log(session, [record] * 100)

        rows.append(
            (
                "call-log row (batches of 100; off the call path)",
                median_us(write_batch, max(n // 100, 20)) / 100,
            )
        )

    env = sandbox_env()
    config = Config(
        ari_url=env["SCREENING_ARI_URL"],
        ari_user=env["SCREENING_ARI_USER"],
        ari_password=env["SCREENING_ARI_PASSWORD"],
        ari_app="screening-per-call",
    )

    async def rest() -> tuple[float, float]:
        client = AriClient(config)
        events = client.events()
        reader = asyncio.create_task(anext(events))
        for _ in range(200):
            if client.rest_over_websocket:
                break
            await asyncio.sleep(0.01)
        # A channel that does not exist: Asterisk looks it up and answers 404, the same
        # path and round trip as a real `continue` without moving a call.
        ws_us = await async_median_us(
            lambda i: client.continue_in_dialplan(f"none-{i}", "screening-reject", "607"), n
        )
        # A client that never opened the websocket sends its REST calls over HTTP, as it
        # does with an Asterisk older than 22.4.
        plain = AriClient(config)
        http_us = await async_median_us(
            lambda i: plain.continue_in_dialplan(f"none-{i}", "screening-reject", "607"), n
        )
        await plain.aclose()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await events.aclose()
        await client.aclose()
        return ws_us, http_us

    ws_us, http_us = asyncio.run(rest())
    rows.append(("REST `continue` round trip over the events websocket", ws_us))
    rows.append(("(the same over HTTP, the fallback)", http_us))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, median of {n} per step\n")
    print("| step | µs |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
