"""Admins edit lists and import while calls flow: sipp drives 100 calls/s at the sandbox
while the CLI adds and removes entries and an import loads 30,000 more. No call gets a wrong
answer or waits too long, no command fails, and every write and every call-log row is there.

Each call's time is also split on the wire (bench/_wire.py, Split) into Asterisk's part
before the app, the app's part, and Asterisk's part after it: the app's part is held to the
bound for every single call.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench._wire import Batch, pct, place_calls, require_tools
from tests.e2e.conftest import App

# Its bound holds for calls on an otherwise quiet machine (scripts/test runs it last, alone).
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

RATE = 100
SECONDS = 20
#: bench/calls.py holds screening to p99 <= 10 ms at 100 calls/s; with admins at work a
#: call may take at most twice that. The app's own part of every call (split on the wire)
#: is held to it without exception, and the whole call at p99. Not the whole of every call:
#: on this 2-vCPU VM sipp, Asterisk and the app share two cores, and about one run in six
#: has a single call that spends 30-40 ms outside the app, in Asterisk or sipp (the test
#: prints the slowest calls and where their time went).
BOUND_MS = 20.0

# Callers whose answer the edits below never change.
MIX = [
    ("+15550900001", "201", 607),  # blocked before the run
    ("+15550900002", "202", 608),  # blocked with 608
    ("+15550900003", "203", 200),  # unknown
    ("+15550900004", "204", 200),  # allowed
]


def edits(app: App, errors: list[str], stop: threading.Event) -> int:
    """Add, list and remove entries that no caller in MIX uses, until told to stop."""
    done = 0
    while not stop.is_set():
        number = f"+1555091{done:04d}"
        for args in (
            ("block", "add", number, "--reason", "edited under load"),
            ("allow", "add", number, "--for", "250"),
            ("block", "list", "--json"),
            ("allow", "remove", number, "--for", "250"),
        ):
            r = app.cli(*args)
            if r.code != 0:
                errors.append(f"screening {' '.join(args)}: exit {r.code}: {r.err}")
        done += 1
    return done


def test_cli_edits_and_an_import_while_calls_flow(
    own_app: Callable[..., App], tmp_path: Path
) -> None:
    require_tools()
    app = own_app()
    for args in (
        ("block", "add", "+15550900001"),
        ("block", "add", "+15550900002", "--code", "608"),
        ("allow", "add", "+15550900004"),
    ):
        assert app.cli(*args).code == 0
    bulk = tmp_path / "bulk.csv"
    bulk.write_text(
        "kind,number,reason\n" + "".join(f"block,+1666{n:07d},bulk\n" for n in range(30_000))
    )

    ari_port = urlsplit(app.env["SCREENING_ARI_URL"]).port

    def drive(count: int, port: int) -> Batch:
        return place_calls(
            [(c, d) for c, d, _ in MIX],
            rate=RATE,
            count=count,
            source_ip="127.0.0.1",
            sip_port=app.sip_port,
            local_port=port,
            workdir=tmp_path / "sipp",
            ari_port=ari_port,
        )

    quiet = drive(RATE * 10, 5300)  # the same calls with nobody editing, for comparison
    results: dict[str, Batch] = {}
    errors: list[str] = []
    stop = threading.Event()
    rounds: list[int] = []
    editor = threading.Thread(target=lambda: rounds.append(edits(app, errors, stop)))
    caller_thread = threading.Thread(
        target=lambda: results.setdefault("busy", drive(RATE * SECONDS, 5301))
    )
    caller_thread.start()
    time.sleep(2)
    editor.start()
    time.sleep(3)
    imported = app.cli("import", str(bulk))
    caller_thread.join()
    stop.set()
    editor.join()

    assert imported.code == 0, imported.err
    assert errors == []
    batch = results["busy"]
    expected = {(c, d): want for c, d, want in MIX}
    for phase in (quiet, batch):
        wrong = Counter(
            (c.caller, c.status) for c in phase.calls if c.status != expected[(c.caller, c.dialled)]
        )
        assert phase.timeouts == 0, f"{phase.timeouts} of {phase.sent} calls got no answer"
        assert not wrong, f"wrong answers: {wrong}"
    figures = (
        f"quiet: p50 {pct(quiet_ms := [c.ms for c in quiet.calls], 50):.2f} ms, "
        f"p99 {pct(quiet_ms, 99):.2f} ms, max {max(quiet_ms):.1f} ms; "
        f"busy: p50 {pct(busy_ms := [c.ms for c in batch.calls], 50):.2f} ms, "
        f"p99 {pct(busy_ms, 99):.2f} ms, max {max(busy_ms):.1f} ms "
        f"({rounds[0] if rounds else 0} edit rounds, import of 30,000 rows)"
    )
    both = quiet.calls + batch.calls
    split = [c for c in both if c.split is not None]
    assert len(split) >= 0.99 * len(both), f"only {len(split)} of {len(both)} calls split"
    began = {id(c): phase.calls[0].sent_at for phase in (quiet, batch) for c in phase.calls}
    for c in sorted(both, key=lambda c: c.ms)[-5:]:
        part = c.split
        where = (
            f"{part.to_app:.1f} before the app, {part.in_app:.1f} in it, {part.after_app:.1f} after"
            if part
            else "not split"
        )
        when = "quiet" if c in quiet.calls else "busy"
        at = c.sent_at - began[id(c)]
        print(f"slowest: {c.ms:.1f} ms, {when} +{at:.1f} s: {where}")
    app_ms = sorted(c.split.in_app for c in split if c.split)
    figures += f"; the app's part: p50 {pct(app_ms, 50):.2f} ms, max {app_ms[-1]:.1f} ms"
    print(figures)
    assert pct(busy_ms, 99) <= BOUND_MS, figures
    assert app_ms[-1] <= BOUND_MS, figures

    # No lost writes: every edit and every imported row is there, every call is logged.
    db = app.env["SCREENING_DATABASE_URL"].removeprefix("sqlite:///")
    assert rounds and _count(db, "block_entries WHERE reason = 'edited under load'") == rounds[0]
    assert rounds[0] >= 2  # edits really ran beside the calls
    assert _count(db, "block_entries WHERE reason = 'bulk'") == 30_000
    assert _count(db, "allow_entries WHERE scope = '250'") == 0
    deadline = time.monotonic() + 10
    while (
        logged := _count(db, "call_log WHERE caller LIKE '+1555090000%'")
    ) < quiet.sent + batch.sent:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert logged == quiet.sent + batch.sent


def _count(db: str, where: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {where}").fetchone()[0])
