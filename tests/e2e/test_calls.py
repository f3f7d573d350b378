"""Real INVITEs at the sandbox Asterisk with screening connected through each door (ARI:
`screening serve`; FastAGI: `screening agi`): the status line each caller gets back is what
the rules say."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import DOOR_SOURCE, App
from tests.sipprobe import place_call

pytestmark = pytest.mark.e2e


def test_unknown_caller_is_answered(door_app: App) -> None:
    result = door_app.call("+15550100001", "201")
    assert result.status_line == "200 OK"


def test_blocked_caller_gets_607_unwanted(door_app: App) -> None:
    assert door_app.cli("block", "add", "+1 (555) 010-0002", "--reason", "robocaller").code == 0
    assert door_app.call("+15550100002", "201").status_line == "607 Unwanted"
    # The same number as a national-format caller ID is the same caller.
    assert door_app.call("5550100002", "202").status_line == "607 Unwanted"


def test_block_with_code_608_gets_608_rejected(door_app: App) -> None:
    assert door_app.cli("block", "add", "+15550100003", "--code", "608").code == 0
    assert door_app.call("+15550100003", "201").status_line == "608 Rejected"


def test_prefix_block_rejects_the_whole_range(door_app: App) -> None:
    assert door_app.cli("block", "add", "+1900*").code == 0
    assert door_app.call("19005550123", "201").status_line == "607 Unwanted"
    assert door_app.call("+19015550123", "201").status_line == "200 OK"


def test_extension_block_only_for_that_extension(door_app: App) -> None:
    assert door_app.cli("block", "add", "+15550100004", "--for", "203").code == 0
    assert door_app.call("+15550100004", "203").status_line == "607 Unwanted"
    assert door_app.call("+15550100004", "204").status_line == "200 OK"


def _dnd_now(app: App, ext: str) -> None:
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(hours=1)).strftime("%H:%M"),
        (now + timedelta(hours=1)).strftime("%H:%M"),
    )
    r = app.cli("dnd", "add", ext, "--days", "all", "--from", start, "--to", end, "--tz", "UTC")
    assert r.code == 0, r.err


def test_dnd_window_gets_608_rejected(door_app: App) -> None:
    _dnd_now(door_app, "205")
    assert door_app.call("+15550100005", "205").status_line == "608 Rejected"
    assert door_app.call("anonymous", "205").status_line == "608 Rejected"
    assert door_app.call("+15550100005", "206").status_line == "200 OK"


def test_allowed_caller_gets_through_dnd(door_app: App) -> None:
    _dnd_now(door_app, "207")
    assert door_app.cli("allow", "add", "+15550100006", "--for", "207").code == 0
    assert door_app.call("+15550100006", "207").status_line == "200 OK"
    assert door_app.call("+15550100007", "207").status_line == "608 Rejected"


def test_allowed_caller_beats_a_block(door_app: App) -> None:
    assert door_app.cli("block", "add", "+1555011*").code == 0
    assert door_app.cli("allow", "add", "+15550110001").code == 0
    assert door_app.call("+15550110001", "201").status_line == "200 OK"
    assert door_app.call("+15550110002", "201").status_line == "607 Unwanted"


@pytest.mark.parametrize("caller", ["anonymous", "", "Unknown", "%27%3B--"])
def test_callers_without_usable_id_are_answered(door_app: App, caller: str) -> None:
    assert door_app.call(caller, "208").status_line == "200 OK"


def test_every_call_is_logged_with_why(door_app: App) -> None:
    assert door_app.cli("block", "add", "+15550100008", "--reason", "debt collector").code == 0
    assert door_app.call("+15550100008", "209").status_line == "607 Unwanted"
    assert door_app.call("+15550100009", "209").status_line == "200 OK"
    rows = door_app.rows(
        "SELECT caller_raw, caller, extension, decision, sip_code, rule_kind, door, reason, "
        "decision_us FROM call_log WHERE extension = '209' ORDER BY id",
        at_least=2,
    )
    door = door_app.door  # the row says which door decided the call
    assert [r[:7] for r in rows] == [
        ("+15550100008", "+15550100008", "209", "rejected", 607, "block", door),
        ("+15550100009", "+15550100009", "209", "allowed", None, None, door),
    ]
    assert "debt collector" in str(rows[0][7])
    assert all(isinstance(r[8], int) and 0 < r[8] < 1_000_000 for r in rows)
    # written just after the call
    door_app.wait_log("from +15550100008 ('+15550100008') to 209: rejected 607, block")


def test_database_error_lets_the_call_through(door_app: App) -> None:
    assert door_app.cli("block", "add", "+15550100010").code == 0
    db = door_app.env["SCREENING_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE block_entries RENAME TO block_entries_away")
    try:
        assert door_app.call("+15550100010", "201").status_line == "200 OK"
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE block_entries_away RENAME TO block_entries")
    door_app.wait_log("screening failed")  # written just after the call
    assert door_app.call("+15550100010", "201").status_line == "607 Unwanted"


def test_answered_sandbox_call_is_hung_up_after_a_few_seconds(app: App) -> None:
    result = app.call("+15550100011", "201", hold=10)
    assert result.status_line == "200 OK"
    assert result.remote_hangup and 1.5 < result.duration_s < 5


def test_internal_phone_is_not_screened(app: App) -> None:
    # From user 2XX is the internal phone: its calls do not enter screening-inbound.
    _dnd_now(app, "210")
    assert app.call("+15550100012", "210").status_line == "608 Rejected"
    assert app.call("201", "210").status_line == "200 OK"
    assert "to 210: allowed" not in app.log()


def test_simultaneous_calls_are_each_decided(door_app: App) -> None:
    assert door_app.cli("block", "add", "+1555040*").code == 0

    async def burst() -> list[str]:
        calls = [
            place_call(
                "211",
                f"+1555040{i:04d}" if i % 2 else f"+1555041{i:04d}",
                port=door_app.sip_port,
                source=DOOR_SOURCE[door_app.door],
            )
            for i in range(40)
        ]
        return [r.status_line for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert statuses == ["200 OK" if i % 2 == 0 else "607 Unwanted" for i in range(40)]


def _threads_and_files(pid: int) -> tuple[int, list[str]]:
    fd_dir = Path(f"/proc/{pid}/fd")
    files = []
    for fd in fd_dir.iterdir():
        try:
            files.append(os.readlink(fd))
        except OSError:
            continue  # closed while we looked
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    return threads, sorted(f for f in files if not f.startswith(("socket:", "pipe:", "anon_")))


def test_a_burst_of_calls_opens_no_threads_or_files(own_app: Callable[..., App]) -> None:
    """Look-up threads and their database connections are all opened at start: a first
    burst of calls finds them ready, and a long run cannot grow them."""
    fresh = own_app()
    assert fresh.proc is not None
    fresh.wait_log("connected to ARI")
    before = _settled(fresh.proc.pid)
    database = str(fresh.env["SCREENING_DATABASE_URL"]).removeprefix("sqlite:///")
    assert before[1].count(database) >= 5, before  # 4 look-up threads and the log writer

    async def burst() -> list[str]:
        calls = [place_call("212", f"+1555042{i:04d}", port=fresh.sip_port) for i in range(40)]
        return [r.status_line for r in await asyncio.gather(*calls)]

    assert asyncio.run(burst()) == ["200 OK"] * 40
    fresh.rows("SELECT 1 FROM call_log", at_least=40)
    after = _threads_and_files(fresh.proc.pid)
    opened = sorted(set(after[1]) - set(before[1]))
    closed = sorted(set(before[1]) - set(after[1]))
    assert after == before, f"threads {before[0]} -> {after[0]}; opened {opened}, closed {closed}"


def _settled(pid: int) -> tuple[int, list[str]]:
    """The threads and files once start-up is over: the same twice, 0.5 s apart (on a
    loaded machine a look-up thread may still be opening its connection when the app
    logs that it is connected)."""
    seen = _threads_and_files(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = _threads_and_files(pid)
        if now == seen:
            return now
        seen = now
    return seen


def test_json_log_lines_for_journald(own_app: Callable[..., App]) -> None:
    app = own_app(SCREENING_LOG_FORMAT="json")
    assert app.cli("block", "add", "+15550100031").code == 0
    assert app.call("+15550100031", "201").status_line == "607 Unwanted"
    app.wait_log("to 201: rejected 607")
    import json

    lines = [json.loads(line) for line in app.raw_log().splitlines() if line.startswith("{")]
    assert lines and len(lines) == len(app.raw_log().splitlines())  # every line is JSON
    [call] = [line for line in lines if line.get("outcome")]
    assert (call["caller"], call["extension"], call["sip_code"], call["door"], call["rule"]) == (
        "+15550100031",
        "201",
        607,
        "ari",
        "block",
    )
    assert call["channel"] and call["level"] == "info" and "rejected 607" in call["message"]


def _calls_metric(app: App, outcome: str, code: str, rule: str) -> float:
    import re

    import httpx

    text = httpx.get(f"{app.metrics_url}/metrics", timeout=5, trust_env=False).text
    labels = f'door="{app.door}",outcome="{outcome}",rule_kind="{rule}",sip_code="{code}"'
    m = re.search(rf"^screening_calls_total\{{{labels}\}} (\S+)$", text, flags=re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_real_calls_and_carry_no_phone_numbers(door_app: App) -> None:
    import httpx

    before = _calls_metric(door_app, "rejected", "607", "block")
    allowed = _calls_metric(door_app, "allowed", "", "")
    assert door_app.cli("block", "add", "+15550100033").code == 0
    assert door_app.call("+15550100033", "201").status_line == "607 Unwanted"
    assert door_app.call("+15550100034", "201").status_line == "200 OK"
    assert _calls_metric(door_app, "rejected", "607", "block") == before + 1
    assert _calls_metric(door_app, "allowed", "", "") == allowed + 1
    text = httpx.get(f"{door_app.metrics_url}/metrics", timeout=5, trust_env=False).text
    assert "5550100033" not in text and "5550100034" not in text
    ready = httpx.get(f"{door_app.metrics_url}/readyz", timeout=5, trust_env=False)
    assert ready.status_code == 200 and ready.json()["database"] is True
    if door_app.door == "ari":
        assert ready.json()["asterisk"] is True
        assert "screening_asterisk_connected 1.0" in text
