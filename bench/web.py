"""How fast the console answers with a million list entries and a million call-log rows.

    .venv/bin/python bench/web.py [--repeat 20]

Builds once (cached in /var/cache/screening-bench): the benchmarks' database of 1,000,000
block entries (900,000 global, 100,000 for 10 extensions), 10,000 allow entries and 1,000
DND schedules, plus 1,000,000 call-log rows spread over 30 days and 100 extensions. Then it
asks the console (in this process, through its ASGI app: the server's time, no network) for
each list page, search, deep page, the call log and the dashboard, as a logged-in admin, and
for the same through the JSON API; prints p50 / p95 / max per page. The issue's bound is
300 ms.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bench.calls import make_dataset, sqlite_databases  # noqa: E402
from screening.config import Config  # noqa: E402
from screening.service import parse  # noqa: E402
from screening.service.accounts import Accounts  # noqa: E402
from screening.store import calllog, migrate  # noqa: E402
from screening.store.engine import make_engine  # noqa: E402
from screening.store.models import BlockEntry, CallLog  # noqa: E402
from screening.web.app import create_app  # noqa: E402
from tests.db.test_web import csrf  # noqa: E402

CACHE = Path("/var/cache/screening-bench")
ROWS = 1_000_000
PASSWORD = "benchmark passphrase"


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build() -> Path:
    target = CACHE / "web-1m-v1.db"
    if target.exists():
        return target
    million, _ = sqlite_databases(make_dataset(), note)
    tmp = target.with_suffix(".tmp")
    shutil.copy(million, tmp)
    engine = make_engine(f"sqlite:///{tmp}")
    migrate.upgrade(engine)
    rnd = random.Random(608)
    with Session(engine) as s:
        blocked = list(s.scalars(select(BlockEntry.value).limit(20000)))
    now = datetime.now(UTC)
    note(f"writing {ROWS:,} call-log rows over 30 days (once)")
    t0 = time.monotonic()
    chunk = 50_000
    for start in range(0, ROWS, chunk):
        records = []
        for i in range(start, start + chunk):
            at = now - timedelta(seconds=rnd.uniform(0, 30 * 86400))
            ext = str(200 + rnd.randrange(100))
            rejected = rnd.random() < 0.4
            caller = rnd.choice(blocked) if rejected else f"+1555{rnd.randrange(10**7):07d}"
            decision: Literal["allowed", "rejected"] = "rejected" if rejected else "allowed"
            code, rule = (607, "block") if rejected else (None, None)
            records.append(
                calllog.CallRecord(
                    at,
                    f"c{i}",
                    caller,
                    caller,
                    ext,
                    decision,
                    code,
                    rule,
                    None,
                    "block #1 global" if rule else "no rule matched",
                    900,
                    "ari",
                )
            )
        with Session(engine) as s, s.begin():
            calllog.write_call_log(s, records)
        note(f"  {start + chunk:,} rows ({time.monotonic() - t0:.0f} s)")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    tmp.rename(target)
    return target


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    db = build()
    work = CACHE / "web-run.db"
    for leftover in (work, work.with_name(work.name + "-wal"), work.with_name(work.name + "-shm")):
        leftover.unlink(missing_ok=True)  # a stale WAL would be replayed onto the new copy
    shutil.copy(db, work)
    engine = make_engine(f"sqlite:///{work}")
    migrate.upgrade(engine)
    accounts = Accounts(engine)
    now = datetime.now(UTC)
    accounts.add("bench", "admin", None, PASSWORD, now)
    token, _ = accounts.new_token("bench", now, None)
    with Session(engine) as s:
        entries = s.scalar(select(func.count()).select_from(BlockEntry))
        calls = s.scalar(select(func.count()).select_from(CallLog))
        middle = s.scalar(select(BlockEntry.value).order_by(BlockEntry.value).offset(500_000))
        old_call = s.scalar(select(CallLog.id).order_by(CallLog.at).offset(10_000))
        caller = s.scalar(select(CallLog.caller).where(CallLog.decision == "rejected"))
    client = TestClient(create_app(Config(), engine, "bench-secret"), follow_redirects=False)
    r = client.post("/login", data={"name": "bench", "password": PASSWORD, "csrf": csrf(client)})
    assert r.status_code == 303, r.status_code
    api = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    first = client.get("/")
    cold = (time.perf_counter() - t0) * 1000
    assert first.status_code == 200 and "Today" in first.text, first.status_code
    after = parse.encode_cursor((middle or "", False, ""))
    pages = [
        ("dashboard", "/", {}),
        ("block list, page 1", "/lists/block", {}),
        ("block list, number search", "/lists/block?number=%2B1555", {}),
        ("block list, page 10,000 (after the 500,000th)", f"/lists/block?after={after}", {}),
        ("block list, one extension", "/lists/block?extension=211", {}),
        ("allow list, page 1", "/lists/allow", {}),
        ("call log, page 1", "/calls", {}),
        ("call log, one extension", "/calls?extension=250", {}),
        ("call log, one caller", f"/calls?caller={caller}", {}),
        ("call log, rejected only", "/calls?decision=rejected", {}),
        ("call log, a page 29 days back", f"/calls?before={old_call}", {}),
        ("extension page (user view)", "/ext/250", {}),
        ("do-not-disturb (1,000 schedules)", "/dnd", {}),
        ("do-not-disturb, one extension", "/dnd?extension=201", {}),
        ("policies", "/policies", {}),
        ("caller names", "/names/block", {}),
        ("users", "/users", {}),
        ("audit trail", "/audit", {}),
        ("API: block list", "/api/v1/lists/block", api),
        ("API: call log", "/api/v1/calls", api),
    ]
    print(
        f"{entries:,} block entries, {calls:,} call-log rows; SQLite; "
        f"{args.repeat} requests per page after one warm-up"
    )
    print("| page | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    worst = 0.0
    for label, path, headers in pages:
        client.get(path, headers=headers)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
        worst = max(worst, max(times))
        print(
            f"| {label} | {statistics.median(times):.1f} | {pct(times, 95):.1f} | "
            f"{max(times):.1f} |"
        )
    print(f"slowest request: {worst:.1f} ms (bound 300 ms)")
    print(
        f"the very first dashboard after an upgrade: {cold:.0f} ms (it summarises the 29 "
        "settled days once; `screening web` does this at start, before anyone asks)"
    )
    engine.dispose()
    work.unlink()
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
