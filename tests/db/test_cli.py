"""The admin CLI against each backend: what it prints, what it writes, how it fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from screening.store import migrate
from screening.store.engine import make_engine
from screening.store.models import AllowEntry, BlockEntry, DndSchedule
from tests.cli_helpers import screening


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with Session(engine) as s:
        result = tuple(
            s.scalar(select(func.count()).select_from(m)) or 0
            for m in (BlockEntry, AllowEntry, DndSchedule)
        )
    engine.dispose()
    return result  # type: ignore[return-value]


def test_db_upgrade_creates_then_reports_current(empty_database_url: str) -> None:
    env = {"SCREENING_DATABASE_URL": empty_database_url}
    first = screening("db", "upgrade", env=env)
    assert first.code == 0, first.err
    assert f"upgraded from empty to {migrate.head()}" in first.out
    again = screening("db", "upgrade", env=env)
    assert again.code == 0 and f"already at revision {migrate.head()}" in again.out
    assert "up to date" in screening("db", "current", env=env).out


def test_add_commands_write_what_they_say(database_url: str) -> None:
    env = {"SCREENING_DATABASE_URL": database_url}
    r = screening("block", "add", "+1 (555) 123-4567", "--reason", "robocaller", env=env)
    assert r.code == 0, r.err
    assert r.out.strip() == "added block #1 global +15551234567 (robocaller) -> 607"
    r = screening("block", "add", "+1900*", "--for", "201", "--code", "608", env=env)
    assert r.out.strip() == "added block #2 extension 201 prefix +1900* -> 608"
    r = screening("allow", "add", "5557654321", "--for", "201", env=env)
    assert r.out.strip() == "added allow #1 extension 201 +15557654321"
    r = screening(
        "dnd",
        "add",
        "201",
        "--days",
        "mon-fri",
        "--from",
        "22:00",
        "--to",
        "07:00",
        "--tz",
        "Europe/Berlin",
        env=env,
    )
    assert (
        r.out.strip() == "added dnd #1 extension 201 mon,tue,wed,thu,fri 22:00-07:00 Europe/Berlin"
    )
    r = screening("block", "add", "15551234567", "--code", "608", env=env)
    assert r.out.strip() == "updated block #1 global +15551234567 -> 608"
    assert counts(database_url) == (2, 1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["block", "add", "call me"], "number: expected a phone number"),
        (["block", "add", "+15551234567", "--code", "606"], "--code: expected 607"),
        (["block", "add", "+15551234567", "--for", "2 01"], "--for: expected an extension"),
        (["allow", "add", "anonymous"], "number: expected a phone number"),
        (
            ["dnd", "add", "201", "--days", "mon-fri", "--from", "25:00", "--to", "07:00"],
            "--from: expected a time of day HH:MM",
        ),
        (
            [
                "dnd",
                "add",
                "201",
                "--days",
                "all",
                "--from",
                "22:00",
                "--to",
                "07:00",
                "--tz",
                "Mars/Olympus_Mons",
            ],
            "--tz: expected an IANA time zone",
        ),
        (
            ["dnd", "add", "201", "--days", "someday", "--from", "22:00", "--to", "07:00"],
            "--days: expected days like",
        ),
        (["dnd", "add", "201", "--from", "22:00", "--to", "07:00"], "Missing option '--days'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    database_url: str, args: list[str], message: str
) -> None:
    r = screening(*args, env={"SCREENING_DATABASE_URL": database_url})
    assert r.code == 2
    assert r.err.count("\n") == 1 and r.err.startswith("screening: error: ")
    assert message in r.err
    assert "Traceback" not in r.err
    assert counts(database_url) == (0, 0, 0)


def test_missing_schema_says_what_to_run(empty_database_url: str) -> None:
    r = screening(
        "block", "add", "+15551234567", env={"SCREENING_DATABASE_URL": empty_database_url}
    )
    assert r.code == 1
    assert r.err.strip() == (
        "screening: error: the database has no screening tables yet; "
        "run `screening db upgrade` first"
    )


def test_unreachable_database_is_a_runtime_error() -> None:
    r = screening(
        "block",
        "add",
        "+15551234567",
        env={"SCREENING_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
    )
    assert r.code == 1
    assert r.err.startswith("screening: error: cannot use the database:")
    assert "Traceback" not in r.err


def test_help_is_there_for_every_command() -> None:
    for args in (
        ["--help"],
        ["block", "add", "--help"],
        ["dnd", "add", "--help"],
        ["serve", "--help"],
        ["agi", "--help"],
    ):
        r = screening(*args)
        assert r.code == 0 and "Usage: screening" in r.out
    help_text = screening("block", "add", "--help").out
    assert "Reject calls from NUMBER" in help_text and "spam (RFC 8197)" in help_text


def test_agi_refuses_a_bad_listen_address_before_opening_anything(tmp_path: Path) -> None:
    env = {"SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    r = screening("agi", "--listen", "localhost", env=env)
    assert r.code == 2
    assert r.err.strip() == (
        "screening: error: --listen: expected HOST:PORT like 127.0.0.1:4573, got 'localhost'"
    )
    r = screening("agi", env={**env, "SCREENING_AGI_LISTEN": "4573x"})
    assert r.code == 2 and "SCREENING_AGI_LISTEN: expected HOST:PORT" in r.err
    assert not (tmp_path / "none.db").exists()


def test_agi_on_a_taken_port_exits_1_with_one_line(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = screening(
            "agi", "--listen", f"127.0.0.1:{port}", env={"SCREENING_DATABASE_URL": database_url}
        )
    assert r.code == 1
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"screening: error: FastAGI cannot listen on 127.0.0.1:{port}:")
    assert "Traceback" not in r.err
