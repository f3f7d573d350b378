"""Subscribed spam feeds on SQLite, PostgreSQL and MariaDB, fetched from a real HTTP server on
loopback: the FTC's file with its odd rows, conditional requests, a body that claims 1 GB, a
server that dies half-way, aging over a month, min-reports, `update --due` and the call path."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from screening.core import feeds as core_feeds
from screening.core.decision import Action, IncomingCall, decide
from screening.core.errors import InvalidInput
from screening.core.feeds import FTC_HEADER
from screening.service import feeds
from screening.service.actor import CLI
from screening.stir import feedfetch
from screening.store import lookup, migrate
from screening.store.engine import make_engine
from screening.store.models import Feed, FeedNumber
from tests.cli_helpers import Cli

NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)  # a Monday
ETAG = '"ftc-1"'
MODIFIED = "Mon, 02 Nov 2026 05:00:00 GMT"


def ftc_file(*numbers: str) -> bytes:
    rows = [
        f"{n},2026-11-01 10:{i // 60:02d}:{i % 60:02d},2026-10-31 09:00:00,Austin,TX,512,"
        f'"Dropped call, or no message",Y'
        for i, n in enumerate(numbers)
    ]
    return ("\n".join([",".join(FTC_HEADER), *rows]) + "\n").encode()


@dataclass
class Page:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    # ok | huge (claims 1 GB) | dies (half the body, then the connection) | trickle (a byte
    # every 0.2 s) | error (500 with `reason`)
    mode: str = "ok"
    reason: str = ""


@dataclass
class Server:
    base: str
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            state.requests.append((self.path, inm, ims))
            page = state.pages.get(self.path)
            if page is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if (page.etag and inm == page.etag) or (
                page.last_modified and ims == page.last_modified
            ):
                self.send_response(304)
                self.end_headers()
                return
            if page.mode == "error":
                self.send_response(500, page.reason)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            length = 1 << 30 if page.mode == "huge" else len(page.body)
            self.send_header("Content-Length", str(length))
            if page.etag:
                self.send_header("ETag", page.etag)
            if page.last_modified:
                self.send_header("Last-Modified", page.last_modified)
            self.end_headers()
            if page.mode == "trickle":
                with contextlib.suppress(OSError):
                    for byte in page.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                return
            if page.mode == "dies":
                self.wfile.write(page.body[: len(page.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            with contextlib.suppress(OSError):  # the client left (the 1 GB claim)
                self.wfile.write(page.body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def add(engine: Engine, server: Server, name: str, fmt: str, path: str, **opts: str) -> None:
    new = feeds.new_feed(name, server.base + path, fmt, relaxed=True, **opts)
    feeds.add_feed(engine, new, NOW, by=CLI)


def numbers(engine: Engine, name: str) -> dict[str, int]:
    query = (
        select(FeedNumber.number, FeedNumber.reports)
        .join(Feed, Feed.id == FeedNumber.feed_id)
        .where(Feed.name == name)
    )
    with Session(engine) as s:
        return {number: reports for number, reports in s.execute(query)}


def decided(engine: Engine, caller: str, ext: str = "201", now: datetime = NOW) -> str:
    with Session(engine) as s:
        rules = lookup.rules_for(s, caller, ext, now)
    d = decide(IncomingCall(caller, caller, ext), rules, now)
    return f"{d.action} {d.sip_code} {d.rule_kind}: {d.reason}"


def test_an_ftc_file_counts_each_complaint_and_skips_its_odd_rows(
    engine: Engine, server: Server
) -> None:
    body = ftc_file("5125550101", "5125550101", "", "512555010", "5125550102", "5125550103")
    body += body.splitlines(keepends=True)[-1]  # one complaint row twice
    server.pages["/ftc.csv"] = Page(body)
    add(engine, server, "ftc-dnc", "ftc-dnc", "/ftc.csv", min_reports="2")
    result = feeds.update_feed(engine, "ftc-dnc", NOW, "DE")
    assert (result.status, result.rows, result.reports) == ("updated", 7, 4)
    assert result.skipped == {"blank number": 1, "9 digits": 1, "duplicate row": 1}
    assert numbers(engine, "ftc-dnc") == {"+15125550101": 2, "+15125550102": 1, "+15125550103": 1}
    assert result.in_force == 1 and feeds.show_feed(engine, "ftc-dnc").numbers_in_force == 1
    assert decided(engine, "+15125550101") == (
        "reject 607 feed: feed ftc-dnc: 2 reports since 2026-11-02"
    )
    assert decided(engine, "+15125550102").endswith("no rule matched")  # 1 of 2 reports


def test_an_unchanged_file_is_not_read_again(engine: Engine, server: Server) -> None:
    server.pages["/ftc.csv"] = Page(ftc_file("5125550101"), ETAG, MODIFIED)
    add(engine, server, "ftc", "ftc-dnc", "/ftc.csv")
    assert feeds.update_feed(engine, "ftc", NOW, "US").status == "updated"
    later = NOW + timedelta(hours=5)
    again = feeds.update_feed(engine, "ftc", later, "US")
    assert again.status == "not-modified" and again.in_force == 1
    assert server.requests[-1] == ("/ftc.csv", ETAG, MODIFIED)
    shown = feeds.show_feed(engine, "ftc")
    assert shown.last_checked_at == later and shown.last_updated_at == NOW
    assert numbers(engine, "ftc") == {"+15125550101": 1}  # not counted twice


def test_a_body_claiming_a_gigabyte_is_refused_before_it_is_read(
    engine: Engine, server: Server
) -> None:
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt")
    feeds.update_feed(engine, "list", NOW, "US")
    server.pages["/n.txt"] = Page(b"+15125550199\n" * 1000, mode="huge")
    t0 = time.monotonic()
    result = feeds.update_feed(engine, "list", NOW + timedelta(days=1), "US")
    assert time.monotonic() - t0 < 5
    assert result.status == "failed"
    assert result.error == "Content-Length 1073741824 is over the cap of 268435456 bytes"
    assert numbers(engine, "list") == {"+15125550101": 1}
    assert feeds.show_feed(engine, "list").last_error == result.error


def test_bytes_are_counted_as_they_arrive(engine: Engine, server: Server) -> None:
    server.pages["/n.txt"] = Page(b"+15125550101\n" * 100)
    add(engine, server, "list", "numbers", "/n.txt")
    result = feeds.update_feed(engine, "list", NOW, "US", max_bytes=1000)
    assert result.status == "failed" and "over the cap of 1000 bytes" in (result.error or "")


def test_a_server_that_dies_half_way_leaves_the_previous_feed_in_force(
    engine: Engine, server: Server
) -> None:
    first = ftc_file("5125550101", "5125550102")
    server.pages["/ftc.csv"] = Page(first)
    add(engine, server, "ftc", "ftc-dnc", "/ftc.csv")
    feeds.update_feed(engine, "ftc", NOW, "US")
    many = [f"51255{i:05d}" for i in range(6000)]  # half of it came, then the server died
    server.pages["/ftc.csv"] = Page(ftc_file(*many), mode="dies")
    result = feeds.update_feed(engine, "ftc", NOW + timedelta(days=1), "US")
    assert result.status == "failed", result
    assert numbers(engine, "ftc") == {"+15125550101": 1, "+15125550102": 1}
    shown = feeds.show_feed(engine, "ftc")
    assert shown.numbers_in_force == 2 and shown.last_updated_at == NOW
    assert shown.last_error and shown.last_checked_at == NOW + timedelta(days=1)
    assert decided(engine, "+15125550101", now=NOW + timedelta(days=1)).startswith("reject 607")


def test_numbers_age_out_over_a_month_and_need_their_reports(
    engine: Engine, server: Server
) -> None:
    server.pages["/n.txt"] = Page(b"# day 0\n+15125550101\n+15125550102\n")
    add(engine, server, "list", "numbers", "/n.txt", keep="30d", min_reports="2")
    assert feeds.update_feed(engine, "list", NOW, "US").in_force == 0
    assert decided(engine, "+15125550101").endswith("no rule matched")
    day20 = NOW + timedelta(days=20)
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    assert feeds.update_feed(engine, "list", day20, "US").in_force == 1
    assert decided(engine, "+15125550101", now=day20) == (
        "reject 607 feed: feed list: 2 reports since 2026-11-02"
    )
    day40 = NOW + timedelta(days=40)
    server.pages["/n.txt"] = Page(b"+15125550103\n")
    result = feeds.update_feed(engine, "list", day40, "US")
    assert (result.dropped, result.numbers, result.in_force) == (1, 2, 1)
    assert set(numbers(engine, "list")) == {"+15125550101", "+15125550103"}
    # Day 51: 101 was last seen on day 20; it no longer counts, even before an update drops it.
    day51 = NOW + timedelta(days=51)
    with Session(engine) as s:
        assert len(lookup.rules_for(s, "+15125550101", "201", day51).feeds) == 1
    assert decided(engine, "+15125550101", now=day51).endswith("no rule matched")


def test_an_allow_entry_and_an_admins_block_beat_a_feed(engine: Engine, server: Server) -> None:
    from screening.service import ops

    server.pages["/n.txt"] = Page(b"+15125550101\n+15125550102\n")
    add(engine, server, "list", "numbers", "/n.txt", code="608")
    feeds.update_feed(engine, "list", NOW, "US")
    ops.add_entry(engine, "allow", "+15125550101", "US", now=NOW, by=CLI)
    ops.add_entry(engine, "block", "+15125550102", "US", code=607, now=NOW, by=CLI)
    assert decided(engine, "+15125550101").startswith("continue None allow")
    assert decided(engine, "+15125550102").startswith("reject 607 block")
    assert numbers(engine, "list") == {"+15125550101": 1, "+15125550102": 1}


def test_update_due_takes_only_feeds_whose_every_has_passed(engine: Engine, server: Server) -> None:
    server.pages["/a.txt"] = Page(b"+15125550101\n")
    server.pages["/b.txt"] = Page(b"+15125550102\n")
    add(engine, server, "hourly", "numbers", "/a.txt", every="1h")
    add(engine, server, "daily", "numbers", "/b.txt", every="1d")
    assert sorted(r.name for r in feeds.update_due(engine, NOW, "US")) == ["daily", "hourly"]
    assert [r.name for r in feeds.update_due(engine, NOW + timedelta(minutes=30), "US")] == []
    assert [r.name for r in feeds.update_due(engine, NOW + timedelta(hours=2), "US")] == ["hourly"]
    assert len(feeds.update_due(engine, NOW + timedelta(days=1), "US")) == 2


def test_a_dated_ftc_url_takes_that_days_file_and_a_missing_day_is_normal(
    engine: Engine, server: Server
) -> None:
    server.pages["/DNC_Complaint_Numbers_2026-11-02.csv"] = Page(ftc_file("5125550101"))
    add(engine, server, "ftc", "ftc-dnc", "/DNC_Complaint_Numbers_{date}.csv")
    assert feeds.update_feed(engine, "ftc", NOW, "US").status == "updated"
    saturday = NOW + timedelta(days=5)
    result = feeds.update_feed(engine, "ftc", saturday, "US")
    assert (result.status, result.in_force) == ("no-file", 1)
    assert feeds.show_feed(engine, "ftc").last_error is None


def test_the_feed_commands_as_an_admin_runs_them(cli: Cli, server: Server) -> None:
    server.pages["/ftc.csv"] = Page(ftc_file("5125550101", "5125550101", "", "512555010"))
    url = server.base + "/ftc.csv"
    refused = cli("feed", "add", "ftc", url, "--format", "ftc-dnc")
    assert refused.code == 2 and "URL: expected an https:// URL" in refused.err
    for bad, said in (
        (["--format", "xml"], "--format: expected one of ftc-dnc, numbers, csv"),
        (["--format", "numbers", "--every", "3x"], "--every: expected a duration"),
        (["--format", "numbers", "--keep", "0d"], "--keep: expected a duration"),
        (["--format", "numbers", "--code", "609"], "--code: expected 607"),
        (["--format", "numbers", "--action", "ring"], "--action: expected reject or challenge"),
        (["--format", "numbers", "--min-reports", "0"], "--min-reports: expected a whole"),
    ):
        r = cli("feed", "add", "x", url, "--relax", *bad)
        assert (r.code, said in r.err) == (2, True), (bad, r.err)
    ok = cli("feed", "add", "ftc", url, "--format", "ftc-dnc", "--relax", "--min-reports", "2")
    assert ok.code == 0, ok.err
    assert cli("feed", "add", "ftc", url, "--format", "ftc-dnc", "--relax").code == 2
    updated = cli("feed", "update", "ftc")
    assert updated.code == 0, updated.err
    assert "4 rows, 2 reports (skipped: 1 9 digits, 1 blank number)" in updated.out
    assert "1 in force" in updated.out
    not_due = cli("feed", "update", "--due", "--json")  # checked a moment ago, every 1d
    assert (not_due.code, json.loads(not_due.out)) == (0, [])
    assert cli("feed", "update", "ftc", "--due").code == 2
    checked = cli("check", "+15125550101", "201")
    assert checked.code == 0 and "rejected with 607" in checked.out
    assert "feed ftc: 2 reports since" in checked.out
    listed = json.loads(cli("feed", "list", "--json").out)
    assert [(f["name"], f["numbers_in_force"], f["every"]) for f in listed] == [("ftc", 1, "1d")]
    assert json.loads(cli("feed", "show", "ftc", "--json").out)["numbers"] == 1
    server.pages.clear()  # the next fetch is a 404 on an undated URL: a failure
    failed = cli("feed", "update", "ftc")
    assert failed.code == 1 and "update failed, nothing changed: HTTP 404" in failed.out
    assert "error" in cli("feed", "list").out
    assert cli("feed", "update").code == 2  # NAME or --due
    assert cli("feed", "show", "nope").code == 1
    assert cli("feed", "remove", "ftc").code == 0
    assert cli("check", "+15125550101", "201").out.count("feed") == 0
    assert cli("feed", "list").out.startswith("no feeds")


def test_removing_a_feed_removes_its_numbers(engine: Engine, server: Server) -> None:
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt")
    feeds.update_feed(engine, "list", NOW, "US")
    feeds.remove_feed(engine, "list", NOW, by=CLI)
    with Session(engine) as s:
        assert s.scalars(select(FeedNumber)).all() == []


def test_the_feeds_migration_runs_again_after_dying_halfway(empty_database_url: str) -> None:
    # MariaDB commits each CREATE TABLE at once: an upgrade killed between 0012's two
    # creates left one table behind, and the next `db upgrade` must get through.
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE feed_numbers"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0011'"))
    migrate.upgrade(engine)
    assert {"feeds", "feed_numbers"} <= set(inspect(engine).get_table_names())
    indexes = {i["name"] for i in inspect(engine).get_indexes("feed_numbers")}
    assert "ix_feed_numbers_number" in indexes
    migrate.downgrade(engine, "0011")
    assert "feeds" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    engine.dispose()


def test_a_challenging_feed_for_one_extension(engine: Engine, server: Server) -> None:
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt", action="challenge", extension="202")
    feeds.update_feed(engine, "list", NOW, "US")
    assert decided(engine, "+15125550101", "201").endswith("no rule matched")
    with Session(engine) as s:
        rules = lookup.rules_for(s, "+15125550101", "202", NOW)
    d = decide(IncomingCall("+15125550101", "+15125550101", "202"), rules, NOW)
    assert (d.action, d.rule_kind) == (Action.CHALLENGE, "feed")


def test_the_call_paths_feed_query_searches_the_number_index(tmp_path: Path) -> None:
    # One indexed look-up per call, whatever the feeds hold: never a scan of feed_numbers.
    # Read from SQLite's plan (PostgreSQL's planner rightly scans a table this small).
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        sql = lookup._feed_sql(conn.dialect)
        explain = dataclasses.replace(sql, text="EXPLAIN QUERY PLAN " + sql.text)
        plan = lookup._run(conn, explain, {"number": "+15125550101", "s1": "201"})
    steps = " / ".join(str(row[-1]) for row in plan)
    assert "feed_numbers USING INDEX ix_feed_numbers_number" in steps, steps
    assert "SCAN feed_numbers" not in steps, steps


# -- what the security review found (each failed before its fix) ---------------------------


def test_a_server_trickling_its_body_cannot_outlast_the_deadline(server: Server) -> None:
    # A byte every 0.2 s keeps every read inside its time-out; the whole fetch still ends.
    server.pages["/slow.txt"] = Page(b"+15125550101\n" * 100, mode="trickle")
    done: list[str] = []

    def fetch() -> None:
        try:
            with feedfetch.get_feed(f"{server.base}/slow.txt", relaxed=True, timeout=2) as body:
                for _ in body.chunks:
                    pass
            done.append("read it all")
        except feedfetch.FeedRefused as e:
            done.append(str(e))

    worker = threading.Thread(target=fetch, daemon=True)
    t0 = time.monotonic()
    worker.start()
    worker.join(timeout=15)
    assert not worker.is_alive(), "the fetch outlasted its 2 s deadline by 13 s"
    assert done == ["the feed took longer than 2s"] and time.monotonic() - t0 < 6


def test_a_validator_a_request_cannot_carry_is_dropped_not_kept(
    engine: Engine, server: Server
) -> None:
    # Kept, "café" broke every later update of the feed (httpx cannot send it).
    server.pages["/n.txt"] = Page(b"+15125550101\n", etag='"caf\u00e9"', last_modified="x" * 80)
    add(engine, server, "list", "numbers", "/n.txt")
    assert feeds.update_feed(engine, "list", NOW, "US").status == "updated"
    shown = feeds.show_feed(engine, "list")
    assert shown.etag is None and shown.last_modified is None
    server.pages["/n.txt"] = Page(b"+15125550102\n")
    assert feeds.update_feed(engine, "list", NOW + timedelta(days=1), "US").status == "updated"


def test_one_feed_failing_unforeseen_does_not_stop_the_others(
    engine: Engine, server: Server
) -> None:
    server.pages["/a.txt"] = Page(b"+15125550101\n")
    server.pages["/b.txt"] = Page(b"+15125550102\n")
    add(engine, server, "a-bad", "numbers", "/a.txt")
    add(engine, server, "b-good", "numbers", "/b.txt")

    def fetch(url: str, **kwargs: Any) -> AbstractContextManager[feedfetch.Body]:
        if url.endswith("/a.txt"):
            raise RuntimeError("something nobody foresaw")
        return feedfetch.get_feed(url, **kwargs)

    results = feeds.update_due(engine, NOW, "US", fetch=fetch)
    assert [(r.name, r.status) for r in results] == [("a-bad", "failed"), ("b-good", "updated")]
    assert "something nobody foresaw" in (feeds.show_feed(engine, "a-bad").last_error or "")


def test_the_same_file_sent_again_adds_no_reports(engine: Engine, server: Server) -> None:
    # No validators, so every fetch is a 200: --min-reports 3 must not be reached by three
    # fetches of one file.
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt", min_reports="3")
    statuses = [
        feeds.update_feed(engine, "list", NOW + timedelta(hours=h), "US").status for h in range(3)
    ]
    assert statuses == ["updated", "not-modified", "not-modified"]
    assert numbers(engine, "list") == {"+15125550101": 1}
    assert decided(engine, "+15125550101").endswith("no rule matched")


def test_a_feed_cannot_block_short_codes_or_extensions(engine: Engine, server: Server) -> None:
    server.pages["/n.txt"] = Page(b"1\n100\n911\n00000\n+0\n201\n+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt")
    result = feeds.update_feed(engine, "list", NOW, "US")
    assert numbers(engine, "list") == {"+15125550101": 1}
    assert result.skipped == {"not a number": 6}


def test_a_feed_with_too_many_numbers_is_refused_whole(
    engine: Engine, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.pages["/n.txt"] = Page(b"+15125550101\n")
    add(engine, server, "list", "numbers", "/n.txt")
    feeds.update_feed(engine, "list", NOW, "US")
    monkeypatch.setattr(core_feeds, "MAX_NUMBERS", 3)
    server.pages["/n.txt"] = Page(b"".join(b"+1512555%04d\n" % i for i in range(200, 210)))
    result = feeds.update_feed(engine, "list", NOW + timedelta(days=1), "US")
    assert result.status == "failed" and "more than 3 distinct numbers" in (result.error or "")
    assert numbers(engine, "list") == {"+15125550101": 1}  # the previous update stays


def test_a_servers_words_reach_no_terminal_raw(engine: Engine, server: Server) -> None:
    server.pages["/n.txt"] = Page(b"", mode="error", reason="Boom\x1b[2J\x1b]0;title\x07")
    add(engine, server, "list", "numbers", "/n.txt")
    result = feeds.update_feed(engine, "list", NOW, "US")
    error = feeds.show_feed(engine, "list").last_error or ""
    assert result.status == "failed" and "Boom" in error
    assert not any(c in error for c in "\x1b\x07"), error


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidInput) as e:
        feeds.new_feed("list", "https://user:secret@example.com/n.txt", "numbers")
    assert "secret" not in str(e.value) and "credentials" in str(e.value)


def test_a_key_in_a_feed_urls_query_is_never_shown(engine: Engine, server: Server) -> None:
    # A provider may take its API key in the query: the fetch uses it, nothing prints it.
    server.pages["/n.txt?api_key=SECRET123&day=1"] = Page(b"+15125550101\n")
    add(engine, server, "keyed", "numbers", "/n.txt?api_key=SECRET123&day=1")
    assert feeds.update_feed(engine, "keyed", NOW, "US").status == "updated"
    shown = feeds.show_feed(engine, "keyed")
    assert shown.url.endswith("/n.txt?api_key=...&day=...")
    assert "SECRET123" not in json.dumps([f.to_json() for f in feeds.list_feeds(engine)])
    with Session(engine) as s:
        logged: list[str] = list(s.execute(text("SELECT detail FROM audit_log")).scalars())
    assert logged and not any("SECRET123" in (line or "") for line in logged)
