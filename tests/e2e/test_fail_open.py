"""When screening or Asterisk is away, calls go through unscreened; when both are back, the
app screens again by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import REPO, App, own_door

pytestmark = pytest.mark.e2e

SANDBOX = str(REPO / "scripts" / "sandbox")
ROOT = Path(os.environ.get("SCREENING_SANDBOX_CACHE", "/var/cache/screening-sandbox")) / "root"


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


LISTEN, ESTABLISHED = "0A", "01"  # socket states in the kernel's tables


def _tcp_sockets(state: str) -> list[tuple[str, int, int]]:
    """(local address in hex, local port, remote port) of every TCP socket in `state`, from
    the kernel's tables (/proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state:
                address, local = fields[1].rsplit(":", 1)
                found.append((address, int(local, 16), int(fields[2].rsplit(":", 1)[1], 16)))
    return found


def _asterisk_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ours = os.readlink(proc / "root") == str(ROOT)
                if ours and (proc / "comm").read_text().strip() == "asterisk":
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _sandbox_mounts() -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(ROOT) in line]


def _sandbox(command: str) -> None:
    proc = subprocess.run([SANDBOX, command], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"sandbox {command}: exit {proc.returncode}: {proc.stderr.strip()}"


def test_sandbox_down_leaves_nothing_and_up_is_idempotent_and_the_app_reconnects(
    app: App,
) -> None:
    assert app.cli("block", "add", "+15550200003").code == 0
    reconnects = _metric(app, "screening_asterisk_reconnects_total")
    _sandbox("down")
    assert _asterisk_pids() == [] and _sandbox_mounts() == []
    app.wait_log("lost ARI")
    assert _metric(app, "screening_asterisk_connected") == 0.0
    _sandbox("up")
    pids = _asterisk_pids()
    _sandbox("up")
    assert _asterisk_pids() == pids and len(pids) == 1  # the second `up` reused the first
    assert len(_sandbox_mounts()) == 2  # /dev and /proc, once each
    waited = app.wait_registered(True, within=10)
    assert waited < 2, f"the app took {waited:.1f}s to re-register after Asterisk came back"
    assert app.call("+15550200003", "201").status_line == "607 Unwanted"
    app.wait_log("reconnected to ARI")
    assert _metric(app, "screening_asterisk_connected") == 1.0
    assert _metric(app, "screening_asterisk_reconnects_total") == reconnects + 1


def _metric(app: App, name: str) -> float:
    """An unlabelled metric from the app's /metrics."""
    text = httpx.get(f"{app.metrics_url}/metrics", timeout=5, trust_env=False).text
    [value] = [line.split()[1] for line in text.splitlines() if line.split(" ")[0] == name]
    return float(value)


def test_password_never_reaches_the_log(app: App) -> None:
    assert app.env["SCREENING_ARI_PASSWORD"] not in app.log()


def test_ari_listens_on_loopback_only(app: App) -> None:
    """The sandbox runs asterisk-conf/http.conf as shipped (only the port changed): the
    kernel's table of listening sockets shows ARI bound to loopback and nowhere else."""
    port = urlsplit(app.env["SCREENING_ARI_URL"]).port
    listening = [address for address, local, _ in _tcp_sockets(LISTEN) if local == port]
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert listening, f"nothing listens on port {port}: is the sandbox up?"
    assert set(listening) <= loopback, f"ARI listens on {listening} (hex), not only loopback"


def test_wrong_ari_password_exits_with_a_clear_error(app: App) -> None:
    env = {**os.environ, **app.env, "SCREENING_ARI_PASSWORD": "not-the-password-123"}
    proc = subprocess.run(
        [sys.executable, "-m", "screening", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("screening: error: ARI at http://127.0.0.1:8088 refused user")
    assert "not-the-password-123" not in proc.stderr


def test_call_left_waiting_by_a_killed_app_is_decided_when_it_restarts(app: App) -> None:
    import asyncio
    import signal
    import threading
    import time

    from tests.sipprobe import CallResult, place_call

    assert app.cli("block", "add", "+15550200009").code == 0
    assert app.proc is not None
    app.proc.send_signal(signal.SIGSTOP)  # frozen: Asterisk still sees the app connected
    results: list[CallResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            asyncio.run(place_call("201", "+15550200009", port=app.sip_port, final_within=20))
        )
    )
    caller.start()
    try:
        time.sleep(1.0)  # the INVITE is now waiting in Stasis for an app that cannot answer
        app.proc.send_signal(signal.SIGKILL)
        app.proc.wait(timeout=10)
        app.proc = None
        app.start()
    finally:
        caller.join(timeout=30)
    [result] = results
    assert result.status_line == "607 Unwanted"
    assert result.elapsed_ms < 15_000
    app.wait_log("was waiting in the app; deciding it now")


def _asterisk_log() -> str:
    path = ROOT / "var" / "log" / "asterisk" / "messages.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_fastagi_server_stopped_calls_still_go_through(agi_app: App) -> None:
    assert agi_app.cli("block", "add", "+15550200011").code == 0
    assert agi_app.call("+15550200011", "201").status_line == "607 Unwanted"
    assert agi_app.stop() == 0  # SIGTERM: a clean exit, nothing listens any more
    seen = len(_asterisk_log())
    try:
        assert agi_app.call("+15550200011", "201").status_line == "200 OK"
    finally:
        agi_app.start()
    # The dialplan says why the call was not screened (AGISTATUS=FAILURE: refused).
    assert "screening FastAGI unavailable (AGISTATUS FAILURE)" in _asterisk_log()[seen:]
    assert agi_app.call("+15550200011", "201").status_line == "607 Unwanted"


def test_fastagi_server_killed_in_the_middle_of_a_call(agi_app: App) -> None:
    """The server has the call (Asterisk connected and sent the environment) when it is
    killed: Asterisk sees the connection close, the result is unset, and the call is routed
    normally."""
    import asyncio
    import signal
    import threading
    import time

    from tests.sipprobe import CallResult, place_call

    assert agi_app.cli("block", "add", "+15550200012").code == 0
    assert agi_app.proc is not None
    agi_app.proc.send_signal(signal.SIGSTOP)  # it still listens, but answers nothing
    seen = len(_asterisk_log())
    results: list[CallResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            asyncio.run(
                place_call(
                    "201",
                    "+15550200012",
                    port=agi_app.sip_port,
                    source="127.0.0.5",
                    final_within=20,
                )
            )
        )
    )
    caller.start()
    try:
        time.sleep(1.0)  # the call now waits on a connection the server accepted
        assert _established_to(4573), "the call's AGI connection is not open"
        killed = time.monotonic()
        agi_app.proc.send_signal(signal.SIGKILL)
        agi_app.proc.wait(timeout=10)
        agi_app.proc = None
        caller.join(timeout=30)
        answered_after = time.monotonic() - killed
    finally:
        caller.join(timeout=30)
        agi_app.start()
    [result] = results
    assert result.status_line == "200 OK"
    assert answered_after < 5, f"the call went on {answered_after:.1f}s after the kill"
    assert "screening FastAGI unavailable (AGISTATUS SUCCESS)" in _asterisk_log()[seen:]
    assert agi_app.call("+15550200012", "201").status_line == "607 Unwanted"


def _established_to(port: int) -> bool:
    return any(remote == port for _, _, remote in _tcp_sockets(ESTABLISHED))


def test_fastagi_listens_on_loopback_only(agi_app: App) -> None:
    listening = [address for address, local, _ in _tcp_sockets(LISTEN) if local == 4573]
    assert listening == ["0100007F"], f"FastAGI listens on {listening} (hex), not 127.0.0.1"


@pytest.mark.parametrize("door", ["ari", "agi"])
def test_a_frozen_door_lets_calls_ring_after_3_s(
    door: str, request: pytest.FixtureRequest, sandbox: dict[str, str], tmp_path: Path
) -> None:
    # A door that took the call and then stopped answering (SIGSTOP: a debugger, a hung
    # host) held the caller for ever: Asterisk's AGI() and Stasis() have no time-out of
    # their own. The dialplan's TIMEOUT(absolute) ends the wait after 3 s, with the call
    # intact: it rings, unscreened, and once the door thaws it screens again.
    with own_door(request, sandbox, tmp_path, door) as own:
        assert own.cli("block", "add", "+15550200010").code == 0
        assert own.call("+15550200010", "201").status_line == "607 Unwanted"
        assert own.proc is not None
        own.proc.send_signal(signal.SIGSTOP)
        try:
            frozen = own.call("+15550200010", "201", final_within=10, hold=0.2)
            other = own.call("+15550200011", "202", final_within=10, hold=0.2)
        finally:
            own.proc.send_signal(signal.SIGCONT)
        assert (frozen.status_line, other.status_line) == ("200 OK", "200 OK")
        assert 2800 < frozen.elapsed_ms < 8000, frozen.elapsed_ms  # the 3 s, not for ever
        messages = (ROOT / "var" / "log" / "asterisk" / "messages.log").read_text()
        assert "did not answer within 3 s: call from +15550200010 to 201 not screened" in messages
        time.sleep(0.5)  # the thawed door finds its old calls gone
        assert own.call("+15550200010", "201").status_line == "607 Unwanted"
        assert own.proc.poll() is None
