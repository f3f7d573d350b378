"""The admin CLI, command by command, on each backend: what an admin types, sees and gets."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from screening.store import calllog, lists, migrate
from screening.store.engine import make_engine
from screening.store.models import AllowEntry, BlockEntry, DndSchedule
from tests.cli_helpers import Cli, ok, run


def log_calls(
    engine: Engine, *rows: tuple[str, str, str, int | None, str | None, int | None, datetime]
) -> None:
    """Call-log rows as the app writes them: caller, ext, decision, code, rule kind/id, time."""
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    at=at,
                    channel_id=f"c{i}",
                    caller_raw=caller,
                    caller=caller,
                    extension=ext,
                    decision=decision,  # type: ignore[arg-type]
                    sip_code=code,
                    rule_kind=kind,
                    rule_id=rule_id,
                    reason=f"{kind} #{rule_id}" if kind else "no rule matched",
                    decision_us=1500,
                )
                for i, (caller, ext, decision, code, kind, rule_id, at) in enumerate(rows)
            ],
        )


def count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


NOW = datetime.now(UTC)


# -- block / allow lists --------------------------------------------------------------------


def test_block_list_shows_every_field_and_how_often_each_entry_rejected(
    cli: Cli, engine: Engine
) -> None:
    ok(cli("block", "add", "(555) 123-4567", "--reason", "robocaller"))
    ok(cli("block", "add", "+1900*", "--for", "201", "--code", "608", "--expires", "30d"))
    ok(cli("allow", "add", "5557654321"))
    last = NOW - timedelta(minutes=5)
    log_calls(
        engine,
        ("+15551234567", "201", "rejected", 607, "block", 1, NOW - timedelta(hours=2)),
        ("+15551234567", "202", "rejected", 607, "block", 1, last),
        ("+15557654321", "201", "allowed", None, "allow", 1, last),
    )
    out = ok(cli("block", "list"))
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NUMBER",
        "NORMALISED",
        "SCOPE",
        "CODE",
        "REASON",
        "SOURCE",
        "CREATED",
        "EXPIRES",
        "CALLS",
        "LAST",
        "CALL",
    ]
    first = lines[1]
    assert "(555) 123-4567" in first and "+15551234567" in first and "global" in first
    assert " 607 " in first and "robocaller" in first and " cli " in first
    assert first.split()[-3:] == ["2", *last.astimezone().strftime("%Y-%m-%d %H:%M").split()]
    assert "+1900*" in lines[2] and " 201 " in lines[2] and " 608 " in lines[2]
    expires = (NOW + timedelta(days=30)).astimezone().strftime("%Y-%m-%d")
    assert expires in lines[2]

    data = json.loads(ok(cli("block", "list", "--json")))
    # the API's view of an entry (service.views), times in UTC with a Z
    assert [(e["number"], e["extension"], e["code"], e["calls"]) for e in data] == [
        ("+15551234567", None, 607, 2),
        ("+1900*", "201", 608, 0),
    ]
    assert data[0]["last_call"].startswith(last.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    assert data[0]["last_call"].endswith("Z")
    assert data[1]["expires"].startswith((NOW + timedelta(days=30)).strftime("%Y-%m-%d"))
    assert [e["calls"] for e in json.loads(ok(cli("allow", "list", "--json")))] == [1]


def test_list_for_one_extension(cli: Cli) -> None:
    ok(cli("block", "add", "+15551234567"))
    ok(cli("block", "add", "+15551234568", "--for", "201"))
    data = json.loads(ok(cli("block", "list", "--for", "201", "--json")))
    assert [e["number"] for e in data] == ["+15551234568"]
    assert ok(cli("block", "list", "--for", "299")).strip() == "no block entries for extension 299"


def test_changing_an_entry_updates_it(cli: Cli, engine: Engine) -> None:
    ok(cli("block", "add", "+15551234567", "--reason", "first"))
    out = ok(cli("block", "add", "5551234567", "--code", "608", "--reason", "second"))
    assert out.startswith("updated block #1")
    [entry] = json.loads(ok(cli("block", "list", "--json")))
    assert (entry["code"], entry["reason"], entry["entered"]) == (608, "second", "5551234567")
    assert count(engine, BlockEntry) == 1


def test_remove_by_number_in_any_format_or_by_id(cli: Cli, engine: Engine) -> None:
    ok(cli("block", "add", "+15551234567"))
    ok(cli("block", "add", "+15551234567", "--for", "201"))
    ok(cli("allow", "add", "+15557654321"))
    # Without --for only the global entry goes.
    assert ok(cli("block", "remove", "(555) 123-4567")).startswith("removed block #1 global")
    assert ok(cli("block", "remove", "#2")).startswith("removed block #2 extension 201")
    assert ok(cli("allow", "remove", "5557654321")).startswith("removed allow #1")
    assert count(engine, BlockEntry) == count(engine, AllowEntry) == 0


def test_removing_what_is_not_there_is_a_runtime_error(cli: Cli) -> None:
    ok(cli("block", "add", "+15551234567", "--for", "201"))
    r = cli("block", "remove", "+15551234567")
    assert r.code == 1
    assert (
        r.err
        == "screening: error: no block entry '+15551234567' (global); see `screening block list`\n"
    )
    assert cli("block", "remove", "#99").code == 1


def test_expiry_as_duration_or_date(cli: Cli) -> None:
    ok(cli("block", "add", "+15551234567", "--expires", "12h"))
    ok(cli("block", "add", "+15551234568", "--expires", "2099-12-31"))
    a, b = json.loads(ok(cli("block", "list", "--json")))
    expires = datetime.fromisoformat(a["expires"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=12))) < timedelta(minutes=1)
    # A date is inclusive: the entry counts through that whole day (host time).
    assert b["expires"].startswith("2100-01-01") or b["expires"].startswith("2099-12-31")
    for bad, message in (
        ("2001-01-01", "is in the past"),
        ("soon", "expected a duration like 30d"),
    ):
        r = cli("block", "add", "+15551234569", "--expires", bad)
        assert (
            r.code == 2 and r.err.startswith("screening: error: --expires: ") and message in r.err
        )
    assert len(json.loads(ok(cli("block", "list", "--json")))) == 2


def test_expired_entry_no_longer_decides(cli: Cli, engine: Engine) -> None:
    ok(cli("block", "add", "+15551234567", "--expires", "1h"))
    assert "rejected with 607" in ok(cli("check", "+15551234567", "201"))
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    out = ok(cli("check", "+15551234567", "201", "--at", later, "--tz", "UTC"))
    assert "allowed" in out and "no rule matched" in out


# -- DND ------------------------------------------------------------------------------------


def test_dnd_list_remove_and_manual_on_off(cli: Cli, engine: Engine) -> None:
    ok(
        cli(
            "dnd",
            "add",
            "201",
            "--days",
            "mon-fri",
            "--from",
            "18:00",
            "--to",
            "08:00",
            "--tz",
            "Europe/Berlin",
        )
    )
    ok(cli("dnd", "add", "202", "--days", "all", "--from", "00:00", "--to", "00:00", "--tz", "UTC"))
    assert ok(cli("dnd", "on", "203")) == "DND on for 203\n"
    out = ok(cli("dnd", "list"))
    assert "mon,tue,wed,thu,fri 18:00-08:00 Europe/Berlin" in out
    assert re.search(r"\n2 +202 +every day 00:00-00:00 UTC +yes\n", out)
    assert re.search(r"\n- +203 +manual, until off +yes\n", out)
    data = json.loads(ok(cli("dnd", "list", "202", "--json")))
    assert [(s["extension"], s["days"], s["active_now"]) for s in data["schedules"]] == [
        ("202", [0, 1, 2, 3, 4, 5, 6], True)
    ]
    assert data["manual"] == []
    assert "rejected with 608" in ok(cli("check", "+15550000000", "203"))
    assert ok(cli("dnd", "off", "203")) == "DND off for 203\n"
    assert ok(cli("dnd", "off", "203")) == "DND off for 203 (it was not on)\n"
    assert "allowed" in ok(cli("check", "+15550000000", "203"))
    ok(cli("dnd", "remove", "1"))
    assert count(engine, DndSchedule) == 1
    r = cli("dnd", "remove", "1")
    assert r.code == 1 and "no DND schedule with id 1" in r.err
    assert cli("dnd", "remove", "one").code == 2


def test_dnd_on_until_ends_by_itself(cli: Cli) -> None:
    out = ok(cli("dnd", "on", "201", "--until", "2h"))
    assert out.startswith("DND on for 201 until ")
    assert "manual dnd" in ok(cli("check", "+15550000000", "201"))
    later = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
    assert "allowed" in ok(cli("check", "+15550000000", "201", "--at", later, "--tz", "UTC"))
    r = cli("dnd", "on", "201", "--until", "yesterday")
    assert r.code == 2 and r.err.startswith("screening: error: --until: expected a time HH:MM")


# -- check ----------------------------------------------------------------------------------


def test_check_explains_which_rule_decides(cli: Cli) -> None:
    ok(cli("block", "add", "+1555*", "--code", "608", "--reason", "range"))
    ok(cli("block", "add", "+15551234567", "--reason", "robocaller"))
    ok(cli("allow", "add", "+15557654321", "--for", "201"))
    ok(
        cli(
            "dnd",
            "add",
            "202",
            "--days",
            "mon",
            "--from",
            "09:00",
            "--to",
            "10:00",
            "--tz",
            "Europe/Berlin",
        )
    )
    out = ok(cli("check", "(555) 123-4567", "201"))
    assert out.splitlines()[0].startswith("+15551234567 calling 201 at ")
    assert out.splitlines()[0].endswith(": rejected with 607 Unwanted")
    assert out.splitlines()[1] == "  decided by: block #2 global +15551234567 (robocaller)"
    assert "rejected with 608 Rejected" in ok(cli("check", "+15559999999", "201"))
    assert "decided by: allow #1 extension 201 +15557654321" in ok(
        cli("check", "5557654321", "201")
    )
    # 2026-11-23 is a Monday: 09:30 in Berlin is inside the window.
    monday = ok(
        cli("check", "+4930123456", "202", "--at", "2026-11-23 09:30", "--tz", "Europe/Berlin")
    )
    assert "at 2026-11-23 09:30 Europe/Berlin: rejected with 608" in monday
    assert "allowed" in ok(
        cli("check", "+4930123456", "202", "--at", "2026-11-23 10:30", "--tz", "Europe/Berlin")
    )
    # Outside 202's window: "now" could fall on a Monday at 09:xx in Berlin.
    data = json.loads(
        ok(cli("check", "anonymous", "202", "--json", "--at", "2026-11-24 12:00", "--tz", "UTC"))
    )
    assert (data["caller_normalised"], data["decision"]) == (None, "allowed")
    assert cli("check", "+15551234567", "201", "--at", "tomorrow").code == 2


# -- log and stats --------------------------------------------------------------------------


def test_log_filters(cli: Cli, engine: Engine) -> None:
    log_calls(
        engine,
        ("+15551234567", "201", "rejected", 607, "block", 1, NOW - timedelta(days=3)),
        ("+15551234567", "202", "rejected", 608, "dnd", 1, NOW - timedelta(minutes=30)),
        ("+15557654321", "201", "allowed", None, None, None, NOW - timedelta(minutes=10)),
        ("+15550000001", "201", "allowed", None, "allow", 2, NOW - timedelta(minutes=1)),
    )
    rows = json.loads(ok(cli("log", "--json")))
    assert [r["caller"] for r in rows] == [
        "+15550000001",
        "+15557654321",
        "+15551234567",
        "+15551234567",
    ]
    assert len(json.loads(ok(cli("log", "--since", "1h", "--json")))) == 3
    assert len(json.loads(ok(cli("log", "--for", "201", "--json")))) == 3
    assert len(json.loads(ok(cli("log", "--caller", "(555) 123-4567", "--json")))) == 2
    assert [r["code"] for r in json.loads(ok(cli("log", "--decision", "rejected", "--json")))] == [
        608,
        607,
    ]
    assert len(json.loads(ok(cli("log", "--limit", "1", "--json")))) == 1
    since = (NOW - timedelta(days=1)).astimezone().strftime("%Y-%m-%d %H:%M")
    assert len(json.loads(ok(cli("log", "--since", since, "--json")))) == 3
    table = ok(cli("log", "--limit", "2")).splitlines()
    assert table[0].split() == [
        "TIME",
        "CALLER",
        "NAME",
        "EXT",
        "VERIFIED",
        "DECISION",
        "CODE",
        "WHY",
        "MS",
    ]
    assert "+15550000001" in table[1] and "allowed" in table[1] and "1.5" in table[1]
    assert cli("log", "--since", "last week").code == 2
    assert cli("log", "--decision", "maybe").code == 2
    assert ok(cli("log", "--caller", "+19999999999")).strip() == "no calls match"


def test_stats_counts_and_tops(cli: Cli, engine: Engine) -> None:
    ok(cli("block", "add", "+15551234567", "--reason", "robocaller"))
    log_calls(
        engine,
        *[("+15551234567", "201", "rejected", 607, "block", 1, NOW - timedelta(hours=1))] * 3,
        ("+15552222222", "202", "rejected", 608, "dnd", 1, NOW - timedelta(hours=1)),
        ("+15553333333", "202", "allowed", None, None, None, NOW - timedelta(hours=1)),
        ("+15554444444", "202", "allowed", None, "error", None, NOW - timedelta(hours=1)),
        ("+15555555555", "202", "rejected", 607, "block", 9, NOW - timedelta(days=30)),
    )
    data = json.loads(ok(cli("stats", "--json")))
    assert (
        data["calls"],
        data["allowed"],
        data["rejected_607"],
        data["rejected_608"],
        data["failed_open"],
    ) == (6, 2, 3, 1, 1)
    assert data["top_callers"][0] == ["+15551234567", 3]
    assert data["top_rules"][0] == ["block #1", 3]
    assert json.loads(ok(cli("stats", "--since", "60d", "--json")))["calls"] == 7
    out = ok(cli("stats"))
    assert "calls screened  6" in out and "rejected 607    3" in out
    assert "top rejected callers" in out and "+15551234567  3" in out


# -- import / export ------------------------------------------------------------------------


def test_export_then_import_reproduces_the_rules(
    cli: Cli, engine: Engine, empty_database_url: str
) -> None:
    ok(cli("block", "add", "+15551234567", "--reason", "robo, with comma", "--expires", "30d"))
    ok(cli("block", "add", "+1900*", "--code", "608", "--for", "201"))
    ok(cli("allow", "add", "+15557654321", "--for", "202", "--reason", 'say "hi"'))
    ok(
        cli(
            "dnd",
            "add",
            "201",
            "--days",
            "fri-mon",
            "--from",
            "22:00",
            "--to",
            "07:00",
            "--tz",
            "Europe/Berlin",
        )
    )
    exported = ok(cli("export"))
    header = exported.splitlines()[0]
    assert header == (
        "kind,number,name,extension,code,reason,source,expires,days,from,to,tz,policy,action"
    )
    other = {"SCREENING_DATABASE_URL": empty_database_url}
    ok(run("db", "upgrade", env=other))
    out = ok(run("import", "-", env=other, stdin=exported))
    assert out.startswith("imported 2 block, 1 allow, 1 dnd rows from standard input (csv format)")
    assert ok(run("export", env=other)) == exported
    # Importing the same file again changes nothing (entries update, schedules are not doubled).
    ok(run("import", "-", env=other, stdin=exported))
    assert ok(run("export", env=other)) == exported
    only_dnd = ok(cli("export", "--kind", "dnd")).splitlines()
    assert only_dnd == [
        "kind,extension,days,from,to,tz",
        "dnd,201,mon,fri,sat,sun,22:00,07:00,Europe/Berlin",
    ] or list(csv.reader(io.StringIO("\n".join(only_dnd))))[1] == [
        "dnd",
        "201",
        "mon,fri,sat,sun",
        "22:00",
        "07:00",
        "Europe/Berlin",
    ]


def test_export_to_a_file(cli: Cli, tmp_path: object) -> None:
    from pathlib import Path

    ok(cli("block", "add", "+15551234567"))
    target = Path(str(tmp_path)) / "rules.csv"
    r = cli("export", "--kind", "block", str(target))
    assert r.code == 0 and r.err == "exported 1 block\n"
    assert target.read_text().splitlines() == [
        "kind,number,name,extension,code,reason,source,expires",
        "block,+15551234567,,,607,,cli,",
    ]


def test_minimal_csv_with_only_numbers_blocks_them(cli: Cli) -> None:
    out = ok(cli("import", "-", stdin="number,reason\n5551234567,robo\n+1900*,premium\n"))
    assert out.startswith("imported 2 block, 0 allow, 0 dnd rows")
    assert [e["number"] for e in json.loads(ok(cli("block", "list", "--json")))] == [
        "+15551234567",
        "+1900*",
    ]


def test_one_bad_row_aborts_the_whole_import(cli: Cli, engine: Engine) -> None:
    ok(cli("block", "add", "+15550000000"))
    rows = ["kind,number,extension,code,reason"] + [
        f"block,+1555000{i:04d},,607,ok" for i in range(1, 50)
    ]
    rows.insert(30, "block,+15551234567,,606,bad code")  # file line 31
    r = cli("import", "-", stdin="\n".join(rows) + "\n")
    assert r.code == 2
    assert (
        r.err == "screening: error: line 31: code: expected 607 (unwanted, spam) "
        "or 608 (rejected, policy), got '606'\n"
    )
    assert count(engine, BlockEntry) == 1  # nothing of the file was written
    for body, message in [
        ("number\nnot a number\n", "line 2: number: expected a phone number"),
        ("kind,number\nmaybe,+15551234567\n", "line 2: kind: expected block, allow, dnd or policy"),
        (
            "kind,extension,days,from,to\ndnd,201,mon,25:00,07:00\n",
            "line 2: from: expected a time of day",
        ),
        (
            "kind,extension,days,from,to,tz\ndnd,201,mon,22:00,07:00,Moon/Base\n",
            "line 2: tz: expected an IANA",
        ),
        ("number,extension\n+15551234567,20 1\n", "line 2: extension: expected an extension"),
        (
            "number,expires\n+15551234567,2001-01-01\n",
            "line 2: expires: '2001-01-01' is in the past",
        ),
        ("number\n+15551234567,extra\n", "line 2: has 2 fields but the header has 1"),
        ("", "FILE: is empty"),
    ]:
        r = cli("import", "-", stdin=body)
        assert r.code == 2 and message in r.err, (body, r.err)
    assert count(engine, BlockEntry) == 1


def test_freepbx_blacklist_export_is_accepted(cli: Cli) -> None:
    freepbx = "5551234567,Telemarketer\n+15559876543\n\n15550001111;Survey\n4155550100\tSpam\n"
    out = ok(cli("import", "-", stdin=freepbx))
    assert out.startswith(
        "imported 4 block, 0 allow, 0 dnd rows from standard input (freepbx format)"
    )
    entries = {e["number"]: e for e in json.loads(ok(cli("block", "list", "--json")))}
    assert set(entries) == {"+15551234567", "+15559876543", "+15550001111", "+14155550100"}
    assert entries["+15551234567"]["reason"] == "Telemarketer"
    assert entries["+15551234567"]["source"] == "freepbx import"
    assert entries["+15551234567"]["code"] == 607
    r = cli("import", "-", stdin="5551234567\nblocked\n")
    assert r.code == 2 and "line 2: number: expected a phone number" in r.err


def test_import_from_a_file_with_a_byte_order_mark(cli: Cli, tmp_path: object) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "list.csv"
    f.write_text("\ufeffnumber,extension\n5551234567,201\n", encoding="utf-8")
    assert ok(cli("import", str(f))).startswith(f"imported 1 block, 0 allow, 0 dnd rows from {f}")
    assert cli("import", str(f) + ".missing").code == 2


def test_a_bare_expiry_date_is_utc_in_a_file_and_local_on_the_command_line(
    database_url: str,
) -> None:
    """A file means the same on every PBX it is imported on; an admin typing a date means
    the end of that day where the PBX is."""
    env = {"SCREENING_DATABASE_URL": database_url, "TZ": "America/New_York"}
    ok(run("import", "-", env=env, stdin="number,expires\n5551230001,2099-12-31\n"))
    ok(run("block", "add", "5551230002", "--expires", "2099-12-31", env=env))
    rows = json.loads(ok(run("block", "list", "--json", env=env)))
    by_number = {r["number"]: datetime.fromisoformat(r["expires"]) for r in rows}
    assert by_number["+15551230001"] == datetime(2100, 1, 1, tzinfo=UTC)
    assert by_number["+15551230002"] == datetime(2100, 1, 1, 5, tzinfo=UTC)  # EST is UTC-5


# -- db and errors --------------------------------------------------------------------------


def test_db_history_and_a_schema_that_is_behind(empty_database_url: str) -> None:
    env = {"SCREENING_DATABASE_URL": empty_database_url}
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0001")
    history = ok(run("db", "history", env=env)).splitlines()
    assert history[0].startswith("* 0001  initial schema")
    assert history[-1].startswith(f"  {migrate.head()}")
    assert ok(run("db", "current", env=env)).startswith("0001 (behind: run `screening db upgrade`")
    r = run("block", "list", env=env)
    assert r.code == 1 and r.err == (
        f"screening: error: the database schema is at revision 0001 but this version needs "
        f"{migrate.head()}; run `screening db upgrade`\n"
    )
    engine.dispose()


def test_upgrade_keeps_rows_written_by_the_previous_revision(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO block_entries (id, value, is_prefix, entered, scope, reason, source, "
                "created_at, sip_code) VALUES (7, '+15551234567', false, '5551234567', '', 'kept', "
                "'cli', '2026-01-01 00:00:00', 608)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO call_log (at, channel_id, caller_raw, caller, extension, decision, "
                "sip_code, rule_kind, rule_id, reason, decision_us) VALUES ('2026-01-01 00:00:01', "
                "'c', '5551234567', '+15551234567', '201', 'rejected', 608, 'block', 7, 'r', 10)"
            )
        )
    migrate.upgrade(engine)
    with Session(engine) as s:
        [entry] = lists.list_entries(s, "block")
    assert (entry.id, entry.value, entry.reason, entry.sip_code, entry.hits) == (
        7,
        "+15551234567",
        "kept",
        608,
        1,
    )
    engine.dispose()


def test_usage_errors_exit_2_runtime_errors_exit_1_and_debug_shows_the_traceback(cli: Cli) -> None:
    r = cli("block", "add", "+15551234567", "--colour", "red")
    assert r.code == 2 and r.err.startswith("screening: error: No such option '--colour'")
    r = cli("frobnicate")
    assert r.code == 2 and "No such command 'frobnicate'" in r.err
    down = {"SCREENING_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    r = run("block", "list", env=down)
    assert r.code == 1 and r.err.startswith("screening: error: cannot use the database:")
    assert "Traceback" not in r.err
    with pytest.raises(Exception, match=r"Connection refused|connection"):
        run("--debug", "block", "list", env=down)
