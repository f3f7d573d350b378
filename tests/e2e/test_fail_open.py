"""When screening is away, calls go through unscreened; when it is back, it screens again."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import REPO, App

pytestmark = pytest.mark.e2e


def test_app_stopped_calls_still_go_through(app: App) -> None:
    assert app.cli("block", "add", "+15550200001").code == 0
    assert app.call("+15550200001", "201").status_line == "607 Unwanted"
    assert app.stop() == 0  # SIGTERM: a clean exit
    try:
        assert app.call("+15550200001", "201").status_line == "200 OK"
        assert app.call("+15550200002", "201").status_line == "200 OK"
    finally:
        app.start()
    assert app.call("+15550200001", "201").status_line == "607 Unwanted"


def test_app_reconnects_after_asterisk_restarts(app: App) -> None:
    assert app.cli("block", "add", "+15550200003").code == 0
    subprocess.run([str(REPO / "scripts" / "sandbox"), "restart"], check=True, capture_output=True)
    waited = app.wait_registered(True, within=10)
    assert waited < 5, f"the app took {waited:.1f}s to re-register after Asterisk came back"
    assert app.call("+15550200003", "201").status_line == "607 Unwanted"
    assert "lost ARI" in app.log() and "reconnected to ARI" in app.log()
