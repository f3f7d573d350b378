"""Admin input parsing: every bad value names its field and what was expected."""

from __future__ import annotations

from datetime import time

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
