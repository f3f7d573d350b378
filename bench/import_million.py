"""Import 1,000,000 block entries into a fresh SQLite database with `screening import`.

    .venv/bin/python bench/import_million.py [--rows 1000000] [--keep DIR]

Writes a CSV of distinct numbers (95%) and prefixes (5%) in mixed formats, then times the
real command, as an admin would run it, and checks the row count afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_csv(path: Path, rows: int, seed: int = 607) -> None:
    rng = random.Random(seed)
    numbers = rng.sample(range(2_000_000_000, 9_999_999_999), rows)
    # 5% prefixes, distinct among themselves (7 digits after +1: exchange-level ranges).
    prefixes = iter(rng.sample(range(2_000_000, 9_999_999), rows // 20 + 1))
    with path.open("w") as f:
        f.write("kind,number,extension,code,reason\n")
        for i, n in enumerate(numbers):
            if i % 20 == 0:
                f.write(f"block,+1{next(prefixes)}*,,608,range {i}\n")
            elif i % 3 == 0:
                f.write(f"block,({str(n)[:3]}) {str(n)[3:6]}-{str(n)[6:]},,607,\n")
            elif i % 3 == 1:
                f.write(f"block,+1{n},{200 + i % 100},607,spam\n")
            else:
                f.write(f"block,1{n},,607,robocaller\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        csv_path, db = Path(work) / "blocks.csv", Path(work) / "screening.db"
        t0 = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(
            f"wrote {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        env = {**os.environ, "SCREENING_DATABASE_URL": f"sqlite:///{db}"}
        cli = [sys.executable, "-m", "screening"]
        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cli, "import", str(csv_path)], env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        stored = sqlite3.connect(db).execute("SELECT count(*) FROM block_entries").fetchone()[0]
        print(proc.stdout.strip())
        print(
            f"import of {args.rows:,} block entries into SQLite: {elapsed:.1f}s wall "
            f"({args.rows / elapsed:,.0f} rows/s), {stored:,} rows stored, "
            f"database {db.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} cores"
        )
        return 0 if stored == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
