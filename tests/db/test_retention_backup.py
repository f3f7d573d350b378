"""Call-log retention on each backend, and online backups of SQLite."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from screening.store import calllog, migrate
from screening.store.engine import make_engine
from tests.cli_helpers import run

NOW = datetime.now(UTC)


def _log(engine: Engine, ages_days: list[float]) -> None:
    with Session(engine) as s, s.begin():
        calllog.write_call_log(
            s,
            [
                calllog.CallRecord(
                    at=NOW - timedelta(days=d),
                    channel_id=f"c{i}",
                    caller_raw="1",
                    caller="+15551234567",
                    extension="201",
                    decision="allowed",
                    sip_code=None,
                    rule_kind=None,
                    rule_id=None,
                    reason="r",
                    decision_us=1,
                )
                for i, d in enumerate(ages_days)
            ],
        )


def test_log_purge_deletes_only_older_rows(database_url: str, engine: Engine) -> None:
    _log(engine, [200, 120, 91, 89, 1, 0])
    r = run("log", "purge", "--older-than", "90d", env={"SCREENING_DATABASE_URL": database_url})
    assert r.code == 0, r.err
    assert r.out.startswith("deleted 3 call-log rows from before ")
    r = run("log", "--json", "--limit", "100", env={"SCREENING_DATABASE_URL": database_url})
    assert r.out.count('"channel_id"') == 3
    bad = run(
        "log", "purge", "--older-than", "ninety", env={"SCREENING_DATABASE_URL": database_url}
    )
    assert bad.code == 2 and bad.err.startswith("screening: error: --older-than: expected")


def test_backup_is_consistent_while_the_app_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    stop = threading.Event()

    def writer() -> None:  # the app keeps logging calls during the backup
        while not stop.is_set():
            _log(engine, [0.0] * 50)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        _log(engine, [0.0] * 1000)
        target = tmp_path / "backup.db"
        r = run("db", "backup", str(target), env={"SCREENING_DATABASE_URL": url})
    finally:
        stop.set()
        thread.join()
    assert r.code == 0, r.err
    assert r.out.startswith(f"backed up {url} to {target}")
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count = copy.execute("SELECT count(*) FROM call_log").fetchone()[0]
        assert count >= 1000 and count % 50 == 0  # whole transactions only
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (
            migrate.head(),
        )
    assert not (tmp_path / "backup.db.partial").exists()
    engine.dispose()


def test_backup_of_a_server_database_points_to_its_dump_tool(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return
    r = run("db", "backup", "/tmp/never-written.db", env={"SCREENING_DATABASE_URL": database_url})
    assert r.code == 2 and "with its own dump tool" in r.err
    assert not Path("/tmp/never-written.db").exists()


def test_a_backup_that_cannot_be_written_says_why_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'screening.db'}"
    assert run("db", "upgrade", env={"SCREENING_DATABASE_URL": url}).code == 0
    r = run(
        "db", "backup", str(tmp_path / "no" / "such" / "x.db"), env={"SCREENING_DATABASE_URL": url}
    )
    assert r.code == 2, r.err
    assert "a folder that exists" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
