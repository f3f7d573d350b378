"""Where a door's CPU goes under load: calls at a fixed rate through one door, the door's
CPU time per call from /proc, and (with py-spy installed) a sampled profile of every thread
of the door (less the samples of threads waiting), summed by function.

    .venv/bin/python bench/cpu.py [--door ari|agi] [--rate 200] [--seconds 20] [--top 25]

Uses the 1M-entry database bench/calls.py builds (run that once first) and sipp, without a
capture. Not part of CI.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import sandbox_env, serving  # noqa: E402
from bench._wire import Batch, place_calls, require_tools  # noqa: E402
from bench.calls import CACHE, DATASET_VERSION, PATHS, make_dataset  # noqa: E402


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


#: Where a thread waits rather than works: py-spy samples these too.
IDLE = ("EpollSelector.select (", "_worker (thread.py:81)", "Condition.wait (")


def _short(frame: str) -> str:
    """`function (/long/path/file.py:12)` -> `function (file.py:12)`."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rsplit('/', 1)[-1]}"


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw (collapsed) stacks, less the samples of threads waiting -> the functions
    where samples ended (self time) and the ones they passed through (total time), as
    shares of the working samples."""
    own: collections.Counter[str] = collections.Counter()
    through: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        if frames[-1].startswith(IDLE):
            idle += n
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            through[frame] += n
    lines = [f"{total} working samples ({idle} more waiting)", "", "self %  function (file:line)"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total %  function (file:line)"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in through.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--door", choices=["ari", "agi"], default="ari")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    require_tools(capture=False)
    cached = CACHE / f"screening-1m-v{DATASET_VERSION}.db"
    if not cached.exists():
        raise SystemExit(f"{cached} is missing: run bench/calls.py once first")
    callers = [(c, d) for c, d, _ in make_dataset().callers]
    env = sandbox_env()
    port = int(env["SANDBOX_SIP_PORT"])
    path = "screening" if args.door == "ari" else "agi"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "1m.db"
        shutil.copy(cached, db)
        env["SCREENING_DATABASE_URL"] = f"sqlite:///{db}"
        with serving(env, work, "serve" if args.door == "ari" else "agi") as proc:

            def calls(rate: float, count: int, local_port: int) -> Batch:
                return place_calls(
                    callers,
                    rate=rate,
                    count=count,
                    source_ip=PATHS[path],
                    sip_port=port,
                    local_port=local_port,
                    workdir=work,
                    wire=False,
                )

            calls(50, 200, 5098)  # warm-up: first connections, first pages of the database
            before = cpu_times(proc.pid)
            spy = None
            raw = work / "profile.txt"
            if shutil.which("py-spy"):
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--rate",
                        "500",
                        "--threads",
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                        "--duration",
                        f"{args.seconds:.0f}",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            batch = calls(args.rate, int(args.rate * args.seconds), 5097)
            after = cpu_times(proc.pid)
            user, system = after[0] - before[0], after[1] - before[1]
            if spy is not None:
                spy.wait(timeout=args.seconds + 30)
        per_call = 1000 / max(len(batch.calls), 1)
        print(
            f"{args.door}: {len(batch.calls)} calls at {args.rate:g}/s, {batch.timeouts} time-outs;"
            f" the door's CPU {(user + system) * per_call:.2f} ms per call"
            f" ({user * per_call:.2f} user, {system * per_call:.2f} system)"
        )
        if spy is not None and raw.exists():
            print(summarise(raw, args.top))
        elif spy is None:
            print("(py-spy not installed: pip install py-spy for the profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
