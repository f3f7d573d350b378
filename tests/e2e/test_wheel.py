"""The package as an admin installs it: a wheel built from this checkout, installed (not
editable) into a fresh virtual environment outside the repository, migrating its own
database and screening real sandbox calls."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from screening.store import migrate
from tests.e2e.conftest import REPO, App
from tests.sipprobe import place_call

pytestmark = pytest.mark.e2e


def sh(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_wheel_installs_outside_the_repository_and_screens_calls(
    own_app: Callable[..., App], app: App, tmp_path: Path
) -> None:
    # own_app has stopped the shared ARI app: the installed one takes its place.
    t0 = time.monotonic()
    dist = tmp_path / "dist"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO, cwd=tmp_path)
    [wheel] = dist.glob("screening-*.whl")
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    sh(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    installed = sh(
        venv / "bin" / "python",
        "-c",
        "import screening, pathlib; print(pathlib.Path(screening.__file__).parent)",
        cwd=tmp_path,
    ).strip()
    assert installed.startswith(str(venv)), installed  # not this checkout
    assert not (Path(installed) / "sipprobe.py").exists()  # the test phone is not shipped
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCREENING_")},
        **app.env,
        "SCREENING_DATABASE_URL": f"sqlite:///{work / 'screening.db'}",
        "PYTHONPATH": "",
    }
    screening = venv / "bin" / "screening"
    out = sh(screening, "db", "upgrade", cwd=work, env=env)
    assert f"upgraded from empty to {migrate.head()}" in out  # the migrations came with it
    sh(screening, "block", "add", "+15550100041", cwd=work, env=env)
    log = (work / "serve.log").open("wb")
    serve = subprocess.Popen([screening, "serve"], cwd=work, env=env, stdout=log, stderr=log)
    try:
        app.wait_registered(True)
        port = app.sip_port
        blocked = asyncio.run(place_call("201", "+15550100041", port=port))
        allowed = asyncio.run(place_call("201", "+15550100042", port=port))
        assert (blocked.status_line, allowed.status_line) == ("607 Unwanted", "200 OK")
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=20) == 0
        app.wait_registered(False)
    print(f"wheel build, install and calls: {time.monotonic() - t0:.1f} s")
