"""What the early-media challenge costs: time to the prompt, the prompt's length, and the
app's CPU and memory with 20 callers in the challenge at once, in one run.

    .venv/bin/python bench/challenge.py [--rounds 5] [--at-once 20] [--door ari|agi]

On the sandbox Asterisk: rounds of --at-once simultaneous calls to an extension whose
unverified callers are challenged (every sandbox call is unverified), each caller pressing
the digit the app's JSON log line names (as the tests do), between rounds of as many calls to an
extension with no policy (plain screened calls that ring) for comparison. One silent caller
measures the prompt as heard: first to last RTP packet. Prints, per kind: INVITE -> 183
(challenged) or -> final response (plain), the app's CPU per call from /proc, and its
resident memory before and at the peak of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import sandbox_env, screening, serving  # noqa: E402
from bench.calls import proc_stats  # noqa: E402
from tests.sipprobe import CallResult, EarlyMedia, named_digit, place_call  # noqa: E402

CHALLENGED, PLAIN = "261", "262"
SOURCE = {"ari": "127.0.0.1", "agi": "127.0.0.5"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Peak:
    """The highest resident memory of a process, sampled every 50 ms while running."""

    def __init__(self, pid: int) -> None:
        self.pid, self.mb = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.mb = max(self.mb, proc_stats(self.pid)[0])


def press_named_digit(log: Path, caller: str) -> EarlyMedia:
    async def press() -> str:
        for _ in range(200):
            text = await asyncio.to_thread(log.read_text, errors="replace")
            digit = named_digit(text, caller)
            if digit is not None:
                return digit
            await asyncio.sleep(0.025)
        return ""

    return EarlyMedia(press=press, listen=0.5)


async def round_of(
    n: int, ext: str, first: int, port: int, source: str, log: Path | None
) -> list[CallResult]:
    callers = [f"+1555{first + i:07d}" for i in range(n)]
    return await asyncio.gather(
        *(
            place_call(
                ext,
                c,
                port=port,
                source=source,
                early=press_named_digit(log, c) if log is not None else None,
                final_within=30,
            )
            for c in callers
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--at-once", type=int, default=20)
    parser.add_argument("--door", choices=("ari", "agi"), default="ari")
    args = parser.parse_args()
    env = sandbox_env()
    port = int(env.get("SANDBOX_SIP_PORT", "5060"))
    source = SOURCE[args.door]
    door = "serve" if args.door == "ari" else "agi"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # JSON log lines: the digit each challenge asks for is a field of its line.
        env |= {
            "SCREENING_DATABASE_URL": f"sqlite:///{work / 'screening.db'}",
            "SCREENING_LOG_FORMAT": "json",
        }
        screening(env, "db", "upgrade")
        screening(env, "policy", "set", "unverified", "--for", CHALLENGED, "--action", "challenge")
        # Passed callers are not asked again: every call in the run is a new caller.
        log = work / f"{door}.log"
        with serving(env, work, door) as app:
            pid = app.pid
            # Warm up both paths (first look-ups, first prompt read from disk).
            asyncio.run(round_of(2, CHALLENGED, 9000000, port, source, log))
            asyncio.run(round_of(2, PLAIN, 9000100, port, source, None))
            silent = asyncio.run(
                place_call(
                    CHALLENGED,
                    "+15559000200",
                    port=port,
                    source=source,
                    early=EarlyMedia(),
                    final_within=30,
                )
            )
            rss_before, _ = proc_stats(pid)
            challenged: list[CallResult] = []
            plain: list[CallResult] = []
            cpu = {"challenged": 0.0, "plain": 0.0}
            wall = {"challenged": 0.0, "plain": 0.0}
            with Peak(pid) as peak:
                for r in range(args.rounds):
                    for kind, ext, into, with_log in (
                        ("challenged", CHALLENGED, challenged, log),
                        ("plain", PLAIN, plain, None),
                    ):
                        _, cpu0 = proc_stats(pid)
                        t0 = time.perf_counter()
                        base = 1000000 + 10000 * r + (5000 if kind == "plain" else 0)
                        into += asyncio.run(
                            round_of(args.at_once, ext, base, port, source, with_log)
                        )
                        wall[kind] += time.perf_counter() - t0
                        time.sleep(0.5)  # let the call-log writer and the rest settle
                        cpu[kind] += proc_stats(pid)[1] - cpu0
    n = args.rounds * args.at_once
    ok_challenged = sum(r.status == 200 for r in challenged)
    ok_plain = sum(r.status == 200 for r in plain)
    to_183 = [r.early_media_ms for r in challenged if r.early_media_ms is not None]
    to_final = [r.elapsed_ms for r in plain]
    prompt_s = silent.early_audio_s
    print(f"{args.door} door, {args.rounds} rounds of {args.at_once} simultaneous calls each kind")
    print(
        "| kind | calls | 200 OK | INVITE -> 183 (challenged) or final (plain), p50 / p95 ms "
        "| app CPU per call | app RSS before -> peak |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| challenged | {n} | {ok_challenged} | {statistics.median(to_183):.2f} / "
        f"{pct(to_183, 95):.2f} | {1000 * cpu['challenged'] / n:.2f} ms | "
        f"{rss_before:.0f} -> {peak.mb:.0f} MB |"
    )
    print(
        f"| plain | {n} | {ok_plain} | {statistics.median(to_final):.2f} / "
        f"{pct(to_final, 95):.2f} | {1000 * cpu['plain'] / n:.2f} ms | |"
    )
    print(
        f"one caller alone: INVITE -> 183 {silent.early_media_ms or 0:.1f} ms; "
        f"prompt as heard: {prompt_s:.2f} s of RTP, "
        f"{silent.early_rtp_packets} packets; final {silent.status_line} after "
        f"{silent.elapsed_ms / 1000:.1f} s"
    )
    print(
        f"a challenged call costs the app {cpu['challenged'] / max(cpu['plain'], 1e-9):.1f}x "
        f"the CPU of a plain one"
    )
    return 0 if ok_challenged == n and ok_plain == n else 1


if __name__ == "__main__":
    sys.exit(main())
