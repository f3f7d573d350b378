"""Policies, caller-name entries and identity in the admin CLI, on each backend: what an admin
types, sees and gets, and that bad input writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from screening.core.decision import PolicyKind
from screening.store import calllog, migrate
from screening.store.engine import make_engine
from screening.store.models import NameEntry, Policy
from tests.cli_helpers import Cli, ok


def checked(cli: Cli, *args: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(ok(cli("check", *args, "--json")))
    return out


def count(database_url: str, model: type[Policy] | type[NameEntry]) -> int:
    engine = make_engine(database_url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(model)) or 0
    engine.dispose()
    return n


def test_anonymous_policy_rejects_withheld_callers_with_608(cli: Cli) -> None:
    assert checked(cli, "anonymous", "201")["decision"] == "allowed"
    assert ok(cli("policy", "set", "anonymous")) == (
        "set policy #1 anonymous (global): reject with 608\n"
    )
    got = checked(cli, "anonymous", "201")
    assert (got["decision"], got["sip_code"], got["policy"]) == ("rejected", 608, "anonymous")
    assert checked(cli, "+15551234567", "201", "--anonymous")["policy"] == "anonymous"
    assert checked(cli, "+15551234567", "201")["decision"] == "allowed"


def test_extension_policy_overrides_the_global_one(cli: Cli) -> None:
    ok(cli("policy", "set", "unverified", "--code", "607"))
    ok(cli("policy", "set", "unverified", "--for", "202", "--action", "continue"))
    assert checked(cli, "+15551234567", "201")["sip_code"] == 607
    assert checked(cli, "+15551234567", "202")["decision"] == "allowed"
    assert checked(cli, "+15551234567", "201", "--verification", "success")["decision"] == (
        "allowed"
    )
    listed = json.loads(ok(cli("policy", "list", "--json")))
    assert [(p["kind"], p["extension"], p["action"], p["sip_code"]) for p in listed] == [
        ("unverified", None, "reject", 607),
        ("unverified", "202", "continue", None),
    ]
    human = ok(cli("policy", "list"))
    assert "unverified" in human and "global" in human and "202" in human
    assert ok(cli("policy", "remove", "unverified", "--for", "202")).startswith("removed policy")
    assert checked(cli, "+15551234567", "202")["sip_code"] == 607


def test_attestation_and_failed_verification_policies(cli: Cli) -> None:
    ok(cli("policy", "set", "attestation-below-A"))
    ok(cli("policy", "set", "failed-verification"))
    assert checked(cli, "+15551234567", "201", "--attestation", "A")["decision"] == "allowed"
    got = checked(cli, "+15551234567", "201", "--attestation", "C")
    assert (got["sip_code"], got["policy"]) == (608, "attestation-below-A")
    got = checked(cli, "+15551234567", "201", "--verification", "failed")
    assert got["policy"] == "failed-verification"


def test_an_allowed_number_whose_verification_failed_is_not_let_through(cli: Cli) -> None:
    ok(cli("allow", "add", "+15551234567"))
    ok(cli("policy", "set", "failed-verification"))
    assert checked(cli, "+15551234567", "201")["rule_kind"] == "allow"
    got = checked(cli, "+15551234567", "201", "--verification", "failed")
    assert (got["decision"], got["policy"]) == ("rejected", "failed-verification")
    assert "ignored: verification failed" in str(got["reason"])


def test_contacts_only_line(cli: Cli) -> None:
    ok(cli("policy", "set", "contacts-only", "--for", "201"))
    ok(cli("allow", "add", "+15551234567", "--for", "201"))
    assert checked(cli, "+15551234567", "201")["decision"] == "allowed"
    assert checked(cli, "+15559876543", "201")["policy"] == "contacts-only"
    assert checked(cli, "+15559876543", "202")["decision"] == "allowed"


def test_invalid_number_policy(cli: Cli) -> None:
    ok(cli("policy", "set", "invalid"))
    assert checked(cli, "+1555", "201")["policy"] == "invalid"
    assert checked(cli, "+15551234567", "201")["decision"] == "allowed"


def test_name_entries_block_and_allow_by_pattern(cli: Cli) -> None:
    out = ok(cli("block", "add", "--name", "*SPAM*", "--reason", "carrier label"))
    assert out == "added block #1 global name '*spam*' (carrier label) -> 607\n"
    got = checked(cli, "+15551234567", "201", "--name", "Likely Spam")
    assert (got["sip_code"], got["rule_kind"]) == (607, "name-block")
    assert checked(cli, "+15551234567", "201", "--name", "Alice")["decision"] == "allowed"
    ok(cli("allow", "add", "--name", "likely spam", "--for", "201"))
    assert checked(cli, "+15551234567", "201", "--name", "Likely Spam")["rule_kind"] == (
        "name-allow"
    )
    listed = json.loads(ok(cli("block", "list", "--names", "--json")))
    assert [(e["pattern"], e["sip_code"]) for e in listed] == [("*spam*", 607)]
    assert "1 name entries" in ok(cli("block", "list"))
    assert ok(cli("block", "remove", "--name", "*SPAM*")).startswith("removed block #1")
    assert checked(cli, "+15551234567", "202", "--name", "Likely Spam")["decision"] == "allowed"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("policy", "set", "robots"), "KIND"),
        (("policy", "set", "anonymous", "--code", "606"), "--code"),
        (("policy", "set", "anonymous", "--action", "maybe"), "--action"),
        (("policy", "set", "anonymous", "--action", "continue", "--code", "607"), "--code"),
        (("policy", "set", "anonymous", "--for", "20 1"), "--for"),
        (("policy", "remove", "robots"), "KIND"),
        (("block", "add", "--name", ""), "--name"),
        (("block", "add", "--name", "**"), "--name"),
        (("block", "add", "--name", "x" * 65), "--name"),
        (("block", "add", "--name", "*spam*", "--code", "606"), "--code"),
        (("block", "add", "--name", "*spam*", "--expires", "2d"), "--expires"),
        (("block", "add", "+15551234567", "--name", "*spam*"), "NUMBER"),
        (("allow", "add"), "NUMBER"),
        (("check", "+15551234567", "201", "--verification", "maybe"), "--verification"),
        (("check", "+15551234567", "201", "--attestation", "D"), "--attestation"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
    cli: Cli, database_url: str, args: tuple[str, ...], field: str
) -> None:
    r = cli(*args)
    assert r.code == 2 and r.err.startswith(f"screening: error: {field}: "), r.err
    assert count(database_url, Policy) == 0 and count(database_url, NameEntry) == 0


def test_removing_what_is_not_there_exits_1(cli: Cli) -> None:
    r = cli("policy", "remove", "anonymous")
    assert r.code == 1 and "no anonymous policy (global)" in r.err
    r = cli("block", "remove", "--name", "*spam*")
    assert r.code == 1 and "no block entry for name '*spam*'" in r.err


def test_export_and_import_carry_policies_and_name_entries(cli: Cli, database_url: str) -> None:
    ok(cli("policy", "set", "anonymous"))
    ok(cli("policy", "set", "attestation-below-B", "--for", "201", "--code", "607"))
    ok(cli("policy", "set", "unverified", "--for", "202", "--action", "continue"))
    ok(cli("block", "add", "--name", "*SPAM*", "--code", "608", "--reason", "label"))
    ok(cli("allow", "add", "--name", "Dr. *", "--for", "201"))
    ok(cli("block", "add", "+15551234567"))
    exported = ok(cli("export"))
    assert "policy,attestation-below-B" not in exported  # columns are in header order
    with Session(make_engine(database_url)) as s, s.begin():
        s.execute(text("DELETE FROM policies"))
        s.execute(text("DELETE FROM name_entries"))
        s.execute(text("DELETE FROM block_entries"))
    out = ok(cli("import", "-", stdin=exported))
    assert "1 block, 0 allow, 0 dnd, 2 name, 3 policy rows" in out
    assert ok(cli("export")) == exported
    assert checked(cli, "+15550000000", "201", "--name", "spam!")["sip_code"] == 608
    assert checked(cli, "+15550000000", "201", "--attestation", "C")["sip_code"] == 607


def test_an_import_with_a_bad_policy_row_writes_nothing(cli: Cli, database_url: str) -> None:
    csv_text = (
        "kind,number,name,extension,policy,action,code\n"
        "block,+15551234567,,,,,607\n"
        "policy,,,,anonymous,reject,608\n"
        "policy,,,201,robots,reject,608\n"
    )
    r = cli("import", "-", stdin=csv_text)
    assert r.code == 2 and r.err.startswith("screening: error: line 4: policy: "), r.err
    assert count(database_url, Policy) == 0
    assert "no block entries" in ok(cli("block", "list"))


def test_log_and_stats_show_identity_and_count_rejections_per_policy(
    cli: Cli, database_url: str
) -> None:
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    rows = [
        ("anonymous", None, None, None, "anonymous", None),
        ("anonymous", None, None, None, "anonymous", None),
        ("+15551234567", "Scam Likely", "success", "C", "attestation-below-A", None),
        ("+15557654321", "Bob", "signature_validation", "A", "failed-verification", None),
    ]
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    at=now,
                    channel_id=f"c{i}",
                    caller_raw=raw,
                    caller=None if raw == "anonymous" else raw,
                    extension="201",
                    decision="rejected",
                    sip_code=608,
                    rule_kind="policy",
                    rule_id=1,
                    reason=f"policy #1 {policy} (global)",
                    decision_us=900,
                    door="ari",
                    caller_name=name,
                    verification=verification,
                    attestation=attestation,
                    policy=PolicyKind(policy).value,
                )
                for i, (raw, name, verification, attestation, policy, _) in enumerate(rows)
            ],
        )
    engine.dispose()
    logged = json.loads(ok(cli("log", "--json")))
    assert {
        (r["caller_name"], r["verification"], r["attestation"], r["policy"]) for r in logged
    } == {
        (None, None, None, "anonymous"),
        ("Scam Likely", "success", "C", "attestation-below-A"),
        ("Bob", "signature_validation", "A", "failed-verification"),
    }
    human = ok(cli("log"))
    assert "Scam Likely" in human and "success C" in human and "VERIFIED" in human
    stats = json.loads(ok(cli("stats", "--json")))
    assert stats["by_policy"] == [
        ["anonymous", 2],
        ["attestation-below-A", 1],
        ["failed-verification", 1],
    ]
    assert stats["by_verification"] == [
        ["none", 2],
        ["signature_validation A", 1],
        ["success C", 1],
    ]
    assert stats["top_names"] == [["Bob", 1], ["Scam Likely", 1]]
    human = ok(cli("stats"))
    assert "rejected by policy" in human and "success C" in human and "Scam Likely" in human


def test_upgrade_from_0004_keeps_every_row(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0004")
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
                "sip_code, rule_kind, rule_id, reason, decision_us, door) VALUES "
                "('2026-01-01 00:00:01', 'c', '5551234567', '+15551234567', '201', 'rejected', "
                "608, 'block', 7, 'r', 10, 'agi')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO manual_dnd (extension, since, source) VALUES "
                "('201', '2026-01-01 00:00:00', 'cli')"
            )
        )
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    with engine.connect() as conn:
        block = conn.execute(text("SELECT id, value, reason, sip_code FROM block_entries")).all()
        log = conn.execute(
            text("SELECT caller, door, policy, caller_name, verification FROM call_log")
        ).all()
        dnd = conn.execute(text("SELECT extension FROM manual_dnd")).all()
    assert [tuple(r) for r in block] == [(7, "+15551234567", "kept", 608)]
    assert [tuple(r) for r in log] == [("+15551234567", "agi", None, None, None)]
    assert [tuple(r) for r in dnd] == [("201",)]
    engine.dispose()
