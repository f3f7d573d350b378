"""What STIR/SHAKEN verification costs a call: signed and unsigned calls in one run.

    .venv/bin/python bench/identity.py [--rate 100] [--seconds 10] [--slices 4] [--door ari|agi]

On the sandbox Asterisk, through its trusted trunk (127.0.0.6 for ARI, 127.0.0.7 for
FastAGI), calls to an extension whose policies reject both kinds with 608: unsigned calls
(the unverified policy) and calls signed with the sandbox's test key, attestation C (the
attestation-below-A policy), so each signed call is verified (ES256 signature, certificate
from the cache) and both take the same path after. The two kinds take turns in --slices
slices so that the shared machine's drift falls on both alike. Prints, per kind: calls,
wrong answers, INVITE to final response as the client saw it (p50/p95/p99), and the
screener's own time per call from the call log (p50/p95), and the ratio signed/unsigned.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import sandbox_env, screening, serving  # noqa: E402
from tests.sipprobe import identity_headers, load  # noqa: E402

SOURCE = {"ari": "127.0.0.6", "agi": "127.0.0.7"}
EXT = "250"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10, help="per slice and kind")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--door", choices=("ari", "agi"), default="ari")
    args = parser.parse_args()
    env = sandbox_env()
    key = Path(env["SANDBOX_STIR_KEY"]).read_bytes()
    x5u = env["SANDBOX_STIR_X5U"]
    port = int(env.get("SANDBOX_SIP_PORT", "5060"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "screening.db"
        env |= {
            "SCREENING_DATABASE_URL": f"sqlite:///{db}",
            "SCREENING_STIR_CACHE_DIR": str(work / "stir"),
        }
        screening(env, "db", "upgrade")
        screening(env, "policy", "set", "unverified", "--for", EXT)
        screening(env, "policy", "set", "attestation-below-A", "--for", EXT)
        door = "serve" if args.door == "ari" else "agi"
        callers = [(f"+1555030{i:04d}", EXT) for i in range(1000)]

        def signed(caller: str, ext: str) -> dict[str, str]:
            return identity_headers(key, x5u, caller, ext, "C")

        with serving(env, work, door):
            # The first signed call fetches the certificate; the rest use the cache.
            asyncio.run(
                load(callers[:5], 10, 0.5, port=port, source=SOURCE[args.door], headers=signed)
            )
            seen: dict[str, list[float]] = {"unsigned": [], "signed": []}
            wrong = {"unsigned": 0, "signed": 0}
            for _ in range(args.slices):
                for kind in ("unsigned", "signed"):
                    done = asyncio.run(
                        load(
                            callers,
                            args.rate,
                            args.seconds,
                            port=port,
                            source=SOURCE[args.door],
                            headers=signed if kind == "signed" else None,
                        )
                    )
                    for _offset, _caller, _ext, result in done:
                        if result.status == 608:
                            seen[kind].append(result.elapsed_ms)
                        else:
                            wrong[kind] += 1
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT verification, policy, decision_us FROM call_log WHERE extension = ?",
                (EXT,),
            ).fetchall()
    app = {
        "unsigned": [us / 1000 for v, p, us in rows if v is None and p == "unverified"],
        "signed": [us / 1000 for v, p, us in rows if v == "success" and p == "attestation-below-A"],
    }
    print(
        f"door {args.door}, {args.rate:g} calls/s, {args.slices} slices of {args.seconds:g} s "
        "per kind"
    )
    print("| kind | answered 608 | wrong | p50 ms | p95 ms | p99 ms | app p50 ms | app p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("unsigned", "signed"):
        ms, own = seen[kind], app[kind]
        print(
            f"| {kind} | {len(ms)} | {wrong[kind]} | {statistics.median(ms):.2f} | "
            f"{pct(ms, 95):.2f} | {pct(ms, 99):.2f} | {statistics.median(own):.2f} | "
            f"{pct(own, 95):.2f} |"
        )
    ratio = statistics.median(seen["signed"]) / statistics.median(seen["unsigned"])
    own_ratio = statistics.median(app["signed"]) / statistics.median(app["unsigned"])
    print(f"signed / unsigned, p50 on the wire: {ratio:.2f}x; in the app: {own_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
