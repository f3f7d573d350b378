"""Screening at a million rules against the bare dialplan and an AstDB blacklist, in one run.

    .venv/bin/python bench/calls.py [--rates 100,200] [--seconds 20] [--capacity-seconds 60]
                                    [--no-postgresql] [--out FILE]

On the sandbox Asterisk, with real SIP from sipp timed on the wire (tcpdump):
- builds (once, cached in $SCREENING_BENCH_CACHE, default /var/cache/screening-bench) a
  screening database with 1,000,000 block entries (95% numbers, 5% prefixes), 10,000 allow
  entries and 1,000 DND schedules, a 1,000-entry database with the same answers for the
  caller mix, and an AstDB with the same 1,000,000 block values as `blacklist/<number>` keys;
- drives a caller mix (blocked, blocked for one extension, blocked range, DND, allowed
  through DND, unknown) at fixed rates through four dialplan paths, chosen by source
  address (scripts/sandbox-conf/pjsip.conf): the bare `PJSIPHangup(607)`, the AstDB
  blacklist, screening through ARI (`screening serve`, SQLite, 1M entries) and screening
  through FastAGI (`screening agi`, a copy of the same database), the paths taking turns
  in four slices so that the shared machine's drift falls on all of them alike;
- screening for --capacity-seconds at the highest rate;
- a second app instance beside the first (ARI app `screening-b`, source 127.0.0.4), taking
  turns with it: first on the 1,000-entry database (is the cost flat in list size?), then
  on PostgreSQL with the same 1M entries.
Prints per path and rate: calls, status codes, wrong answers, time-outs, p50/p95/p99 of
INVITE to final response, screening's ratios to both baselines, and the app's resident
memory and CPU per call; and for screening, each call split on the wire (the ARI websocket
is captured too): Asterisk before the app, the app, Asterisk after it. Not part of CI: it
takes about 9 minutes (plus 3 the first time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import CLI, sandbox_env, serving  # noqa: E402
from bench._wire import Batch, pct, place_calls, require_tools  # noqa: E402

DATASET_VERSION = "1"
CACHE = Path(os.environ.get("SCREENING_BENCH_CACHE", "/var/cache/screening-bench"))
SANDBOX_ROOT = Path(os.environ.get("SCREENING_SANDBOX_CACHE", "/var/cache/screening-sandbox"))
ASTDB = SANDBOX_ROOT / "root" / "var" / "lib" / "asterisk" / "astdb.sqlite3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/screening_bench"

AGI_PORT = 4573  # asterisk-conf/extensions.conf

# Dialplan paths by source address (scripts/sandbox-conf/pjsip.conf).
PATHS = {
    "bare": "127.0.0.3",
    "astdb": "127.0.0.2",
    "screening": "127.0.0.1",
    "screening-b": "127.0.0.4",
    "agi": "127.0.0.5",
}

BLOCKS = 1_000_000
ALLOWS = 10_000
DNDS = 1_000
NORMAL_EXTS = [str(e) for e in range(200, 250)]
DND_EXTS = [str(e) for e in range(250, 300)]  # always in DND


@dataclass
class Dataset:
    """The rules, and the callers whose right answer is known for each path."""

    blocks: list[tuple[str, str, int]]  # (number or prefix*, extension or "", code)
    allows: list[str]
    dnd: list[tuple[str, str, str, str]]  # (extension, days, from, to)
    callers: list[tuple[str, str, str]] = field(default_factory=list)  # caller, dialled, kind

    def expected(self, path: str, caller: str, kind: str) -> int:
        if path == "bare":
            return 607
        if path == "astdb":  # exact numbers only, every scope
            return 607 if kind in ("blocked", "blocked-here") else 200
        return {"blocked": 607, "blocked-here": 607, "range": 608, "dnd": 608}.get(kind, 200)


def make_dataset(seed: int = 607) -> Dataset:
    rng = random.Random(seed)
    numbers = rng.sample(range(2_000_000_000, 10_000_000_000), BLOCKS + ALLOWS + 20_000)
    prefixes = rng.sample(range(2_000_000, 10_000_000), BLOCKS // 20)
    blocks: list[tuple[str, str, int]] = []
    it = iter(numbers)
    pit = iter(prefixes)
    for i in range(BLOCKS):
        if i % 20 == 0:
            blocks.append((f"+1{next(pit)}*", "", 608))
        elif i % 10 == 1:
            blocks.append((f"+1{next(it)}", NORMAL_EXTS[i % len(NORMAL_EXTS)], 607))
        else:
            blocks.append((f"+1{next(it)}", "", 607))
    allows = [f"+1{next(it)}" for _ in range(ALLOWS)]
    dnd = [(ext, "all", "00:00", "00:00") for ext in DND_EXTS]
    dnd += [(str(3000 + i), "mon-fri", "18:00", "08:00") for i in range(DNDS - len(DND_EXTS))]
    data = Dataset(blocks, allows, dnd)

    covered = {p[:-1] for p, _, _ in blocks if p.endswith("*")}
    exact = {n for n, _, _ in blocks if not n.endswith("*")}

    def unknown() -> str:
        while True:
            n = f"+1{next(it)}"
            if n[:9] not in covered and n not in exact:
                return n

    globals_ = [(n, e) for n, e, _ in blocks if not n.endswith("*") and e == ""]
    per_ext = [(n, e) for n, e, _ in blocks if e != ""]
    ranges = [p[:-1] for p, _, _ in blocks if p.endswith("*")]
    for _ in range(350):
        data.callers.append((rng.choice(globals_)[0], rng.choice(NORMAL_EXTS), "blocked"))
    for n, e in rng.sample(per_ext, 100):
        data.callers.append((n, e, "blocked-here"))
    for p in rng.sample(ranges, 100):
        caller = f"{p}{rng.randrange(1000):03d}"
        if caller not in exact:
            data.callers.append((caller, rng.choice(NORMAL_EXTS), "range"))
    for _ in range(100):
        data.callers.append((unknown(), rng.choice(DND_EXTS), "dnd"))
    for n in rng.sample(allows, 100):
        data.callers.append((n, rng.choice(DND_EXTS), "allowed"))
    for _ in range(250):
        data.callers.append((unknown(), rng.choice(NORMAL_EXTS), "unknown"))
    rng.shuffle(data.callers)
    return data


def write_csvs(data: Dataset, where: Path, small: bool) -> list[Path]:
    """Our CSV import format. small: only the block entries the caller mix needs, padded to
    1,000 with others, so both databases give every caller the same answer."""
    blocks = data.blocks
    if small:
        needed = {c for c, _, k in data.callers if k in ("blocked", "blocked-here")}
        needed |= {c[:9] + "*" for c, _, k in data.callers if k == "range"}
        chosen = [b for b in blocks if b[0] in needed]
        chosen += [b for b in blocks[:2000] if b[0] not in needed][: 1000 - len(chosen)]
        blocks = chosen
    paths = [where / "blocks.csv", where / "allows.csv", where / "dnd.csv"]
    with paths[0].open("w") as f:
        f.write("kind,number,extension,code\n")
        f.writelines(f"block,{n},{e},{c}\n" for n, e, c in blocks)
    with paths[1].open("w") as f:
        f.write("kind,number\n")
        f.writelines(f"allow,{n}\n" for n in data.allows)
    with paths[2].open("w") as f:
        f.write("kind,extension,days,from,to,tz\n")
        f.writelines(f"dnd,{e},{d},{a},{b},UTC\n" for e, d, a, b in data.dnd)
    return paths


def screening_cli(url: str, *args: str) -> None:
    env = {**os.environ, "SCREENING_DATABASE_URL": url}
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"screening {' '.join(args)}: {proc.stderr.strip()}")


def load_database(data: Dataset, url: str, small: bool, note: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory() as work:
        screening_cli(url, "db", "upgrade")
        for csv_file in write_csvs(data, Path(work), small):
            t0 = time.monotonic()
            screening_cli(url, "import", str(csv_file))
            note(f"  imported {csv_file.name} in {time.monotonic() - t0:.1f}s")


def sqlite_databases(data: Dataset, note: Callable[[str], None]) -> tuple[Path, Path]:
    big, small = CACHE / f"screening-1m-v{DATASET_VERSION}.db", CACHE / "screening-1k.db"
    CACHE.mkdir(parents=True, exist_ok=True)
    for path, is_small in ((big, False), (small, True)):
        if not path.exists():
            note(f"building {path} (once)")
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            load_database(data, f"sqlite:///{tmp}", is_small, note)
            tmp.rename(path)
    return big, small


def postgresql_database(data: Dataset, note: Callable[[str], None]) -> str:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = 'screening_bench'").fetchone()
        if exists:
            with psycopg.connect(PG_URL) as b:
                try:
                    rows = b.execute("SELECT count(*) FROM block_entries").fetchone()
                    ready = rows is not None and rows[0] == BLOCKS
                except psycopg.Error:
                    ready = False
            if ready:
                return PG_URL
            c.execute("DROP DATABASE screening_bench")
        c.execute("CREATE DATABASE screening_bench")
    note("loading the 1M-entry database into PostgreSQL (once)")
    load_database(data, PG_URL, False, note)
    return PG_URL


def load_astdb(data: Dataset, note: Callable[[str], None]) -> None:
    """The same block values as AstDB keys, FreePBX-style: /blacklist/<number>. Written
    straight into astdb.sqlite3 while Asterisk is stopped (1M `database put` would take
    an hour)."""
    marker = f"/screening-bench/dataset-{DATASET_VERSION}"
    if ASTDB.exists():
        with sqlite3.connect(ASTDB) as db:
            if db.execute("SELECT 1 FROM astdb WHERE key = ?", (marker,)).fetchone():
                return
    note(f"loading {BLOCKS:,} keys into the sandbox's AstDB (once)")
    subprocess.run([str(REPO / "scripts" / "sandbox"), "down"], check=True)
    with sqlite3.connect(ASTDB) as db:
        db.execute("CREATE TABLE IF NOT EXISTS astdb(key TEXT, value TEXT, PRIMARY KEY(key))")
        db.execute("DELETE FROM astdb WHERE key LIKE '/blacklist/%'")
        db.executemany(
            "INSERT INTO astdb VALUES (?, '1')",
            ((f"/blacklist/{n.rstrip('*')}",) for n, _, _ in data.blocks),
        )
        db.execute("INSERT INTO astdb VALUES (?, '1')", (marker,))


def proc_stats(pid: int) -> tuple[float, float]:
    """(resident MB, CPU seconds) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    path: str
    rate: float
    batch: Batch
    wrong: int
    rss_mb: float | None = None
    cpu_ms_per_call: float | None = None

    def ms(self, status: int | None = None) -> list[float]:
        return [c.ms for c in self.batch.calls if status is None or c.status == status]

    def split_row(self) -> str | None:
        """Where screening's calls spent their time: p50 / p99 of each part, in ms."""
        splits = [c.split for c in self.batch.calls if c.split is not None]
        if not splits:
            return None
        parts = [[getattr(s, part) for s in splits] for part in ("to_app", "in_app", "after_app")]
        return (
            f"| {self.label} | {self.rate:g} | {len(splits)} | "
            + " | ".join(f"{pct(v, 50):.2f} / {pct(v, 99):.2f}" for v in parts)
            + " |"
        )

    def row(self) -> str:
        codes = Counter(c.status for c in self.batch.calls)
        lat = self.ms()
        mem = f"{self.rss_mb:.0f} MB" if self.rss_mb is not None else ""
        cpu = f"{self.cpu_ms_per_call:.2f} ms" if self.cpu_ms_per_call is not None else ""
        return (
            f"| {self.label} | {self.rate:g} | {self.batch.sent} | "
            f"{' '.join(f'{k}x{v}' for k, v in sorted(codes.items()))} | {self.wrong} | "
            f"{self.batch.timeouts} | {pct(lat, 50):.2f} | {pct(lat, 95):.2f} | "
            f"{pct(lat, 99):.2f} | {mem} | {cpu} |"
        )


