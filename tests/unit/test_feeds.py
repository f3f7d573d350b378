"""The feed readers: the FTC's complaint file, plain numbers and our CSV export, fed in
chunks of any size, with what they skip counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from screening.core.decision import (
    Action,
    Entry,
    FeedHit,
    IncomingCall,
    Policy,
    PolicyKind,
    Rules,
    decide,
)
from screening.core.feeds import FTC_HEADER, MAX_LINE, FeedFormatError, Reader, read_all
from screening.core.wire import ANALYTICS, REDRESS_KINDS
from screening.stir.feedfetch import url_problem

HEADER = ",".join(FTC_HEADER)


def ftc(*numbers: str) -> bytes:
    rows = [
        f"{n},2026-11-02 10:00:0{i % 10},2026-11-01 09:00:00,Austin,TX,512,Other,Y"
        for i, n in enumerate(numbers)
    ]
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def test_ftc_rows_each_count_one_report_and_odd_rows_are_counted_as_skipped() -> None:
    body = ftc("5125550101", "5125550101", "", "512555010", "51255501x1", "5125550102")
    body += body.splitlines(keepends=True)[-1]  # the same complaint row once more
    found, reader = read_all("ftc-dnc", "DE", body, chunk=7)
    assert found == ["+15125550101", "+15125550101", "+15125550102"]
    assert reader.rows == 7
    assert reader.skipped == {
        "blank number": 1,
        "9 digits": 1,
        "not a number": 1,
        "duplicate row": 1,
    }


def test_an_ftc_file_with_another_header_is_refused() -> None:
    with pytest.raises(FeedFormatError, match="not an FTC DNC complaint file"):
        read_all("ftc-dnc", "US", b"number,date\n5125550101,2026-11-02\n")
    with pytest.raises(FeedFormatError, match="empty body"):
        read_all("ftc-dnc", "US", b"")


def test_numbers_skip_comments_and_count_each_number_once_per_update() -> None:
    body = b"# spam list\n+1 512 555 0101\n\n5125550101  # again\nnot-a-number\n+15125550103"
    found, reader = read_all("numbers", "US", body, chunk=3)
    assert found == ["+15125550101", "+15125550103"]
    assert reader.skipped == {"duplicate row": 1, "not a number": 1}


def test_a_line_too_long_is_skipped_without_being_kept() -> None:
    reader = Reader("numbers", "US")
    assert reader.feed(b"+15125550101\n" + b"9" * (MAX_LINE + 10)) == ["+15125550101"]
    assert reader.feed(b"9" * (MAX_LINE * 3)) == []
    assert len(reader._buffer) <= MAX_LINE
    assert reader.feed(b"\n+15125550102\n") == ["+15125550102"]
    assert reader.skipped == {"line too long": 1}


def test_csv_takes_only_the_block_rows_numbers() -> None:
    body = (
        b"kind,number,name,extension,code,reason,source,expires\n"
        b"block,+15125550101,,,607,,cli,\n"
        b"block,+1900*,,,607,,cli,\n"
        b"block,,'*SPAM*,,607,,cli,\n"
        b"allow,+15125550109,,,,,cli,\n"
        b"dnd,,,201,,,,\n"
        b"block,+15125550101,,201,608,,cli,\n"
    )
    found, reader = read_all("csv", "US", body)
    assert found == ["+15125550101"]
    assert reader.skipped == {"not a block number": 4, "duplicate row": 1}


def test_an_unknown_format_names_the_field() -> None:
    with pytest.raises(Exception, match="format: expected one of ftc-dnc, numbers, csv"):
        Reader("xml", "US")


# -- the decision core: a feed's hit after allow and block entries, before policies ---------

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CALLER = "+15125550101"


def incoming(ext: str = "201") -> IncomingCall:
    return IncomingCall(CALLER, CALLER, ext)


def hit(
    reports: int = 4,
    *,
    min_reports: int = 1,
    last_seen: datetime = NOW - timedelta(days=1),
    ext: str | None = None,
    action: Action = Action.REJECT,
    code: int = 607,
) -> FeedHit:
    first = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    keep = timedelta(days=90)
    return FeedHit(7, "ftc-dnc", reports, first, last_seen, min_reports, keep, code, action, ext)


def test_a_feed_rejects_and_the_reason_names_it_its_reports_and_first_seen_date() -> None:
    d = decide(incoming(), Rules(feeds=[hit(code=608)]), NOW)
    assert (d.action, d.sip_code, d.rule_kind, d.rule_id) == (Action.REJECT, 608, "feed", 7)
    assert d.reason == "feed ftc-dnc: 4 reports since 2026-11-02"


def test_an_allow_entry_always_beats_a_feed_and_an_admins_block_does_too() -> None:
    allowed = Entry(1, "allow", CALLER, False)
    assert decide(incoming(), Rules(allow=[allowed], feeds=[hit()]), NOW).rule_kind == "allow"
    blocked = Entry(2, "block", CALLER, False, sip_code=608, reason="admin")
    d = decide(incoming(), Rules(block=[blocked], feeds=[hit()]), NOW)
    assert (d.rule_kind, d.rule_id, d.sip_code) == ("block", 2, 608)


def test_a_feed_comes_before_the_policies() -> None:
    policy = Policy(3, PolicyKind.UNVERIFIED, Action.REJECT, 608)
    assert decide(incoming(), Rules(policies=[policy], feeds=[hit()]), NOW).rule_kind == "feed"


def test_too_few_reports_or_unseen_for_keep_or_another_extension_is_no_hit() -> None:
    for unused in (
        hit(2, min_reports=3),
        hit(last_seen=NOW - timedelta(days=90)),
        hit(ext="202"),
    ):
        assert decide(incoming(), Rules(feeds=[unused]), NOW).rule_kind is None
    assert decide(incoming("202"), Rules(feeds=[hit(ext="202")]), NOW).rule_kind == "feed"


def test_a_challenging_feed_challenges() -> None:
    d = decide(incoming(), Rules(feeds=[hit(action=Action.CHALLENGE)]), NOW)
    assert (d.action, d.rule_kind) == (Action.CHALLENGE, "feed")


def test_feeds_are_analytics_on_the_wire_and_may_carry_redress() -> None:
    assert "feed" in ANALYTICS and "feed" in REDRESS_KINDS


def test_a_feeds_url_is_https_unless_relaxed_and_never_carries_credentials() -> None:
    assert url_problem("https://www.ftc.gov/DNC_Complaint_Numbers_{date}.csv", False) is None
    assert url_problem("http://127.0.0.1:8080/list.txt", False) == (
        "expected an https:// URL (http only with --relax)"
    )
    assert url_problem("http://127.0.0.1:8080/list.txt", True) is None
    assert url_problem("ftp://example.net/x", True) == "expected an https:// URL"
    assert url_problem("https://user:pw@example.net/x", True) == "credentials in the URL"
    assert url_problem("https://exämple.net/x", True) is not None
    assert url_problem("https://example.net:99999/x", True) is not None
