"""Soak: real calls at a fixed rate for a long time; does anything leak or fail?

    .venv/bin/python bench/soak.py [--rate 50] [--minutes 30] [--door ari|agi]

Starts the sandbox and a screening door (`screening serve`, or `screening agi` with
--door agi) on a fresh SQLite database, then places calls
open-loop at --rate per second, mixing callers whose right answer is known (blocked -> 607,
prefix -> 608, DND -> 608, allowed through DND -> 200, unknown -> 200). Reports calls, wrong
answers, time-outs, latency percentiles, and the app's resident memory, open file
descriptors and CPU time per call at the start and end. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from bench._harness import sandbox_env, screening, serving  # noqa: E402
from screening.store.engine import make_engine  # noqa: E402
from screening.store.models import CallLog  # noqa: E402
from tests.sipprobe import load  # noqa: E402

# (caller, extension, expected status line)
MIX = [
    ("+15550800001", "201", "607 Unwanted"),  # blocked
    ("+19005550000", "201", "608 Rejected"),  # premium-rate prefix, 608
    ("+15550800002", "202", "608 Rejected"),  # 202 is in DND
    ("+15550800003", "202", "200 OK"),  # allowed: through DND
    ("+15550800004", "201", "200 OK"),  # nobody special
]


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_mb": rss_kb / 1024, "fds": fds, "cpu_s": cpu_s}


async def drive(
    rate: float, seconds: float, port: int, source: str = "127.0.0.1"
) -> tuple[Counter[str], list[tuple[float, float]], int]:
    """Status lines, (seconds into the run, latency ms) of each answered call, wrong answers."""
    mix = [(caller, ext) for caller, ext, _ in MIX]
    expected = {(caller, ext): want for caller, ext, want in MIX}
    done = await load(mix, rate, seconds, port=port, source=source)
    results = Counter(r.status_line for _, _, _, r in done)
    timed = [(offset, r.elapsed_ms) for offset, _, _, r in done if r.status]
    wrong = sum(1 for _, c, e, r in done if r.status_line != expected[(c, e)])
    return results, timed, wrong


def app_times_ms(database_url: str) -> list[float]:
    """The app's own time for each call (event in to its answer sent), from the call log."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        values = [us / 1000 for us in conn.scalars(select(CallLog.decision_us))]
    engine.dispose()
    return values


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--door", choices=["ari", "agi"], default="ari")
    args = parser.parse_args()
    env = sandbox_env()
    port = int(env["SANDBOX_SIP_PORT"])
    with tempfile.TemporaryDirectory() as work:
        env["SCREENING_DATABASE_URL"] = f"sqlite:///{work}/soak.db"
        for cmd in (
            ["db", "upgrade"],
            ["block", "add", "+15550800001"],
            ["block", "add", "+1900*", "--code", "608"],
            ["dnd", "add", "202", "--days", "all", "--from", "00:00", "--to", "00:00"],
            ["allow", "add", "+15550800003", "--for", "202"],
        ):
            screening(env, *cmd)
        # The sandbox's FastAGI trunk answers calls from 127.0.0.5 (pjsip.conf).
        source = "127.0.0.5" if args.door == "agi" else "127.0.0.1"
        with serving(env, Path(work), "agi" if args.door == "agi" else "serve") as serve:
            asyncio.run(drive(args.rate, 3, port, source))  # warm-up
            start = proc_stats(serve.pid)
            # A sample a minute: growth that levels off (pools, caches filling) and growth
            # that goes on (a leak) look the same at the two ends.
            samples: list[dict[str, float]] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(60):
                    samples.append(proc_stats(serve.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            began = time.time()
            results, timed, wrong = asyncio.run(drive(args.rate, args.minutes * 60, port, source))
            stop.set()
            end = proc_stats(serve.pid)
        code = serve.returncode
        calls = sum(results.values())
        latencies = [ms for _, ms in timed]
        in_app = app_times_ms(env["SCREENING_DATABASE_URL"])
        print(
            f"{args.minutes:g} min at {args.rate:g} calls/s: {calls} calls, "
            f"{', '.join(f'{k} x{v}' for k, v in sorted(results.items()))}"
        )
        print(
            f"wrong answers: {wrong}, time-outs: {results.get('timeout', 0)}, "
            f"app exit code on SIGTERM: {code}"
        )
        print(
            f"latency ms: p50 {statistics.median(latencies):.2f}, p95 {pct(latencies, 95):.2f}, "
            f"p99 {pct(latencies, 99):.2f}, max {max(latencies):.2f}"
        )
        print(
            f"the app's own part (call log): p50 {statistics.median(in_app):.2f}, "
            f"p99 {pct(in_app, 99):.2f}, max {max(in_app):.2f} ms over {len(in_app)} calls"
        )
        # When the slowest calls happened, to set them beside whatever else the machine did.
        slowest = sorted(timed, key=lambda t: t[1], reverse=True)[:5]
        print(
            "slowest calls: "
            + ", ".join(
                f"{ms:.1f} ms at {time.strftime('%H:%M:%S', time.gmtime(began + off))} UTC"
                for off, ms in slowest
            )
        )
        print("by minute, MB: " + " ".join(f"{x['rss_mb']:.1f}" for x in samples))
        print("by minute, open fds: " + " ".join(f"{x['fds']:.0f}" for x in samples))
        growth = (end["rss_mb"] - start["rss_mb"]) / start["rss_mb"] * 100
        print(
            f"app memory {start['rss_mb']:.1f} -> {end['rss_mb']:.1f} MB ({growth:+.1f}%), "
            f"open fds {start['fds']:.0f} -> {end['fds']:.0f}, "
            f"CPU {(end['cpu_s'] - start['cpu_s']) / max(calls, 1) * 1000:.2f} ms per call"
        )
        return 0 if wrong == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