@dataclass(frozen=True)
class Lane:
    """One path under test: its label, its dialplan path, and the app behind it (if any)."""

    label: str
    path: str
    pid: int | None = None


class Bench:
    def __init__(self, data: Dataset, env: dict[str, str], work: Path) -> None:
        self.data = data
        self.env = env
        self.work = work
        self.port = int(env["SANDBOX_SIP_PORT"])
        self.ari_port = urlsplit(env["SCREENING_ARI_URL"]).port
        self.runs = 0
        self.results: list[Result] = []
        self.kinds = {(c, d): k for c, d, k in data.callers}

    def compare(self, lanes: list[Lane], rate: float, seconds: float, slices: int = 4) -> None:
        """`seconds` of calls at `rate` per lane, the lanes taking turns in `slices` slices:
        whatever a shared machine does meanwhile falls on every lane alike."""
        batches: dict[str, list[Batch]] = {lane.label: [] for lane in lanes}
        before = {lane.label: proc_stats(lane.pid) for lane in lanes if lane.pid}
        for _ in range(slices):
            for lane in lanes:
                self.runs += 1
                batches[lane.label].append(
                    place_calls(
                        [(c, d) for c, d, _ in self.data.callers],
                        rate=rate,
                        count=int(rate * seconds / slices),
                        source_ip=PATHS[lane.path],
                        sip_port=self.port,
                        local_port=5100 + self.runs,
                        workdir=self.work / "sipp",
                        ari_port=self.ari_port if lane.pid and lane.path != "agi" else None,
                        agi_port=AGI_PORT if lane.path == "agi" else None,
                    )
                )
        for lane in lanes:
            parts = batches[lane.label]
            batch = Batch(
                sent=sum(b.sent for b in parts),
                calls=[c for b in parts for c in b.calls],
                seconds=sum(b.seconds for b in parts),
            )
            wrong = sum(
                1
                for c in batch.calls
                if c.status
                != self.data.expected(lane.path, c.caller, self.kinds[(c.caller, c.dialled)])
            )
            result = Result(lane.label, lane.path, rate, batch, wrong)
            if lane.pid:
                rss, cpu = proc_stats(lane.pid)
                result.rss_mb = rss
                cpu_s = cpu - before[lane.label][1]
                result.cpu_ms_per_call = cpu_s * 1000 / max(len(batch.calls), 1)
            self.results.append(result)
            print(result.row(), flush=True)

    @contextmanager
    def serve(self, url: str, app: str) -> Iterator[int]:
        """`screening serve` as ARI app `app` ("screening" or "screening-b"), or `screening
        agi` for app "agi"."""
        env = {**self.env, "SCREENING_DATABASE_URL": url, "SCREENING_ARI_APP": app}
        door = "agi" if app == "agi" else "serve"
        workdir = self.work / app
        workdir.mkdir(exist_ok=True)
        with serving(env, workdir, door) as proc:
            if proc.poll() is not None:
                raise SystemExit(
                    f"screening {door} exited: {(workdir / f'{door}.log').read_text()}"
                )
            # Warm up: first connections, first pages of the database.
            place_calls(
                [(c, d) for c, d, _ in self.data.callers[:50]],
                rate=50,
                count=100,
                source_ip=PATHS[app],
                sip_port=self.port,
                local_port=5099,
                workdir=self.work / "sipp",
                wire=False,
            )
            yield proc.pid


