"""Whatever an admin (or a script gone wrong) types, the CLI and the importer answer with
exit 0, or exit 2 and one line naming what was wrong; never a traceback, never a half-done
change. Property-based: hypothesis generates the input, on SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_helpers import Result, run

# Printable text, control characters, quotes, separators, SQL and CSV metacharacters.
hostile = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60
) | st.sampled_from(
    ["", " ", "'; DROP TABLE block_entries; --", "+", "*", "+1*", "0" * 300, "\x00", "-1", "1e9"]
)
# Arguments must not look like options to click, or they test click, not us.
argument = hostile.filter(lambda s: not s.startswith("-") and "\x00" not in s)

HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def db(tmp_path: Path) -> dict[str, str]:
    env = {"SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'hostile.db'}"}
    assert run("db", "upgrade", env=env).code == 0
    assert run("block", "add", "+15551230000", env=env).code == 0
    return env


def snapshot(env: dict[str, str]) -> list[tuple[object, ...]]:
    path = env["SCREENING_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [
            *conn.execute("SELECT value, is_prefix, scope, sip_code FROM block_entries"),
            *conn.execute("SELECT value, is_prefix, scope FROM allow_entries"),
            *conn.execute("SELECT extension, days, start_time, end_time FROM dnd_schedules"),
        ]


def assert_clean(r: Result) -> None:
    """Exit 0, or exit 2 with exactly one line that says what was wrong."""
    assert "Traceback" not in r.err, r.err
    assert r.code in (0, 2), (r.code, r.err)
    if r.code == 2:
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("screening: error: "), r.err


@HYPOTHESIS
@given(
    number=argument,
    ext=argument,
    code=argument,
    expires=argument,
    reason=hostile.filter(lambda s: "\x00" not in s),
)
def test_block_add_takes_valid_input_or_names_the_bad_field(
    db: dict[str, str], number: str, ext: str, code: str, expires: str, reason: str
) -> None:
    before = snapshot(db)
    args = ["block", "add", number, "--for", ext, "--code", code, "--expires", expires]
    r = run(*args, "--reason", reason, env=db)
    assert_clean(r)
    if r.code == 2:
        assert snapshot(db) == before  # nothing written
        assert any(f in r.err for f in ("number", "--for", "--code", "--expires", "--reason"))


@HYPOTHESIS
@given(ext=argument, days=argument, start=argument, end=argument, tz=argument)
def test_dnd_add_takes_valid_input_or_names_the_bad_field(
    db: dict[str, str], ext: str, days: str, start: str, end: str, tz: str
) -> None:
    before = snapshot(db)
    r = run("dnd", "add", ext, "--days", days, "--from", start, "--to", end, "--tz", tz, env=db)
    assert_clean(r)
    if r.code == 2:
        assert snapshot(db) == before


@HYPOTHESIS
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["block", "allow", "dnd", "", "BLOCK", "x"]),
            hostile,
            hostile,
            hostile,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_import_is_all_or_nothing_and_names_the_line(
    db: dict[str, str], tmp_path: Path, rows: list[tuple[str, str, str, str]]
) -> None:
    before = snapshot(db)
    csv = tmp_path / "rules.csv"
    body = "".join(
        ",".join('"' + field.replace('"', '""') + '"' for field in row) + "\n" for row in rows
    )
    csv.write_text("kind,number,extension,code\n" + body, encoding="utf-8")
    r = run("import", str(csv), env=db)
    assert_clean(r)
    if r.code == 2:
        assert snapshot(db) == before
        assert "line " in r.err
