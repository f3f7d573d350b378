"""Spam reports and reputation on each backend: who gets blocked, for whom, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from screening.core import features
from screening.core.decision import Action, IncomingCall, decide
from screening.core.features import Outcome, Reputation
from screening.service import ops
from screening.service.actor import CLI
from screening.service.features import run as run_feature
from screening.store import calllog, lists, lookup
from screening.store.models import AuditEntry, BlockEntry, SpamReport

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
REP = Reputation(reports=3, days=30)
SPAMMER = "+15550600001"


def called(
    engine: Engine,
    caller: str | None,
    ext: str,
    at: datetime,
    decision: Literal["allowed", "rejected"] = "allowed",
) -> None:
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    at=at,
                    channel_id="c",
                    caller_raw=caller or "anonymous",
                    caller=caller,
                    extension=ext,
                    decision=decision,
                    sip_code=None if decision == "allowed" else 607,
                    rule_kind=None,
                    rule_id=None,
                    reason="r",
                    decision_us=1,
                )
            ],
        )


def feature(engine: Engine, name: str, ext: str, at: datetime = NOW) -> features.Result:
    with Session(engine) as s, s.begin():
        return run_feature(s, name, ext, at, REP)


def verdict(engine: Engine, caller: str, ext: str, at: datetime = NOW) -> tuple[Action, str | None]:
    with Session(engine) as s:
        d = decide(IncomingCall(caller, caller, ext), lookup.rules_for(s, caller, ext, at), at)
    return d.action, d.rule_kind


def test_mark_blocks_the_last_allowed_caller_for_that_extension_only(engine: Engine) -> None:
    called(engine, SPAMMER, "201", NOW - timedelta(minutes=5))
    called(engine, "+15550600009", "201", NOW - timedelta(minutes=1), decision="rejected")
    result = feature(engine, "mark-spam", "201")
    assert result.outcome is Outcome.MARKED and SPAMMER in result.detail
    assert verdict(engine, SPAMMER, "201") == (Action.REJECT, "block")
    assert verdict(engine, SPAMMER, "202") == (Action.CONTINUE, None)
    with Session(engine) as s:
        [entry] = lists.list_entries(s, "block")
    assert (entry.extension, entry.source, entry.sip_code) == ("201", "feature code", 607)


def test_marking_twice_keeps_one_entry_and_one_report(engine: Engine) -> None:
    called(engine, SPAMMER, "201", NOW)
    feature(engine, "mark-spam", "201")
    feature(engine, "mark-spam", "201", NOW + timedelta(minutes=1))
    with Session(engine) as s:
        assert len(s.scalars(select(BlockEntry)).all()) == 1
        assert len(s.scalars(select(SpamReport)).all()) == 1


def test_nothing_to_mark(engine: Engine) -> None:
    assert feature(engine, "mark-spam", "201").outcome is Outcome.NOT_POSSIBLE
    called(engine, None, "201", NOW)
    assert feature(engine, "mark-spam", "201").outcome is Outcome.NOT_POSSIBLE
    assert feature(engine, "undo-spam", "201").outcome is Outcome.NOT_POSSIBLE
    with Session(engine) as s:
        assert s.scalars(select(BlockEntry)).all() == []


def test_undo_removes_only_that_extensions_latest_feature_mark(engine: Engine) -> None:
    ops.add_entry(
        engine, "block", "+15550600002", "US", extension="201", now=NOW, by=CLI
    )  # admin's own
    called(engine, SPAMMER, "201", NOW)
    feature(engine, "mark-spam", "201")
    assert feature(engine, "undo-spam", "201").outcome is Outcome.UNMARKED
    assert verdict(engine, SPAMMER, "201") == (Action.CONTINUE, None)
    assert verdict(engine, "+15550600002", "201") == (Action.REJECT, "block")
    assert feature(engine, "undo-spam", "201").outcome is Outcome.NOT_POSSIBLE


def test_reputation_needs_distinct_extensions_within_the_window(engine: Engine) -> None:
    for i, ext in enumerate(("201", "202")):
        called(engine, SPAMMER, ext, NOW + timedelta(minutes=i))
        feature(engine, "mark-spam", ext, NOW + timedelta(minutes=i))
    assert verdict(engine, SPAMMER, "209", NOW + timedelta(hours=1))[0] is Action.CONTINUE
    # A third report 40 days later: the first two are older than 30 days and no longer count.
    late = NOW + timedelta(days=40)
    called(engine, SPAMMER, "203", late)
    assert "1 of 3" in feature(engine, "mark-spam", "203", late).detail
    assert verdict(engine, SPAMMER, "209", late)[0] is Action.CONTINUE
    # Two more recent ones make three distinct extensions in the window.
    for ext in ("204", "205"):
        called(engine, SPAMMER, ext, late)
        result = feature(engine, "mark-spam", ext, late)
    assert "blocked for everyone" in result.detail
    assert verdict(engine, SPAMMER, "209", late) == (Action.REJECT, "reputation")


def test_allow_beats_reputation_and_undo_withdraws_it(engine: Engine) -> None:
    for ext in ("201", "202", "203"):
        called(engine, SPAMMER, ext, NOW)
        feature(engine, "mark-spam", ext)
    ops.add_entry(engine, "allow", SPAMMER, "US", extension="209", now=NOW, by=CLI)
    assert verdict(engine, SPAMMER, "209") == (Action.CONTINUE, "allow")
    assert verdict(engine, SPAMMER, "208") == (Action.REJECT, "reputation")
    assert "withdrawn" in feature(engine, "undo-spam", "203").detail
    assert verdict(engine, SPAMMER, "208") == (Action.CONTINUE, None)


def test_reputation_never_touches_an_admins_global_entry(engine: Engine) -> None:
    ops.add_entry(engine, "block", SPAMMER, "US", code=608, reason="admin said", now=NOW, by=CLI)
    for ext in ("201", "202", "203"):
        called(engine, SPAMMER, ext, NOW)
        feature(engine, "mark-spam", ext)
    feature(engine, "undo-spam", "203")
    with Session(engine) as s:
        [glob] = [e for e in lists.list_entries(s, "block") if e.extension is None]
    assert (glob.source, glob.sip_code, glob.reason) == ("cli", 608, "admin said")


def test_dnd_features(engine: Engine) -> None:
    assert feature(engine, "dnd-on", "201").outcome is Outcome.DND_ON
    assert verdict(engine, SPAMMER, "201") == (Action.REJECT, "manual-dnd")
    assert feature(engine, "dnd-off", "201").outcome is Outcome.DND_OFF
    assert verdict(engine, SPAMMER, "201") == (Action.CONTINUE, None)


def test_feature_codes_are_in_the_audit_trail(engine: Engine) -> None:
    # *60, *78 and *79 changed blocks and DND with no audit row: the trail missed a phone's
    # changes that the same change from the console shows.
    called(engine, SPAMMER, "231", NOW - timedelta(minutes=1))
    for name in ("mark-spam", "dnd-on", "dnd-off", "undo-spam"):
        feature(engine, name, "231")
    feature(engine, "undo-spam", "231")  # nothing left to undo: no change, no row
    with Session(engine) as s:
        rows = [(a.actor, a.action) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert rows == [
        ("extension 231", "feature mark-spam"),
        ("extension 231", "feature dnd-on"),
        ("extension 231", "feature dnd-off"),
        ("extension 231", "feature undo-spam"),
    ]