HEADER = (
    "| path | calls/s | calls | status codes | wrong | time-outs | p50 ms | p95 ms | p99 ms "
    "| app RSS | app CPU/call |\n|---|---|---|---|---|---|---|---|---|---|---|"
)
SPLIT_HEADER = (
    "\nScreening's calls split on the wire, p50 / p99 in ms: INVITE -> StasisStart at the app"
    " (ARI) or the end of the AGI environment (FastAGI) (Asterisk), that -> the app's request"
    " (the app), request -> final response (Asterisk)\n\n| path | calls/s | calls split"
    " | Asterisk, before the app | the app | Asterisk, after the app |\n|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200", help="calls per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20, help="per path and rate")
    parser.add_argument("--capacity-seconds", type=float, default=60)
    parser.add_argument("--no-postgresql", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the four paths at --rates: no capacity, list-size or PostgreSQL runs",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    require_tools()

    def note(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    data = make_dataset()
    big, small = sqlite_databases(data, note)
    pg_url = None if args.no_postgresql or args.quick else postgresql_database(data, note)
    load_astdb(data, note)
    env = sandbox_env()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench = Bench(data, env, work)
        # Copies: call-log rows must not pile up in the cached databases.
        db_1m, db_1k, db_agi = work / "1m.db", work / "1k.db", work / "1m-agi.db"
        subprocess.run(["cp", str(big), str(db_1m)], check=True)
        subprocess.run(["cp", str(small), str(db_1k)], check=True)
        subprocess.run(["cp", str(big), str(db_agi)], check=True)
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"{platform.processor() or platform.machine()}, {len(data.callers)} distinct callers"
        )
        print(HEADER)
        with (
            bench.serve(f"sqlite:///{db_1m}", "screening") as pid,
            bench.serve(f"sqlite:///{db_agi}", "agi") as pid_agi,
        ):
            main_lane = Lane("screening 1M SQLite", "screening", pid)
            agi_lane = Lane("FastAGI 1M SQLite", "agi", pid_agi)
            for rate in rates:
                bench.compare(
                    [
                        Lane("bare dialplan", "bare"),
                        Lane("AstDB 1M", "astdb"),
                        main_lane,
                        agi_lane,
                    ],
                    rate,
                    args.seconds,
                )
            if not args.quick:
                capacity = Lane("screening 1M SQLite, capacity", "screening", pid)
                bench.compare([capacity], max(rates), args.capacity_seconds, slices=1)
                agi_capacity = Lane("FastAGI 1M SQLite, capacity", "agi", pid_agi)
                bench.compare([agi_capacity], max(rates), args.capacity_seconds, slices=1)
                beside_runs(bench, pid, f"sqlite:///{db_1k}", pg_url, rates[0], args.seconds)
    print(SPLIT_HEADER)
    for result in bench.results:
        if (line := result.split_row()) is not None:
            print(line)
    summary = summarise(bench.results, rates[0], max(rates))
    print(summary)
    if args.out:
        args.out.write_text(
            json.dumps(
                [
                    {
                        "label": r.label,
                        "rate": r.rate,
                        "sent": r.batch.sent,
                        "codes": Counter(c.status for c in r.batch.calls),
                        "wrong": r.wrong,
                        "timeouts": r.batch.timeouts,
                        "p50": pct(r.ms(), 50),
                        "p95": pct(r.ms(), 95),
                        "p99": pct(r.ms(), 99),
                        "rss_mb": r.rss_mb,
                        "cpu_ms_per_call": r.cpu_ms_per_call,
                        "split_p50_p99": {
                            part: [pct(v, 50), pct(v, 99)]
                            for part in ("to_app", "in_app", "after_app")
                            if (v := [getattr(c.split, part) for c in r.batch.calls if c.split])
                        },
                    }
                    for r in bench.results
                ],
                indent=1,
            )
        )
    return 0


def beside_runs(
    bench: Bench, pid: int, url_1k: str, pg_url: str | None, rate: float, seconds: float
) -> None:
    """A second app instance ("screening-b", another source address) beside the first, the
    two taking turns, so that each comparison is made under the same conditions: 1M entries
    against 1k, then SQLite against PostgreSQL."""
    runs = [(url_1k, "beside 1k", "screening 1k SQLite")]
    if pg_url is not None:
        runs.append((pg_url, "beside PostgreSQL", "screening 1M PostgreSQL"))
    for url, beside, label in runs:
        with bench.serve(url, "screening-b") as pid_b:
            bench.compare(
                [
                    Lane(f"screening 1M SQLite, {beside}", "screening", pid),
                    Lane(label, "screening-b", pid_b),
                ],
                rate,
                seconds,
            )


def summarise(results: list[Result], rate: float, top_rate: float) -> str:
    def find(label: str, at: float = rate) -> Result:
        return next(r for r in results if r.label == label and r.rate == at)

    p50 = statistics.median
    lines = []
    for at in sorted({r.rate for r in results if r.label == "bare dialplan"}):
        bare, astdb = find("bare dialplan", at), find("AstDB 1M", at)
        lines.append(f"\nAt {at:g} calls/s:")
        for door, label in (("ARI", "screening 1M SQLite"), ("FastAGI", "FastAGI 1M SQLite")):
            scr = find(label, at)
            rej, ok, ok_astdb = scr.ms(607), scr.ms(200), astdb.ms(200)
            lines += [
                f"- {door} INVITE->607 p50: {p50(rej):.2f} ms, AstDB {p50(astdb.ms(607)):.2f} ms,"
                f" bare {p50(bare.ms()):.2f} ms: {p50(rej) / p50(astdb.ms(607)):.2f}x AstDB,"
                f" {p50(rej) / p50(bare.ms()):.2f}x bare; 607 p99 {pct(rej, 99):.2f} ms;"
                f" app CPU {scr.cpu_ms_per_call or 0:.2f} ms per call",
                f"- {door} allowed calls (200) p50: {p50(ok):.2f} ms, AstDB path"
                f" {p50(ok_astdb):.2f} ms: the door adds {p50(ok) - p50(ok_astdb):.2f} ms",
            ]
    if not any(r.label == "screening 1k SQLite" for r in results):
        return "\n".join(lines)  # --quick
    small, beside = find("screening 1k SQLite"), find("screening 1M SQLite, beside 1k")
    capacity = find("screening 1M SQLite, capacity", top_rate)
    agi_capacity = find("FastAGI 1M SQLite, capacity", top_rate)
    lines += [
        "\nAlso:",
        f"- list size at {rate:g} calls/s: p50 {p50(beside.ms()):.2f} ms with 1M entries,"
        f" {p50(small.ms()):.2f} ms with 1k"
        f" ({(p50(beside.ms()) / p50(small.ms()) - 1) * 100:+.0f}%), taking turns",
        f"- capacity: {capacity.batch.sent} calls at {capacity.rate:g}/s over"
        f" {capacity.batch.seconds:.0f}s, p99 {pct(capacity.ms(), 99):.2f} ms,"
        f" {capacity.batch.timeouts} time-outs, {capacity.wrong} wrong",
        f"- FastAGI capacity: {agi_capacity.batch.sent} calls at {agi_capacity.rate:g}/s over"
        f" {agi_capacity.batch.seconds:.0f}s, p99 {pct(agi_capacity.ms(), 99):.2f} ms,"
        f" {agi_capacity.batch.timeouts} time-outs, {agi_capacity.wrong} wrong",
    ]
    pg = [r for r in results if r.label == "screening 1M PostgreSQL"]
    if pg:
        pg_ms, lite_ms = pg[0].ms(), find("screening 1M SQLite, beside PostgreSQL").ms()
        lines.append(
            f"- PostgreSQL 1M at {rate:g} calls/s: p50 {p50(pg_ms):.2f} ms, p99"
            f" {pct(pg_ms, 99):.2f} ms (SQLite taking turns with it: p50 {p50(lite_ms):.2f} ms,"
            f" p99 {pct(lite_ms, 99):.2f} ms)"
        )
    rss = max(r.rss_mb or 0 for r in results)
    lines.append(f"- app resident memory, highest seen: {rss:.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
