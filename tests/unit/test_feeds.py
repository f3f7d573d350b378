"""The feed readers: the FTC's complaint file, plain numbers and our CSV export, fed in
chunks of any size, with what they skip counted."""

from __future__ import annotations

import pytest

from screening.core.feeds import FTC_HEADER, MAX_LINE, FeedFormatError, Reader, read_all

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
