"""The services every door shares, on each backend: who may read and remove what (an
`Actor`), the audit row written with the change, and one view of a record whichever door
shows it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from screening.core.errors import Forbidden, InvalidInput, NotFound
from screening.core.features import Reputation
from screening.service import calls, lists, ops, parse
from screening.service.accounts import Accounts
from screening.service.actor import CLI, Actor
from screening.service.views import EntryPage
from screening.store.engine import make_engine
from screening.store.models import AuditEntry, BlockEntry
from screening.web.api import door as api
from screening.web.api.lists import list_entries
from tests.cli_helpers import ok, run
from tests.db.conftest import Api
from tests.db.test_web import log_calls

BOB = Actor("bob", "api", "201", admin=False)
REPUTATION = Reputation(3, 30)


def audited(database_url: str) -> list[tuple[str, str]]:
    engine = make_engine(database_url)
    with Session(engine) as s:
        rows = [(a.actor, a.action) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    engine.dispose()
    return rows


def test_a_user_cannot_remove_another_extensions_entry_and_nothing_is_written(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    theirs, _ = ops.add_entry(engine, "block", "+15557000001", "US", extension="202", by=CLI)
    glob, _ = ops.add_entry(engine, "block", "+15557000002", "US", by=CLI)
    mine, _ = ops.add_entry(engine, "block", "+15557000003", "US", extension="201", by=CLI)
    for other in (theirs, glob):
        with pytest.raises(Forbidden):
            lists.remove_entry(engine, BOB, "block", other.id)
    with pytest.raises(NotFound):
        lists.remove_entry(engine, BOB, "block", 999_999)
    assert audited(database_url) == [("cli", "block add")] * 3  # the admin's adds only
    lists.remove_entry(engine, BOB, "block", mine.id)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(BlockEntry)) == 2
    assert audited(database_url)[3:] == [("bob", "api block remove")]  # in one transaction
    engine.dispose()


def test_a_user_reads_only_their_own_calls_and_lists(database_url: str) -> None:
    engine = make_engine(database_url)
    log_calls(
        database_url,
        ("201", "+15557000011", "allowed", None, None),
        ("202", "+15557000012", "allowed", None, None),
    )
    page = calls.list_calls(engine, BOB, calls.CallFilter(), 50)
    assert [c.extension for c in page.calls] == ["201"]  # not asking is asking for your own
    with pytest.raises(Forbidden):
        calls.list_calls(engine, BOB, calls.CallFilter(extension="202"), 50)
    with pytest.raises(Forbidden):
        lists.page_entries(engine, BOB, "block", scope="global")
    with pytest.raises(Forbidden):
        lists.list_dnd(engine, BOB, "202")
    assert len(calls.list_calls(engine, CLI, calls.CallFilter(), 50).calls) == 2
    engine.dispose()


def test_only_a_caller_who_rang_can_be_reported_whichever_way_it_is_asked(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    log_calls(
        database_url,
        ("201", "+15557000021", "rejected", 607, "block"),
        ("201", "+15557000022", "allowed", None, None),
    )
    by_id = {c.caller: c.id for c in calls.list_calls(engine, CLI, calls.CallFilter(), 9).calls}
    with pytest.raises(InvalidInput):  # by id (the API): it never rang
        calls.mark_spam(engine, BOB, REPUTATION, by_id["+15557000021"])
    with pytest.raises(InvalidInput):  # by caller (the console): the same rule
        calls.mark_spam(engine, BOB, REPUTATION, ("201", "+15557000021"))
    with pytest.raises(Forbidden):
        calls.mark_spam(engine, BOB, REPUTATION, ("202", "+15557000022"))
    # Whose call it is comes first: another extension's rejected call said "only a call
    # that rang" (400), its allowed one 403, so walking the ids told how each call ended.
    log_calls(database_url, ("202", "+15557000023", "rejected", 607, "block"))
    theirs = calls.list_calls(engine, CLI, calls.CallFilter(extension="202"), 1).calls[0].id
    with pytest.raises(Forbidden):
        calls.mark_spam(engine, BOB, REPUTATION, theirs)
    # A caller the form sends back is a number: a NUL was a 500 on PostgreSQL.
    for junk in ("+1555\x00", "+1555\n", "robert'); --", "+" + "5" * 40):
        with pytest.raises(InvalidInput):
            calls.mark_spam(engine, BOB, REPUTATION, ("201", junk))
        with pytest.raises(InvalidInput):
            calls.mark_spam(engine, BOB, REPUTATION, ("201", junk), undo=True)
    assert audited(database_url) == []
    result = calls.mark_spam(engine, BOB, REPUTATION, by_id["+15557000022"])
    assert result.outcome.value == "marked"
    assert audited(database_url) == [("bob", "api mark spam")]
    engine.dispose()


def test_the_cli_and_the_api_show_an_entry_and_a_call_alike(
    apis: tuple[Api, Api, object], database_url: str
) -> None:
    admin, _, _ = apis
    env = {"SCREENING_DATABASE_URL": database_url}
    ok(run("block", "add", "+15557000031", "--reason", "robo", "--expires", "30d", env=env))
    log_calls(database_url, ("201", "+15557000031", "rejected", 607, "block"))
    _, page = admin.get("/lists/block")
    assert json.loads(ok(run("block", "list", "--json", env=env))) == page["entries"]  # type: ignore[index]
    _, logged = admin.get("/calls")
    assert json.loads(ok(run("log", "--json", env=env))) == logged["calls"]  # type: ignore[index]
    assert page["entries"][0]["expires"].endswith("Z")  # type: ignore[index]


def test_stats_since_a_date_answers(apis: tuple[Api, Api, object]) -> None:
    # "since" went to parse_since as its time zone: any date was a 500.
    admin, _, _ = apis
    status, stats = admin.get("/stats", since="2025-01-01")
    assert status == 200 and stats["since"].startswith("2025-01-01")  # type: ignore[index]
    assert admin.get("/stats", since="soon")[1]["field"] == "since"  # type: ignore[index]


def test_the_dashboard_reads_off_the_event_loop_from_one_service(database_url: str) -> None:
    engine = make_engine(database_url)
    log_calls(database_url, ("201", "+15557000041", "allowed", None, "error"))
    now = datetime.now(UTC)
    board = calls.dashboard(engine, "UTC", now)
    assert board.today.calls == 1 and [c.caller for c in board.failed_open] == ["+15557000041"]
    assert len(board.days) == 30 and board.days[-1].allowed == 1
    view = calls.extension_view(engine, BOB, "201", "UTC", now)
    assert [c.caller for c in view.calls] == ["+15557000041"]
    with pytest.raises(Forbidden):
        calls.extension_view(engine, BOB, "202", "UTC", now)
    with pytest.raises(InvalidInput):  # /ext/%00 was a 500 on PostgreSQL
        calls.extension_view(engine, CLI, "\x00", "UTC", now)
    engine.dispose()


def test_an_api_handler_runs_alone_with_no_server_or_request(database_url: str) -> None:
    engine = make_engine(database_url)
    accounts = Accounts(engine)
    now = datetime.now(UTC)
    accounts.add("bob", "user", "201", "correct horse battery", now)
    token, _ = accounts.new_token("bob", now, None)
    bob = accounts.by_token(token, now)
    assert bob is not None
    door = api.Door(engine, "US", REPUTATION, accounts)
    ops.add_entry(engine, "block", "+15557000051", "US", extension="201", by=CLI)
    ops.add_entry(engine, "block", "+15557000052", "US", extension="202", by=CLI)
    status, page = list_entries(api.Ask(door, bob, {"kind": "block"}, {}))
    assert isinstance(page, EntryPage)
    assert status == 200 and [e.number for e in page.entries] == ["+15557000051"]
    with pytest.raises(Forbidden):
        list_entries(api.Ask(door, bob, {"kind": "block"}, {"extension": "202"}))
    engine.dispose()


def test_a_change_and_its_audit_row_are_written_together_or_not_at_all(
    database_url: str,
) -> None:
    # The doors wrote the audit row after the change, in a transaction of its own: a change
    # whose audit failed stayed, unaudited.
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_away")
    try:
        with pytest.raises(Exception):  # noqa: B017  (whatever the database says)
            ops.add_entry(engine, "block", "+15557000061", "US", by=BOB, extension="201")
        with pytest.raises(Exception):  # noqa: B017
            ops.dnd_on(engine, "201", by=BOB)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_away RENAME TO audit_log")
    assert lists.page_entries(engine, CLI, "block").entries == []
    assert lists.list_dnd(engine, CLI) == ([], [])
    ops.add_entry(engine, "block", "+15557000061", "US", by=BOB, extension="201")
    with pytest.raises(Forbidden):  # and the services check who may write, as they read
        ops.add_entry(engine, "block", "+15557000062", "US", by=BOB, extension="202")
    with pytest.raises(Forbidden):
        ops.set_policy(engine, parse.new_policy("anonymous", "reject", None, None), by=BOB)
    assert audited(database_url) == [("bob", "api block add")]
    engine.dispose()
