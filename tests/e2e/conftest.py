"""End-to-end fixtures: the sandbox Asterisk, a real `screening serve`, real SIP calls.

The sandbox is started with scripts/sandbox up (needs root). If it cannot start, the tests
fail and say why. SCREENING_TEST_NO_E2E=1 leaves them out on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli_helpers import Result, screening
from tests.sipprobe import CallResult, place_call

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def sandbox() -> dict[str, str]:
    if os.environ.get("SCREENING_TEST_NO_E2E"):
        pytest.skip("SCREENING_TEST_NO_E2E is set: end-to-end tests left out on purpose")
    proc = subprocess.run(
        [str(REPO / "scripts" / "sandbox"), "up"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the sandbox Asterisk did not start (scripts/sandbox up exited {proc.returncode}): "
            f"{proc.stderr.strip()[-2000:]}",
            pytrace=False,
        )
    return _read_env_file(REPO / ".sandbox.env")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The source address that picks each door's trunk (scripts/sandbox-conf/pjsip.conf).
DOOR_SOURCE = {"ari": "127.0.0.1", "agi": "127.0.0.5"}
AGI_LISTEN = ("127.0.0.1", 4573)  # what asterisk-conf/extensions.conf dials


class App:
    """One screening door process against the sandbox (`screening serve` for ARI, `screening
    agi` for FastAGI), with its own SQLite database."""

    def __init__(
        self,
        sandbox: dict[str, str],
        workdir: Path,
        database_url: str | None = None,
        door: str = "ari",
        **settings: str,
    ) -> None:
        self.door = door
        #: The soft RLIMIT_NOFILE it starts with, when set (systemd's default: 1,024).
        self.open_files: int | None = None
        self.env = {
            **{k: v for k, v in sandbox.items() if k.startswith("SCREENING_")},
            "SCREENING_DATABASE_URL": database_url or f"sqlite:///{workdir / 'screening.db'}",
            "SCREENING_STIR_CACHE_DIR": str(workdir / "stir-cache"),
            # Several doors run at once here: each serves /metrics on a port of its own.
            "SCREENING_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            # JSON lines: a test reads a call's fields (a challenge's digit) as fields.
            "SCREENING_LOG_FORMAT": "json",
            **settings,
        }
        self.metrics_url = f"http://{self.env['SCREENING_METRICS_LISTEN']}"
        self.sip_port = int(sandbox.get("SANDBOX_SIP_PORT", "5060"))
        self.log_path = workdir / f"{door}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ari = httpx.Client(
            base_url=f"{self.env['SCREENING_ARI_URL']}/ari",
            auth=(self.env["SCREENING_ARI_USER"], self.env["SCREENING_ARI_PASSWORD"]),
            trust_env=False,
            timeout=5,
        )
        r = self.cli("db", "upgrade")
        assert r.code == 0, r.err

    def cli(self, *args: str) -> Result:
        return screening(*args, env=self.env)

    def registered(self) -> bool:
        try:
            apps = self._ari.get("/applications").json()
        except httpx.HTTPError:
            return False
        return any(a["name"] == self.env.get("SCREENING_ARI_APP", "screening") for a in apps)

    def wait_registered(self, want: bool, within: float = 15) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            if self.registered() == want:
                return time.monotonic() - t0
            if want and self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"screening serve exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        pytest.fail(
            f"the app was not {'registered' if want else 'gone'} within {within}s:\n{self.log()}"
        )

    def listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(AGI_LISTEN) == 0

    def wait_listening(self, want: bool, within: float = 15) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            if self.listening() == want and (not want or "FastAGI listening" in self.log()):
                return
            if want and self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"screening agi exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        pytest.fail(
            f"FastAGI was not {'listening' if want else 'gone'} within {within}s:\n{self.log()}"
        )

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "screening", "serve" if self.door == "ari" else "agi"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_files if self.open_files else None,
        )
        if self.door == "ari":
            # Asterisk may still list an app that went away while it watched a channel
            # (a killed app with a caller in the challenge): wait for our own connection.
            connected = self.log().count("connected to ARI")
            self.wait_registered(True)
            t0 = time.monotonic()
            while self.log().count("connected to ARI") == connected:
                if self.proc.poll() is not None or time.monotonic() - t0 > 15:
                    pytest.fail(f"screening serve did not connect to ARI:\n{self.log()}")
                time.sleep(0.05)
        else:
            self.wait_listening(True)

    def _limit_files(self) -> None:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files or 1024, hard))

    def open_fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self.proc = None
        if self.door == "ari":
            self.wait_registered(False)
        else:
            self.wait_listening(False)
        return code

    def wait_log(self, text: str, within: float = 5) -> None:
        t0 = time.monotonic()
        while text not in self.log():
            if time.monotonic() - t0 > within:
                pytest.fail(f"{text!r} not in the app's log within {within}s:\n{self.log()}")
            time.sleep(0.05)

    def rows(self, sql: str, at_least: int = 0, within: float = 5) -> list[tuple[object, ...]]:
        """Query the app's SQLite database, waiting for rows the app writes just after a call."""
        import sqlite3

        db = self.env["SCREENING_DATABASE_URL"].removeprefix("sqlite:///")
        t0 = time.monotonic()
        while True:
            with sqlite3.connect(db) as conn:
                found = conn.execute(sql).fetchall()
            if len(found) >= at_least or time.monotonic() - t0 > within:
                return found
            time.sleep(0.05)

    def raw_log(self) -> str:
        """The log as the app wrote it: one JSON object per line."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log(self) -> str:
        """The log as people read it: each line's message (and traceback)."""
        lines = []
        for line in self.raw_log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                lines.append(line)  # not the app's (a crash before logging was set up)
                continue
            lines.append(str(record.get("message", "")))
            if "traceback" in record:
                lines.append(str(record["traceback"]))
        return "".join(f"{line}\n" for line in lines)

    def call(self, caller: str, to: str = "201", **kwargs: object) -> CallResult:
        """A real INVITE through this app's door: the trunk is picked by source address."""
        kwargs.setdefault("source", DOOR_SOURCE[self.door])
        return asyncio.run(place_call(to, caller, port=self.sip_port, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app(sandbox: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    instance = App(sandbox, tmp_path_factory.mktemp("app"))
    instance.start()
    yield instance
    if instance.proc is not None:
        code = instance.stop()
        assert code == 0, f"screening serve exited {code} on SIGTERM:\n{instance.log()}"


@pytest.fixture(scope="session")
def agi_app(sandbox: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """`screening agi`, beside the ARI app: calls from 127.0.0.5 reach it."""
    instance = App(sandbox, tmp_path_factory.mktemp("agi"), door="agi")
    instance.start()
    yield instance
    if instance.proc is not None:
        code = instance.stop()
        assert code == 0, f"screening agi exited {code} on SIGTERM:\n{instance.log()}"


def set_feature_door(door: str) -> None:
    """Which door the phones' feature codes use ([screening-feature], SCREENING_DOOR)."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "sandbox"), "cli", f"dialplan set global SCREENING_DOOR {door}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"could not set SCREENING_DOOR: {proc.stderr}"


@pytest.fixture(params=["ari", "agi"])
def door_app(request: pytest.FixtureRequest) -> Iterator[App]:
    """The same test through each door: calls arrive on that door's trunk, and the phones'
    feature codes use that door."""
    door: str = request.param
    instance: App = request.getfixturevalue("app" if door == "ari" else "agi_app")
    set_feature_door(door)
    try:
        yield instance
    finally:
        set_feature_door("ari")


@pytest.fixture
def own_app(app: App, sandbox: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Stop the shared app and start one with other settings; the shared one comes back after.
    (Two apps with one ARI name would both receive every call.)"""
    started: list[App] = []
    app.stop()

    def make(database_url: str | None = None, **settings: str) -> App:
        other = App(sandbox, tmp_path, database_url, **settings)
        other.start()
        started.append(other)
        return other

    try:
        yield make
    finally:
        for other in started:
            if other.proc is not None:
                other.stop()
        app.start()


@contextlib.contextmanager
def own_door(
    request: pytest.FixtureRequest,
    sandbox: dict[str, str],
    workdir: Path,
    door: str,
    open_files: int | None = None,
    **settings: str,
) -> Iterator[App]:
    """A door of its own, in place of the shared one of that kind (two doors of one kind
    would both be asked), which a test may kill, freeze or start with fewer open files; the
    shared one comes back after."""
    shared: App = request.getfixturevalue("app" if door == "ari" else "agi_app")
    shared.stop()
    own = App(sandbox, workdir, door=door, **settings)
    own.open_files = open_files
    own.start()
    try:
        yield own
    finally:
        if own.proc is not None:
            if own.proc.poll() is None:
                own.stop()
            else:
                own.proc = None
        shared.start()
