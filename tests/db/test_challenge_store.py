"""The challenge in the database and the admin CLI, on each backend: challenge policies, the
allow entry a passed caller leaves, the call log's outcomes in `log` and `stats`, and the
migration that brought them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from screening.store import calllog, migrate
from screening.store.engine import make_engine
from screening.store.lists import remember_challenge
from tests.cli_helpers import Cli, ok

CALLER = "+15551234567"


def checked(cli: Cli, *args: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(ok(cli("check", *args, "--json")))
    return out


def test_a_challenge_policy_is_set_listed_and_explained(cli: Cli) -> None:
    out = ok(cli("policy", "set", "unverified", "--action", "challenge"))
    assert out == "set policy #1 unverified (global): challenge\n"
    got = checked(cli, CALLER, "201")
    assert (got["decision"], got["action"], got["sip_code"], got["policy"]) == (
        "challenged",
        "challenge",
        None,
        "unverified",
    )
    human = ok(cli("check", CALLER, "201"))
    assert "challenged: asked in early media to press a digit" in human
    listed = json.loads(ok(cli("policy", "list", "--json")))
    assert [(p["kind"], p["action"], p["sip_code"]) for p in listed] == [
        ("unverified", "challenge", None)
    ]
    # One command switches it off again for an extension whose trunk loses early DTMF.
    ok(cli("policy", "set", "unverified", "--for", "202", "--action", "continue"))
    assert checked(cli, CALLER, "202")["decision"] == "allowed"
    assert checked(cli, CALLER, "201")["decision"] == "challenged"


def test_bad_challenge_input_names_the_field_and_writes_nothing(cli: Cli) -> None:
    r = cli("policy", "set", "unverified", "--action", "challenge", "--code", "607")
    assert (r.code, r.err) == (
        2,
        "screening: error: --code: only a rejecting policy has a SIP code\n",
    )
    r = cli("policy", "set", "unverified", "--action", "ask")
    assert r.code == 2
    assert "--action: expected reject, challenge or continue, got 'ask'" in r.err
    assert "no policies" in ok(cli("policy", "list"))


def test_a_passed_caller_is_remembered_but_still_meets_blocks(cli: Cli, database_url: str) -> None:
    ok(cli("policy", "set", "unverified", "--for", "201", "--action", "challenge"))
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        remember_challenge(s, CALLER, "201", now + timedelta(days=30), now)
    with Session(engine) as s, s.begin():  # twice: one entry, refreshed
        entry = remember_challenge(s, CALLER, "201", now + timedelta(days=31), now)
    engine.dispose()
    assert (entry.source, entry.extension, entry.kind) == ("challenge", "201", "allow")
    listed = json.loads(ok(cli("allow", "list", "--json")))
    assert len(listed) == 1 and listed[0]["source"] == "challenge"
    got = checked(cli, CALLER, "201")
    assert (got["decision"], got["rule_kind"]) == ("allowed", "allow")
    ok(cli("block", "add", CALLER))  # a passed challenge is no pass against a block
    assert checked(cli, CALLER, "201")["sip_code"] == 607


def test_challenge_policies_travel_through_export_and_import(cli: Cli) -> None:
    out = ok(
        cli(
            "import",
            "-",
            stdin="kind,policy,extension,action\npolicy,anonymous,201,challenge\n",
        )
    )
    assert "1 policy" in out
    exported = ok(cli("export"))
    assert "anonymous" in exported and "challenge" in exported
    assert checked(cli, "anonymous", "201")["decision"] == "challenged"


def write_rows(database_url: str, outcomes: list[tuple[str, int | None, str]]) -> None:
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    at=now - timedelta(seconds=i),
                    channel_id=f"c{i}",
                    caller_raw=f"+1555000000{i}",
                    caller=f"+1555000000{i}",
                    extension="201",
                    decision=decision,  # type: ignore[arg-type]
                    sip_code=code,
                    rule_kind="policy",
                    rule_id=1,
                    reason=f"policy #1 unverified (global): ...; challenge {outcome}",
                    decision_us=900,
                    door="ari",
                    policy="unverified",
                    challenge=outcome,
                )
                for i, (decision, code, outcome) in enumerate((d, c, o) for d, c, o in outcomes)
            ],
        )
    engine.dispose()


def test_log_and_stats_count_the_challenges(cli: Cli, database_url: str) -> None:
    write_rows(
        database_url,
        [
            ("allowed", None, "passed"),
            ("rejected", 608, "timed-out"),
            ("rejected", 608, "wrong-digit"),
            ("rejected", 608, "timed-out"),
            ("abandoned", None, "abandoned"),
        ],
    )
    human = ok(cli("stats"))
    assert "challenged 5: 1 passed, 3 refused (2 timed out, 1 wrong digit), 1 hung up" in human, (
        human
    )
    stats = json.loads(ok(cli("stats", "--json")))
    assert stats["challenges"] == {"passed": 1, "timed-out": 2, "wrong-digit": 1, "abandoned": 1}
    log = ok(cli("log"))
    assert "allowed (passed)" in log and "rejected (wrong-digit)" in log
    abandoned = json.loads(ok(cli("log", "--decision", "abandoned", "--json")))
    assert [(r["decision"], r["challenge"]) for r in abandoned] == [("abandoned", "abandoned")]


def test_upgrade_to_0007_keeps_policies_and_downgrade_turns_challenges_into_rejects(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0006")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO policies (id, kind, scope, action, sip_code, source, created_at) "
                "VALUES (3, 'anonymous', '', 'reject', 607, 'cli', '2026-01-01 00:00:00')"
            )
        )
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO policies (id, kind, scope, action, sip_code, source, created_at) "
                "VALUES (4, 'unverified', '201', 'challenge', NULL, 'cli', "
                "'2026-01-01 00:00:00')"
            )
        )
        kept = conn.execute(text("SELECT id, action, sip_code FROM policies ORDER BY id")).all()
    assert [tuple(r) for r in kept] == [(3, "reject", 607), (4, "challenge", None)]
    migrate.downgrade(engine, "0006")
    with engine.connect() as conn:
        after = conn.execute(text("SELECT id, action, sip_code FROM policies ORDER BY id")).all()
    assert [tuple(r) for r in after] == [(3, "reject", 607), (4, "reject", 608)]
    engine.dispose()
