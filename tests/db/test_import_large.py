"""Large imports take the parallel path; they must behave exactly like small ones."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from screening.store import migrate
from screening.store.engine import make_engine
from screening.store.models import BlockEntry
from tests.cli_helpers import run

ROWS = 120_000  # above the size where import parses in worker processes


def _database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'screening.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _write(path: Path, bad_line: int | None = None) -> None:
    with path.open("w") as f:
        f.write("number,reason\n")
        for line in range(2, ROWS + 2):
            f.write("+1555not-a-number,x\n" if line == bad_line else f"+1555{line:07d},bulk\n")


def _count(url: str) -> int:
    engine = make_engine(url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(BlockEntry)) or 0
    engine.dispose()
    return n


def test_large_import_writes_every_row(tmp_path: Path) -> None:
    url, csv_path = _database(tmp_path), tmp_path / "big.csv"
    _write(csv_path)
    r = run("import", str(csv_path), env={"SCREENING_DATABASE_URL": url})
    assert r.code == 0, r.err
    assert r.out.startswith(f"imported {ROWS} block, 0 allow, 0 dnd rows")
    assert _count(url) == ROWS


def test_bad_row_late_in_a_large_import_names_its_line_and_writes_nothing(tmp_path: Path) -> None:
    url, csv_path = _database(tmp_path), tmp_path / "big.csv"
    _write(csv_path, bad_line=110_001)
    r = run("import", str(csv_path), env={"SCREENING_DATABASE_URL": url})
    assert r.code == 2
    assert r.err.startswith("screening: error: line 110001: number: expected a phone number")
    assert _count(url) == 0


def test_progress_bar_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    url, csv_path = _database(tmp_path), tmp_path / "big.csv"
    _write(csv_path)
    env = {**os.environ, "SCREENING_DATABASE_URL": url, "COLUMNS": "100"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "screening", "import", str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    terminal = seen.decode(errors="replace")
    assert "importing" in terminal and "100%" in terminal
    assert out.decode().startswith(f"imported {ROWS} block")
    # Piped (as in scripts and cron), stderr stays clean.
    piped = subprocess.run(
        [sys.executable, "-m", "screening", "import", str(csv_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0 and piped.stderr == ""
