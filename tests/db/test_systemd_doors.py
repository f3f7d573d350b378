"""The doors under systemd's notify protocol, as real processes with a real unix datagram
socket as NOTIFY_SOCKET; and the shipped unit files, checked by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli_helpers import ok, run

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    db = f"sqlite:///{tmp_path / 'screening.db'}"
    ok(run("db", "upgrade", env={"SCREENING_DATABASE_URL": db}))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "200000",
        "SCREENING_DATABASE_URL": db,
        "SCREENING_STIR_CACHE_DIR": str(tmp_path / "stir"),
    }
    yield sock, env
    sock.close()


def messages(sock: socket.socket, until: str, within: float) -> list[str]:
    """Datagrams until one contains `until` (or the time is up)."""
    got: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in got[-1]:
            break
    return got


def start(door: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "screening", *door], env=env, stdout=out, stderr=out
        )


@contextmanager
def door_until_sigterm(
    argv: list[str], env: dict[str, str], sock: socket.socket, log: Path
) -> Iterator[str]:
    """Start a door, wait for READY=1 and yield that message; on leaving, SIGTERM it and
    insist on exit 0 (the log in the failure message)."""
    proc = start(argv, env, log)
    try:
        got = messages(sock, "READY=1", 20)
        assert got and got[-1].startswith("READY=1"), (got, log.read_text())
        yield got[-1]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, log.read_text()


def test_agi_door_is_ready_once_listening_pings_and_says_stopping(
    notify: tuple[socket.socket, dict[str, str]], tmp_path: Path
) -> None:
    sock, env = notify
    port = free_port()
    agi = ["agi", "--listen", f"127.0.0.1:{port}"]
    with door_until_sigterm(agi, env, sock, tmp_path / "agi.log") as ready:
        assert ready == f"READY=1\nSTATUS=FastAGI on 127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # listening when it said so
        pings = messages(sock, "never", 1.0)
        assert pings.count("WATCHDOG=1") >= 5, pings  # every 0.1 s
    assert any(m.startswith("STOPPING=1") for m in messages(sock, "STOPPING=1", 2))


def test_ari_door_is_ready_and_keeps_pinging_while_asterisk_is_away(
    notify: tuple[socket.socket, dict[str, str]], tmp_path: Path
) -> None:
    sock, env = notify
    env = {**env, "SCREENING_ARI_URL": f"http://127.0.0.1:{free_port()}"}  # nothing there
    proc = start(["serve"], env, tmp_path / "serve.log")
    try:
        got = messages(sock, "READY=1", 20)
        assert got and got[-1].startswith("READY=1\nSTATUS=ARI app 'screening'"), got
        time.sleep(1.0)  # reconnect attempts to an Asterisk that is not there
        pings = messages(sock, "never", 1.0)
        # An Asterisk outage is no reason for systemd to restart us: the loop pings on.
        assert pings.count("WATCHDOG=1") >= 5, pings
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    "unit", ["screening-serve.service", "screening-agi.service", "screening-web.service"]
)
def test_unit_files_verify_clean_and_are_hardened(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd): cannot check units")
    text = (UNITS / unit).read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=10",
        "ProtectHome=yes",
        "Restart=always",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=screening",
        "User=screening",
    ):
        assert f"\n{line}\n" in text, line
    # verify checks that ExecStart exists: point it at this checkout's command.
    command = Path(sys.executable).parent / "screening"
    (tmp_path / unit).write_text(text.replace("/opt/screening/bin/screening", str(command)))
    proc = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def get(url: str) -> tuple[int, str]:
    import httpx

    r = httpx.get(url, timeout=5, trust_env=False)
    return r.status_code, r.text


def test_metrics_health_and_readiness_of_a_running_door(
    notify: tuple[socket.socket, dict[str, str]], tmp_path: Path
) -> None:
    sock, env = notify
    port, agi_port = free_port(), free_port()
    env = {**env, "SCREENING_METRICS_LISTEN": f"127.0.0.1:{port}"}
    proc = start(["agi", "--listen", f"127.0.0.1:{agi_port}"], env, tmp_path / "agi.log")
    try:
        assert messages(sock, "READY=1", 20)[-1].startswith("READY=1")
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (200, '{"database": true}\n')
        code, text = get(f"{base}/metrics")
        assert code == 200
        for name in (
            "screening_calls_total",
            "screening_decision_seconds_bucket",
            'le="0.00025"',
            "screening_lookup_errors_total",
            "screening_call_log_queue",
            "screening_call_log_rows_lost_total",
            "screening_fastagi_connections",
            "screening_challenges_total",
            "screening_verifications_total",
        ):
            assert name in text, name
        assert get(f"{base}/nothing")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_readyz_says_which_part_is_missing(
    notify: tuple[socket.socket, dict[str, str]], tmp_path: Path
) -> None:
    sock, env = notify
    port = free_port()
    env = {
        **env,
        "SCREENING_METRICS_LISTEN": f"127.0.0.1:{port}",
        "SCREENING_ARI_URL": f"http://127.0.0.1:{free_port()}",  # no Asterisk there
    }
    proc = start(["serve"], env, tmp_path / "serve.log")
    try:
        assert messages(sock, "READY=1", 20)[-1].startswith("READY=1")
        code, body = get(f"http://127.0.0.1:{port}/readyz")
        assert (code, body) == (503, '{"database": true, "asterisk": false}\n')
        _, text = get(f"http://127.0.0.1:{port}/metrics")
        assert "screening_asterisk_connected 0.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_web_console_is_ready_once_listening_and_pings(
    notify: tuple[socket.socket, dict[str, str]], tmp_path: Path
) -> None:
    sock, env = notify
    port = free_port()
    web = ["web", "--listen", f"127.0.0.1:{port}"]
    with door_until_sigterm(web, env, sock, tmp_path / "web.log") as ready:
        assert ready == f"READY=1\nSTATUS=web console on 127.0.0.1:{port}"
        code, body = get(f"http://127.0.0.1:{port}/login")
        assert code == 200 and "Log in" in body
        assert messages(sock, "never", 1.0).count("WATCHDOG=1") >= 5
    assert "no web.secret_key set" in (tmp_path / "web.log").read_text()
