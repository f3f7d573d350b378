"""Feature codes dialled from the sandbox phones (From user 2XX), with real SIP and audio,
through each door ([screening-feature] picks it by SCREENING_DOOR)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import App
from tests.sipprobe import CallResult

pytestmark = pytest.mark.e2e


def dial(app: App, ext: str, code: str) -> CallResult:
    """A phone dials a feature code: answered, a prompt plays, then Asterisk hangs up."""
    result = app.call(ext, code, hold=15)
    assert result.status_line == "200 OK"
    assert result.rtp_packets > 50, "no audio received: the confirmation did not play"
    assert result.remote_hangup
    return result


def rows(app: App, sql: str) -> list[tuple[object, ...]]:
    return app.rows(sql)


def test_mark_last_caller_as_spam_then_undo(door_app: App) -> None:
    spammer = "+15550500001"
    assert door_app.call(spammer, "221").status_line == "200 OK"
    dial(door_app, "221", "*60")
    door_app.wait_log("feature mark-spam from 221: marked")  # written just after the call
    assert door_app.call(spammer, "221").status_line == "607 Unwanted"
    assert door_app.call(spammer, "222").status_line == "200 OK"  # only 221 marked it
    dial(door_app, "221", "*60")  # marking again is harmless
    assert rows(door_app, f"SELECT count(*) FROM block_entries WHERE value = '{spammer}'") == [(1,)]
    dial(door_app, "221", "*61")
    assert door_app.call(spammer, "221").status_line == "200 OK"
    assert rows(door_app, f"SELECT count(*) FROM spam_reports WHERE caller = '{spammer}'") == [(0,)]


def test_three_extensions_marking_a_caller_block_it_for_everyone(door_app: App) -> None:
    spammer = "+15550500002"
    for ext in ("223", "224", "225"):
        assert door_app.call(spammer, ext).status_line == "200 OK"
        dial(door_app, ext, "*60")
    assert door_app.call(spammer, "226").status_line == "607 Unwanted"
    [(kind, reason)] = door_app.rows(
        "SELECT rule_kind, reason FROM call_log WHERE extension = '226' ORDER BY id DESC LIMIT 1",
        at_least=1,
    )
    assert kind == "reputation" and "marked as spam by 3 extensions" in str(reason)
    # An allow entry still wins over a reputation block.
    assert door_app.cli("allow", "add", spammer, "--for", "227").code == 0
    assert door_app.call(spammer, "227").status_line == "200 OK"
    stats = door_app.cli("stats", "--since", "1h")
    assert re.search(r"\nby reputation +1\n", stats.out), stats.out


def test_dnd_feature_codes(door_app: App) -> None:
    dial(door_app, "228", "*78")
    assert door_app.call("+15550500003", "228").status_line == "608 Rejected"
    dial(door_app, "228", "*79")
    assert door_app.call("+15550500003", "228").status_line == "200 OK"


def test_nothing_to_mark_says_so_and_writes_nothing(door_app: App) -> None:
    before = rows(door_app, "SELECT count(*) FROM block_entries")
    dial(door_app, "229", "*60")  # 229 never got a call
    assert door_app.call("anonymous", "230").status_line == "200 OK"
    dial(door_app, "230", "*60")  # its last caller had no caller ID
    assert rows(door_app, "SELECT count(*) FROM block_entries") == before
    # written just after the call
    door_app.wait_log("the last caller to 230 had no usable caller ID")


def test_external_caller_dialling_a_feature_code_marks_nothing(door_app: App) -> None:
    victim = "+15550500004"
    assert door_app.call(victim, "231").status_line == "200 OK"
    before = rows(door_app, "SELECT count(*) FROM block_entries")
    # From the trunk, *60 is just a dialled number: screened, and not a feature.
    result = door_app.call("+15550500005", "*60")
    assert result.status_line != "200 OK" or result.rtp_packets == 0
    assert rows(door_app, "SELECT count(*) FROM block_entries") == before
    assert door_app.call(victim, "231").status_line == "200 OK"
