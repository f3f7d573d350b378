"""The console's pages through HTTP on each backend: what an admin and a user can do with the
forms, the CLI's messages on bad input with nothing written, paging, import with progress,
export, users and the audit trail, and every page a user must not reach."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from screening.config import Config
from screening.service.accounts import Accounts
from screening.store import migrate
from screening.store.engine import make_engine
from screening.web.app import create_app
from tests.db.test_web import csrf, log_calls, login

PASSWORD = "correct horse battery"


@pytest.fixture
def admin(database_url: str) -> Iterator[TestClient]:
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    Accounts(engine).add("alice", "admin", None, PASSWORD, now)
    Accounts(engine).add("bob", "user", "201", PASSWORD, now)
    client = TestClient(create_app(Config(), engine, "test-secret"), follow_redirects=False)
    assert login(client, "alice") == 303
    yield client
    engine.dispose()


@pytest.fixture
def user(admin: TestClient) -> TestClient:
    client = TestClient(admin.app, follow_redirects=False)
    assert login(client, "bob") == 303
    return client


def post(client: TestClient, path: str, page: str, **data: str) -> tuple[int, str]:
    """Submit a form the way the browser does: with the page's CSRF token; follow the
    redirect; return (status of the POST, text of where it leads)."""
    r = client.post(path, data={"csrf": csrf(client, page), **data})
    if r.status_code != 303:
        return r.status_code, r.text
    return 303, client.get(r.headers["location"]).text


def test_admin_blocks_and_unblocks_with_the_clis_messages(admin: TestClient) -> None:
    status, page = post(
        admin,
        "/lists/block",
        "/lists/block",
        number="+1 555 123 4567",
        code="608",
        reason="robocaller",
    )
    assert status == 303
    assert "added block #1 global +15551234567 (robocaller)" in page
    assert "<td>+15551234567</td>" in page and "<td>608</td>" in page
    status, page = post(admin, "/lists/block", "/lists/block", number="hello")
    assert "Number: expected a phone number like +15551234567 or a prefix like +1900*, got " in (
        page.replace("&#39;", "'")
    )
    assert page.count("<td>+1") == 1  # nothing was written
    status, page = post(
        admin, "/lists/block", "/lists/block", number="+15550000000", expires="someday"
    )
    assert "Expires:" in page
    status, page = post(admin, "/lists/block/1/remove", "/lists/block")
    assert "removed block #1 global +15551234567" in page and "No entries." in page


def test_list_pages_page_through_entries_and_search_by_number(admin: TestClient) -> None:
    token = csrf(admin, "/lists/allow")
    for n in range(120):
        r = admin.post("/lists/allow", data={"csrf": token, "number": f"+1555{n:07d}"})
        assert r.status_code == 303
    first = admin.get("/lists/allow").text
    numbers = re.findall(r"<td>(\+1555\d{7})</td>", first)
    assert len(numbers) == 50 and numbers == sorted(numbers)
    seen = list(numbers)
    link = re.search(r'<a href="(\?[^"]+)" rel="next">', first)
    while link:
        page = admin.get("/lists/allow" + link.group(1).replace("&amp;", "&")).text
        seen += re.findall(r"<td>(\+1555\d{7})</td>", page)
        link = re.search(r'<a href="(\?[^"]+)" rel="next">', page)
    assert seen == [f"+1555{n:07d}" for n in range(120)]
    found = re.findall(r"<td>(\+1555\d{7})</td>", admin.get("/lists/allow?number=1555000011").text)
    assert found == [f"+1555{n:07d}" for n in range(110, 120)]
    assert admin.get("/lists/allow?after=nonsense").status_code == 400


def test_the_call_log_explains_and_its_rows_block_or_allow(
    admin: TestClient, database_url: str
) -> None:
    log_calls(
        database_url,
        ("201", "+15557000001", "rejected", 607, "block"),
        ("202", "+15557000002", "allowed", None, None),
    )
    page = admin.get("/calls").text
    assert "+15557000001" in page and "+15557000002" in page and "why" in page
    only = admin.get("/calls?extension=202").text
    assert "+15557000002" in only and "+15557000001" not in only
    assert admin.get("/calls?caller=hello").status_code == 400
    status, page = post(
        admin,
        "/lists/allow",
        "/calls",
        number="+15557000001",
        reason="from the call log",
        back="/calls",
    )
    assert status == 303 and "added allow" in page and "<h2>Calls</h2>" in page


def test_policies_dnd_users_and_the_audit_trail(admin: TestClient) -> None:
    _, page = post(
        admin, "/policies", "/policies", kind="unverified", action="challenge", extension="201"
    )
    assert "set policy #1 unverified (extension 201)" in page
    _, page = post(admin, "/policies", "/policies", kind="robots", action="reject")
    assert "Policy: expected one of anonymous, invalid" in page
    _, page = post(admin, "/policies/remove", "/policies", kind="unverified", extension="201")
    assert "removed policy #1" in page
    _, page = post(
        admin,
        "/dnd",
        "/dnd",
        extension="203",
        days="mon-fri",
        **{"from": "22:00"},
        to="07:00",
        tz="UTC",
    )
    assert "added dnd #1 extension 203 mon,tue,wed,thu,fri 22:00-07:00 UTC" in page
    _, page = post(admin, "/dnd/manual/203", "/dnd", on="1", until="2h")
    assert "do-not-disturb on" in page
    _, page = post(
        admin, "/users", "/users", name="carol", role="user", extension="202", password="short"
    )
    assert "Password: expected at least 10 characters" in page
    _, page = post(
        admin, "/users", "/users", name="carol", role="user", extension="202", password=PASSWORD
    )
    assert "added user carol" in page
    _, page = post(admin, "/users/remove", "/users", name="alice")
    assert "you cannot remove yourself" in page
    trail = admin.get("/audit").text
    for action in ("policy set", "policy remove", "dnd add", "dnd on", "user add"):
        assert f"<td>{action}</td>" in trail, action
    assert "<td>alice</td>" in trail


def test_import_shows_progress_and_export_gives_it_back(admin: TestClient) -> None:
    rows = "".join(f"block,+1555{n:07d},,,607,bulk\n" for n in range(3000))
    body = "kind,number,name,extension,code,reason\n" + rows
    r = admin.post(
        "/transfer",
        params={"csrf": csrf(admin, "/transfer")},
        files={"file": ("rules.csv", body.encode(), "text/csv")},
    )
    assert r.status_code == 303
    progress = r.headers["location"]
    for _ in range(100):
        page = admin.get(progress).text
        if "imported" in page or "failed" in page:
            break
        assert "<progress" in page and 'http-equiv="refresh"' in page
        time.sleep(0.1)
    assert "imported 3000 block, 0 allow, 0 dnd, 0 name, 0 policy rows" in page
    exported = admin.get("/transfer/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.count("+1555") == 3000
    bad = "kind,number\nblock,+15550000001\nblock,garbage\n"
    r = admin.post(
        "/transfer",
        params={"csrf": csrf(admin, "/transfer")},
        files={"file": ("bad.csv", bad.encode(), "text/csv")},
    )
    for _ in range(100):
        page = admin.get(r.headers["location"]).text
        if "Import failed" in page:
            break
        time.sleep(0.1)
    assert "line 3" in page
    assert admin.get("/transfer/export.csv").text.count("+1555") == 3000  # nothing added


def test_a_user_reaches_only_their_own_extension(user: TestClient) -> None:
    for path in (
        "/calls",
        "/lists/block",
        "/policies",
        "/dnd",
        "/users",
        "/audit",
        "/transfer",
        "/transfer/export.csv",
        "/ext/202",
    ):
        assert user.get(path).status_code == 403, path
    page = user.get("/ext/201")
    assert page.status_code == 200 and "Do-not-disturb is off" in page.text
    status, page = post(
        user, "/lists/block", "/ext/201", number="+15550000009", extension="201", back="/ext/201"
    )
    assert "added block" in page and "+15550000009" in page
    status, _ = post(user, "/lists/block", "/ext/201", number="+15550000010", extension="202")
    assert status == 403
    status, _ = post(user, "/lists/block", "/ext/201", number="+15550000011")  # global
    assert status == 403
    status, page = post(user, "/dnd/manual/201", "/ext/201", on="1", back="/ext/201")
    assert "Do-not-disturb is <strong>on</strong>" in page
    assert post(user, "/dnd/manual/202", "/ext/201", on="1")[0] == 403
    status, page = post(
        user,
        "/dnd",
        "/ext/201",
        extension="201",
        days="sat,sun",
        **{"from": "00:00"},
        to="00:00",
        tz="UTC",
        back="/ext/201",
    )
    assert "added dnd" in page
    assert (
        post(
            user, "/dnd", "/ext/201", extension="202", days="all", **{"from": "09:00"}, to="17:00"
        )[0]
        == 403
    )
    r = user.post("/lists/block", data={"number": "+15550000012", "extension": "201"})
    assert r.status_code == 403 and "CSRF" in r.text


def test_the_dashboards_day_summaries_agree_with_the_log_and_follow_a_purge(
    database_url: str,
) -> None:
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from screening.service.calls import chart_days
    from screening.store import calllog

    engine = make_engine(database_url)
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = []
    for day in range(6):  # today and the five days before
        at = now - timedelta(days=day)
        for n in range(day + 1):
            decision: Literal["allowed", "rejected"] = "rejected" if n % 2 else "allowed"
            rule = "error" if n == 2 else ("block" if decision == "rejected" else None)
            code = (607, 608)[n % 4 // 3] if decision == "rejected" else None
            rows.append(
                calllog.CallRecord(
                    at,
                    f"c{day}-{n}",
                    "+15550000001",
                    "+15550000001",
                    "201",
                    decision,
                    code,
                    rule,
                    None,
                    "why",
                    900,
                )
            )
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, rows)
    days = chart_days("UTC", now)
    with Session(engine) as s:
        live = calllog.daily(s, "UTC", days)  # nothing settled yet: all from the log
    with Session(engine) as s, s.begin():
        assert calllog.settle_days(s, "UTC", days, now) == 29  # every day over, empty or not
    with Session(engine) as s, s.begin():
        assert calllog.settle_days(s, "UTC", days, now) == 0
    with Session(engine) as s:
        assert calllog.daily(s, "UTC", days) == live
    assert len(live) == 30 and [d.day for d in live] == days  # days without calls: zeros
    assert [(d.allowed, d.spam, d.refused, d.failed_open) for d in live[-6:]] == [
        (3, 2, 1, 1),
        (3, 1, 1, 1),
        (2, 1, 1, 1),
        (2, 1, 0, 1),
        (1, 1, 0, 0),
        (1, 0, 0, 0),
    ]
    assert not any(d.calls for d in live[:-6])
    with Session(engine) as s, s.begin():
        calllog.purge_log(s, now - timedelta(days=3, hours=1))
    with Session(engine) as s, s.begin():
        calllog.settle_days(s, "UTC", days, now)
    with Session(engine) as s:
        after = calllog.daily(s, "UTC", days)
    assert after[-4:] == live[-4:] and not any(d.calls for d in after[:-4])
    engine.dispose()


def test_the_chart_counts_the_days_of_the_consoles_zone(database_url: str) -> None:
    """A call at 02:00 UTC is the evening before in New York: its day there, its own
    summary, beside UTC's; and New York's days run 23 and 25 hours across DST."""
    from datetime import date, timedelta

    from sqlalchemy.orm import Session

    from screening.service.calls import chart_days
    from screening.store import calllog

    engine = make_engine(database_url)
    now = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)  # the Tuesday after DST ended there
    late = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Sunday 21:00 in New York
    record = calllog.CallRecord(
        late,
        "c1",
        "+15550000001",
        "+15550000001",
        "201",
        "rejected",
        608,
        "block",
        None,
        "why",
        900,
    )
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, [record])
    for zone, day in (("America/New_York", date(2026, 11, 1)), ("UTC", date(2026, 11, 2))):
        days = chart_days(zone, now)
        assert days[-1] == date(2026, 11, 3) and days[0] == date(2026, 10, 5)
        with Session(engine) as s, s.begin():
            assert calllog.settle_days(s, zone, days, now) == 29  # all but today
        with Session(engine) as s:
            counted = {d.day: d.refused for d in calllog.daily(s, zone, days) if d.calls}
        assert counted == {day: 1}, zone
    start, end = calllog.day_bounds(date(2026, 11, 1), "America/New_York")
    assert end - start == timedelta(hours=25)  # 01:00-02:00 twice
    start, end = calllog.day_bounds(date(2026, 3, 8), "America/New_York")
    assert end - start == timedelta(hours=23)
    engine.dispose()


def test_caller_name_entries_and_the_dnd_filter(admin: TestClient) -> None:
    _, page = post(
        admin,
        "/names/block",
        "/names/block",
        pattern="*Scam Likely*",
        code="608",
        reason="carrier label",
    )
    assert "added block #1 global name &#39;*scam likely*&#39; (carrier label)" in page
    assert "<td>*scam likely*</td>" in page and "<td>608</td>" in page
    _, page = post(admin, "/names/block", "/names/block", pattern="***")
    assert "Name or pattern: expected a name or a pattern like" in page.replace("&#39;", "'")
    _, page = post(admin, "/names/block/remove", "/names/block", pattern="*scam likely*")
    assert "removed block #1" in page and "None." in page
    for ext in ("203", "204"):
        post(
            admin,
            "/dnd",
            "/dnd",
            extension=ext,
            days="all",
            **{"from": "22:00"},
            to="07:00",
            tz="UTC",
        )
    only = admin.get("/dnd?extension=204").text
    assert "extension 204" in only and "extension 203" not in only
    assert "expected" in admin.get("/dnd?extension=a%20b").text


def test_an_upload_past_the_limit_is_refused_with_the_way_out(
    admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("screening.web.pages.transfer.MAX_UPLOAD", 2**20)  # 1 MB for the test
    body = "kind,number\n" + "block,+15550000001\n" * 60000  # 1.1 MB
    r = admin.post(
        "/transfer",
        params={"csrf": csrf(admin, "/transfer")},
        files={"file": ("big.csv", body.encode(), "text/csv")},
    )
    assert r.status_code == 303
    page = admin.get(r.headers["location"]).text
    assert "file: expected at most 1 MB; larger files: `screening import`" in page


def test_an_id_past_the_column_is_no_such_row_not_a_server_error(admin: TestClient) -> None:
    # PostgreSQL raises on 2^31 in a 32-bit column; the page must say "no such" instead.
    for path in ("/lists/block/2147483648/remove", "/dnd/2147483648/remove"):
        r = admin.post(path, data={"csrf": csrf(admin, "/lists/block")})
        assert r.status_code == 404, (path, r.status_code)


@pytest.mark.parametrize("raw", ["²", "٣", "1" * 40])
def test_numbers_in_pages_are_ascii_digits(admin: TestClient, raw: str) -> None:
    page = admin.get("/calls", params={"before": raw})
    assert page.status_code == 400 and "before: expected a whole number" in page.text
    token = csrf(admin, "/lists/block")
    assert admin.post(f"/lists/block/{raw}/remove", data={"csrf": token}).status_code == 404


def test_times_are_shown_and_read_in_the_consoles_zone(database_url: str) -> None:
    """web.timezone: every time on the pages in that zone with its abbreviation (and the
    UTC instant in <time datetime>), the forms' dates and times read in it; the API's
    stay UTC."""
    engine = make_engine(database_url)
    Accounts(engine).add("alice", "admin", None, PASSWORD, datetime.now(UTC))
    config = Config(web_timezone="America/New_York")
    admin = TestClient(create_app(config, engine, "test-secret"), follow_redirects=False)
    assert login(admin, "alice") == 303
    _, page = post(
        admin, "/lists/block", "/lists/block", number="+15550000001", expires="2099-12-31"
    )
    # Through that day in New York: its end is 05:00 UTC the next day.
    assert '<time datetime="2100-01-01T05:00:00Z">2100-01-01 00:00 EST</time>' in page
    assert "Expires (30d, 2026-12-31; America/New_York)" in page
    assert "Times are in America/New_York (E" in page  # EST or EDT, as the day is
    _, page = post(
        admin, "/dnd", "/dnd", extension="203", days="all", **{"from": "22:00"}, to="07:00"
    )
    assert "22:00-07:00 America/New_York" in page  # a schedule without a zone: the console's
    _, page = post(admin, "/dnd/manual/204", "/dnd", on="1", until="2099-06-01 18:00", back="/dnd")
    assert '<time datetime="2099-06-01T22:00:00Z">2099-06-01 18:00 EDT</time>' in page
    log_calls(database_url, ("201", "+15557000001", "rejected", 607, "block"))
    page = admin.get("/calls").text
    (shown,) = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page)
    at = datetime.fromisoformat(shown[0])
    assert shown[1] == at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S %Z")
    for path in ("/users", "/audit", "/ext/201", "/"):
        assert admin.get(path).status_code == 200
    assert re.search(r'<time datetime="[^"]+Z">[^<]+ E[SD]T</time>', admin.get("/audit").text)
    token = Accounts(engine).new_token("alice", datetime.now(UTC), None)[0]
    api = TestClient(admin.app, headers={"Authorization": f"Bearer {token}"})
    (entry,) = api.get("/api/v1/lists/block").json()["entries"]
    assert entry["expires"] == "2100-01-01T05:00:00Z"
    engine.dispose()


def test_the_stylesheets_are_served_from_the_package_with_a_long_cache(
    admin: TestClient,
) -> None:
    page = admin.get("/").text
    links = re.findall(r'<link rel="stylesheet" href="(/static/[^"]+)">', page)
    assert [link.split("?")[0] for link in links] == ["/static/simple.css", "/static/console.css"]
    for link in links:
        r = admin.get(link)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "Simple.css" in admin.get("/static/simple.css.LICENSE").text  # its licence beside it
    assert "<style" not in page and "style=" not in page  # nothing inline


def test_the_chart_labels_30_days_with_a_legend_and_a_table(
    admin: TestClient, database_url: str
) -> None:
    log_calls(
        database_url,
        ("201", "+15557000001", "rejected", 607, "block"),
        ("201", "+15557000002", "rejected", 608, "block"),
        ("201", "+15557000003", "allowed", None, None),
    )
    page = admin.get("/").text
    chart = page[page.index('<figure class="chart">') : page.index("</figure>")]
    for series in ("allowed", "607 Unwanted (spam)", "608 Rejected"):
        assert f"</svg>{series}</li>" in chart  # the legend names each series
    assert '<title id="chart-title">Calls per day, ' in chart and "<desc id=" in chart
    assert "30 days, 3 calls: 1 allowed, 1 spam (607), 1 refused (608)." in chart
    labels = re.findall(r'text-anchor="middle"[^>]*>(\d+)</text>', chart)
    assert len(labels) == 30 and 'class="today">today</text>' in chart
    rows = re.findall(r'<tr><th scope="row">.*?</tr>', chart)
    assert len(rows) == 30  # a day without calls is a row of zeros, not a gap
    assert sum('<td class="n">0</td>' * 4 in r for r in rows) == 29
    assert '<rect class="spam"' in chart and '<rect class="refused"' in chart


def test_a_far_expiry_from_a_user_is_refused_and_leaves_every_page_up(database_url: str) -> None:
    # In Berlin an instant in 9999 is past what datetime holds: one such row from a user
    # broke the admin's pages with a 500.
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    Accounts(engine).add("alice", "admin", None, "correct horse battery", now)
    Accounts(engine).add("bob", "user", "201", "correct horse battery", now)
    app = create_app(Config(web_timezone="Europe/Berlin"), engine, "s")
    admin = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    bob = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    login(admin, "alice"), login(bob, "bob")
    for expires in ("9999-12-31T23:30:00Z", "9999-12-31", "999999w"):
        r = bob.post(
            "/lists/block",
            data={
                "csrf": csrf(bob, "/ext/201"),
                "extension": "201",
                "number": "+15551234567",
                "expires": expires,
                "back": "/ext/201",
            },
        )
        assert r.status_code == 303, expires
        assert "before+the+year+9000" in r.headers["location"], expires
    assert bob.get("/ext/201").status_code == 200
    assert admin.get("/lists/block").status_code == 200
    from screening.web.timefmt import local  # a row written before the bound still shows

    assert "9999-12-31 23:30 UTC" in local(datetime(9999, 12, 31, 23, 30, tzinfo=UTC), "Asia/Tokyo")
    engine.dispose()


def test_the_dashboard_answers_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    # Writing the day summaries is best effort: a locked database must not cost the page.
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    Accounts(engine).add("alice", "admin", None, "correct horse battery", datetime.now(UTC))
    admin = TestClient(
        create_app(Config(web_timezone="UTC"), engine, "s"),
        follow_redirects=False,
        raise_server_exceptions=False,
    )
    assert login(admin, "alice") == 303
    hold = sqlite3.connect(path, isolation_level=None)
    hold.execute("BEGIN IMMEDIATE")
    try:
        assert admin.get("/").status_code == 200
    finally:
        hold.execute("ROLLBACK")
        hold.close()
    engine.dispose()


def test_the_day_summaries_are_counted_before_any_is_written(tmp_path: Path) -> None:
    # On SQLite an INSERT takes the write lock: written between the counts, it held the
    # call-log writer back for the whole refill (0.3 s a million rows).
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from screening.service import calls as call_log
    from screening.store import calllog

    engine = make_engine(f"sqlite:///{tmp_path / 'days.db'}")
    migrate.upgrade(engine)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rows = [
        calllog.CallRecord(
            datetime(2026, 11, day, 9, tzinfo=UTC),
            f"c{day}",
            "+1555",
            "+1555",
            "201",
            "allowed",
            None,
            None,
            None,
            "why",
            900,
        )
        for day in range(2, 30)
    ]
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, rows)
    said: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: said.append(a[2].split()[0]))
    assert call_log.settle(engine, "UTC", now) == 29
    inserts = [i for i, verb in enumerate(said) if verb.upper() == "INSERT"]
    selects = [i for i, verb in enumerate(said) if verb.upper() == "SELECT"]
    assert inserts and max(selects) < min(inserts), said
    engine.dispose()
