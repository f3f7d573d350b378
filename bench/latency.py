"""INVITE -> final response latency through screening, against the bare dialplan, same run.

    sudo scripts/bootstrap && .venv/bin/python bench/latency.py [--calls 200]

Starts the sandbox Asterisk and a `screening serve` with a fresh SQLite database, then sends
sequential calls (one at a time) of three kinds and prints p50/p95/p99 per kind:
  floor    an internal phone dials 607: PJSIPHangup(607) straight from the dialplan
  607      a blocked caller through screening (StasisStart -> lookup -> continue -> 607)
  allowed  an unknown caller through screening, to 200 OK (includes the dialplan's Answer)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import sandbox_env, screening, serving  # noqa: E402
from screening.sipprobe import place_call  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run_calls(kind: str, n: int, port: int) -> tuple[list[float], dict[str, int]]:
    caller, to = {
        "floor": ("201", "607"),
        "607": ("+15550300001", "201"),
        "allowed": ("+15550300002", "201"),
    }[kind]
    times: list[float] = []
    statuses: dict[str, int] = {}
    for _ in range(n):
        r = await place_call(to, caller, port=port)
        statuses[r.status_line] = statuses.get(r.status_line, 0) + 1
        times.append(r.elapsed_ms)
    return times, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    env = sandbox_env()
    port = int(env["SANDBOX_SIP_PORT"])
    with tempfile.TemporaryDirectory() as work:
        env["SCREENING_DATABASE_URL"] = f"sqlite:///{work}/bench.db"
        screening(env, "db", "upgrade")
        screening(env, "block", "add", "+15550300001")
        with serving(env, Path(work)):
            asyncio.run(run_calls("607", 20, port))  # warm-up: imports, connections, caches
            results = {
                kind: asyncio.run(run_calls(kind, args.calls, port))
                for kind in ("floor", "607", "allowed")
            }
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"{args.calls} sequential calls per kind"
    )
    print(f"{'kind':<8} {'statuses':<22} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    summary = {}
    for kind, (times, statuses) in results.items():
        st = ", ".join(f"{k} x{v}" for k, v in statuses.items())
        row = {
            "p50": statistics.median(times),
            "p95": pct(times, 95),
            "p99": pct(times, 99),
            "max": max(times),
            "statuses": statuses,
        }
        summary[kind] = row
        print(
            f"{kind:<8} {st:<22} {row['p50']:7.2f} {row['p95']:7.2f} {row['p99']:7.2f} "
            f"{row['max']:7.2f}"
        )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latency.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
