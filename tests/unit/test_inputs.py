"""Admin input parsing: every bad value names its field and what was expected."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening import config
from screening.core.errors import ConfigError, InvalidInput
from screening.service import csvfile, parse


@pytest.mark.parametrize(
    ("raw", "days"),
    [
        ("mon,tue,wed,thu,fri", {0, 1, 2, 3, 4}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("all", set(range(7))),
        ("sat,sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("MON, wed", {0, 2}),
        ("weekends", {5, 6}),
    ],
)
def test_days(raw: str, days: set[int]) -> None:
    assert parse.parse_days(raw) == days


@pytest.mark.parametrize("raw", ["", "monday", "mon-", "1-5", "mon;tue"])
def test_bad_days(raw: str) -> None:
    with pytest.raises(InvalidInput, match=r"^days: expected"):
        parse.parse_days(raw)


def test_times() -> None:
    assert parse.parse_hhmm("07:05", "--from") == time(7, 5)
    assert parse.parse_hhmm("7:05", "--from") == time(7, 5)
    for bad in ("25:00", "24:00", "12:60", "noon", "1200", ""):
        with pytest.raises(InvalidInput, match=r"^--to: expected a time of day HH:MM"):
            parse.parse_hhmm(bad, "--to")


def test_time_zones() -> None:
    assert parse.parse_tz("Europe/Berlin") == "Europe/Berlin"
    for bad in ("Mars/Base", "CEST", "../../etc/passwd", ""):
        with pytest.raises(InvalidInput, match=r"^tz: "):
            parse.parse_tz(bad)


def test_codes() -> None:
    assert parse.parse_code("607") == 607 and parse.parse_code(608) == 608
    for bad in ("606", "603", "abc", ""):
        with pytest.raises(InvalidInput, match=r"^code: expected 607 .* or 608"):
            parse.parse_code(bad)
    # The value was echoed as it came: a record separator (\x1e) broke the CLI's one-line
    # error in two (found by the hostile CLI test).
    with pytest.raises(InvalidInput) as e:
        parse.parse_code("\x1e0")
    assert len(str(e.value).splitlines()) == 1 and "'\\x1e0'" in str(e.value)


def test_config_defaults() -> None:
    cfg = config.load({})
    assert cfg.database_url == "sqlite:///screening.db"
    assert cfg.ari_url == "http://127.0.0.1:8088"
    assert (cfg.ari_app, cfg.default_region) == ("screening", "US")
    assert cfg.events_url == "ws://127.0.0.1:8088/ari/events?app=screening&subscribeAll=false"


def test_config_picks_our_drivers() -> None:
    assert (
        config.load({"SCREENING_DATABASE_URL": "postgresql://h/db"}).database_url
        == "postgresql+psycopg://h/db"
    )
    assert (
        config.load({"SCREENING_DATABASE_URL": "mysql://h/db"}).database_url
        == "mysql+pymysql://h/db"
    )


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^SCREENING_DEFAULT_REGION: "):
        config.load({"SCREENING_DEFAULT_REGION": "XX"})
    with pytest.raises(ConfigError, match=r"^SCREENING_DATABASE_URL: "):
        config.load({"SCREENING_DATABASE_URL": "screening.db"})
    with pytest.raises(ConfigError, match=r"^SCREENING_ARI_URL: "):
        config.load({"SCREENING_ARI_URL": "127.0.0.1:8088"})


@given(st.text(max_size=60))
def test_a_free_text_cell_reads_back_as_it_was_and_never_starts_a_formula(text: str) -> None:
    cell = csvfile.text_cell(text)
    assert csvfile.text_value(cell) == text
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d"))


@pytest.mark.parametrize("name", ["localtime", "Factory", "posixrules"])
def test_a_zone_that_differs_from_machine_to_machine_is_refused(name: str) -> None:
    # `localtime` is this machine's /etc/localtime: PBXs sharing a database would key
    # their schedules and day summaries by one name meaning different zones.
    with pytest.raises(InvalidInput) as e:
        parse.parse_tz(name)
    assert e.value.field == "tz"
    with pytest.raises(ConfigError, match="IANA"):
        config.load({"SCREENING_WEB_TIMEZONE": name})
    assert config.load({"SCREENING_WEB_TIMEZONE": "Europe/Berlin"}).web_timezone


def test_until_in_the_hour_a_dst_change_repeats_is_the_next_one_to_come() -> None:
    berlin = "Europe/Berlin"
    # 02:10 CET, the second time round (01:10 UTC): "until 02:20" is ten minutes away.
    second = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert parse.parse_until("02:20", second, berlin) == datetime(2026, 10, 25, 1, 20, tzinfo=UTC)
    # 02:10 CEST, the first time round: the first 02:20.
    first = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)
    assert parse.parse_until("02:20", first, berlin) == datetime(2026, 10, 25, 0, 20, tzinfo=UTC)


def test_a_time_the_clocks_skip_or_past_the_year_9000_is_refused() -> None:
    now = datetime(2027, 3, 27, 12, tzinfo=UTC)
    for raw in ("2027-03-28 02:30", "9999-12-31T23:30:00Z", "999999w"):
        with pytest.raises(InvalidInput) as e:
            parse.parse_expires(raw, now, "Europe/Berlin")
        assert e.value.field == "expires", raw
    with pytest.raises(InvalidInput, match="not on the clock"):
        parse.parse_until("02:30", now, "Europe/Berlin")
    # A bare date is through that day, on a 23-hour day as on any other.
    assert parse.parse_expires("2027-03-28", now, "Europe/Berlin") == datetime(
        2027, 3, 28, 22, tzinfo=UTC
    )
