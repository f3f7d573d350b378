"""`screening doctor` against the sandbox: healthy, and broken on purpose (a wrong password,
a missing context, the app not running, the FastAGI server not running)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.cli_helpers import Result
from tests.e2e.conftest import REPO, App

pytestmark = pytest.mark.e2e

SANDBOX_CLI = f"{REPO / 'scripts' / 'sandbox'} cli"
# The sandbox's benchmark baselines, second instance and the module's test trunks are
# meant not to be screened.
NOT_SCREENED = "bench-astdb,bench-bare,trunk-b,trunk-module,trunk-module-quiet"


def doctor(app: App, **env: str) -> Result:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "screening",
            "doctor",
            "--asterisk",
            SANDBOX_CLI,
            "--allow-unscreened",
            NOT_SCREENED,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **app.env, **env},
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def lines(result: Result, mark: str) -> list[str]:
    return [line for line in result.out.splitlines() if line.startswith(f"[{mark}]")]


def test_healthy_sandbox_passes_every_check(app: App, agi_app: App) -> None:
    r = doctor(app)
    assert r.code == 0, r.out + r.err
    assert not lines(r, "FAIL")
    names = [line.split("] ", 1)[1].split(": ", 1)[0] for line in lines(r, " ok ")]
    for expected in (
        "database schema",
        "ARI at http://127.0.0.1:8088 as 'screening'",
        "PJSIPHangup available",
        "screening's Asterisk module",
        "context screening-send loaded",
        "ARI bound to loopback",
        "trunks go through screening",
        "context screening-inbound loaded",
        "ARI app 'screening' registered",
        "context screening-inbound-agi loaded",
        "FastAGI server at 127.0.0.1:4573",
        "context screening-wait loaded",
    ):
        assert expected in names, (expected, r.out)
    assert r.out.rstrip().endswith(f"{len(names)} of {len(names)} checks passed")


def test_wrong_password_fails_with_the_fix(app: App, agi_app: App) -> None:
    r = doctor(app, SCREENING_ARI_PASSWORD="wrong")
    assert r.code == 1
    [fail] = [f for f in lines(r, "FAIL") if "ARI at" in f]
    assert "credentials are refused" in fail
    assert "fix: make ari.user / ari.password" in r.out


def test_unscreened_trunk_fails_unless_allowed(app: App, agi_app: App) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "screening", "doctor", "--asterisk", SANDBOX_CLI],
        capture_output=True,
        text=True,
        env={**os.environ, **app.env},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "not screened: bench-astdb (context bench-astdb)" in proc.stdout


@pytest.fixture(params=["screening-inbound-agi", "screening-wait"])
def context_removed(sandbox: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    cli = [str(REPO / "scripts" / "sandbox"), "cli"]
    subprocess.run([*cli, f"dialplan remove context {request.param}"], check=True)
    try:
        yield request.param
    finally:
        subprocess.run([*cli, "dialplan reload"], check=True, capture_output=True)


def test_missing_context_fails(app: App, agi_app: App, context_removed: str) -> None:
    r = doctor(app)
    assert r.code == 1
    fails = [f for f in lines(r, "FAIL") if f"context {context_removed} loaded" in f]
    assert fails and all("not in the dialplan" in f for f in fails), r.out


OLDER_DIALPLANS = {
    # The dialled number and the identity headers as positional Stasis arguments, which a
    # comma in the dialled number shifts (docs/security.md).
    "whose arguments a caller can shift": [
        ("_X.", "1", "Gosub(screening-identity,s,1)"),
        ("_X.", "2", "Stasis(screening,${EXTEN},${SCREENING_IDENTITY})"),
    ],
    # The time-out extension in the inbound context itself, where a caller can dial it.
    "where a caller who dials T is not screened": [
        ("_X.", "1", "Gosub(screening-call,s,1)"),
        ("_X.", "2", "Stasis(screening,call,${SCREENING_CALL})"),
        ("T", "1", "Goto(screening-route,${SCREENING_DIALLED},1)"),
    ],
}


@pytest.fixture(params=sorted(OLDER_DIALPLANS))
def older_dialplan(sandbox: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """[screening-inbound] as an older screening shipped it; the reason the doctor gives."""
    cli = [str(REPO / "scripts" / "sandbox"), "cli"]
    subprocess.run([*cli, "dialplan remove context screening-inbound"], check=True)
    for exten, priority, app in OLDER_DIALPLANS[request.param]:
        step = f"dialplan add extension {exten},{priority},{app} into screening-inbound"
        subprocess.run([*cli, step], check=True, capture_output=True)
    try:
        yield request.param
    finally:
        subprocess.run([*cli, "dialplan reload"], check=True, capture_output=True)


def test_an_older_screenings_dialplan_fails_with_the_fix(
    app: App, agi_app: App, older_dialplan: str
) -> None:
    r = doctor(app)
    assert r.code == 1
    [fail] = [f for f in lines(r, "FAIL") if "screening-inbound loaded" in f]
    assert f"the dialplan of an older screening, {older_dialplan}" in fail
    assert "copy asterisk-conf/extensions.conf again" in r.out


def test_app_not_running_fails(own_app: Callable[..., App], app: App, agi_app: App) -> None:
    # own_app has stopped the shared ARI app; it comes back after this test.
    agi_app.stop()
    try:
        r = doctor(agi_app)
    finally:
        agi_app.start()
    assert r.code == 1
    failed = "\n".join(lines(r, "FAIL"))
    assert "ARI app 'screening' registered: no app of that name is connected" in failed
    assert "FastAGI server at 127.0.0.1:4573: not reachable" in failed
    assert "systemctl start screening-serve" in r.out


def test_without_the_module_it_says_what_the_network_hears(app: App, agi_app: App) -> None:
    module = "res_screening.so"
    subprocess.run([*SANDBOX_CLI.split(), f"module unload {module}"], check=True, timeout=30)
    try:
        plain = doctor(app)
        provider = doctor(
            app, SCREENING_SIP_PROVIDER_MODE="yes", SCREENING_REDRESS_PHONE="+15550001111"
        )
    finally:
        subprocess.run([*SANDBOX_CLI.split(), f"module load {module}"], check=True, timeout=30)
    # Screening still works without it: a passing check that says what changes.
    ok = [line for line in lines(plain, " ok ") if "Asterisk module" in line]
    assert ok and "Reason: Q.850;cause=0" in ok[0] and "suppress_q850_reason_headers" in ok[0]
    assert plain.code == 0, plain.out
    # 603+ needs it: provider mode fails the check, with the fix.
    failed = [line for line in lines(provider, "FAIL") if "Asterisk module" in line]
    assert failed and "603+ goes out as a plain 603 Decline" in failed[0], provider.out
    assert "docs/asterisk-module.md" in provider.out and provider.code != 0
