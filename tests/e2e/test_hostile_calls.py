"""What an outside caller can put in an INVITE to move the dialplan or fool a door, sent
as real INVITEs through each door: pjsip URL-decodes the Request-URI and From users, so
"%2C", "%29", "%3A" and "%0A" arrive as a comma, a bracket, a colon and a newline.
Each failed on the dialplan and doors before SCREENING_CALL (docs/security.md), except the
very long name and the dialplan text, which say what must stay true."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, App

pytestmark = pytest.mark.e2e

SANDBOX_ROOT = Path(os.environ.get("SCREENING_SANDBOX_CACHE", "/var/cache/screening-sandbox"))
#: The sandbox's trusted trunks (scripts/sandbox-conf/pjsip.conf), one per door.
TRUSTED = {"ari": "127.0.0.6", "agi": "127.0.0.7"}


def ok(app: App, *args: str) -> None:
    r = app.cli(*args)
    assert r.code == 0, r.err


def test_a_caller_id_cannot_run_a_command_on_the_pbx(door_app: App) -> None:
    # ")" closed the dialplan's Log( inside an ExecIf and ":" opened its other branch,
    # which ran for every screened call: any caller could run a shell command.
    ok(door_app, "block", "add", "+15550880001", "--for", "251")
    name = f"screening-rce-{secrets.token_hex(4)}"
    proof = SANDBOX_ROOT / "root" / "tmp" / name
    caller = f"1%29%3ASystem%28touch%20%2Ftmp%2F{name}"
    assert door_app.call(caller, "251").status == 200  # screened like any unusable ID
    assert door_app.call("+15550880001", "251").status == 607  # and the next call too
    time.sleep(0.3)
    assert not proof.exists(), "the caller ID ran a command on the PBX"


def test_a_comma_in_the_dialled_number_cannot_forge_a_carrier_verdict(door_app: App) -> None:
    # The INVITE of the report: from an untrusted trunk, to 252 followed by four commas and
    # a base64 "verstat Passed A", under an unverified policy. The commas shifted the
    # door's arguments, the app read a trusted carrier's "Passed A" and the call rang.
    ok(door_app, "policy", "set", "unverified", "--for", "252")
    forged = base64.b64encode(b"=<sip:1;verstat=TN-Validation-Passed-A@x>").decode()
    r = door_app.call("+15550880002", f"252,,,,{forged}")
    assert r.status == 404  # no extension has a comma: refused before any routing
    assert door_app.call("+15550880002", "252").status == 608  # the policy, as it should
    log = door_app.log()
    assert "TN-Validation-Passed-A" not in log


@pytest.mark.parametrize(
    "dialled",
    ["252):0,s", "252%0A", "252%22", "252%28", "252%24%7BEPOCH%7D", "252%20x", "252%3A1"],
)
def test_a_dialled_number_no_extension_has_is_refused_with_404(door_app: App, dialled: str) -> None:
    # "201):0,lbl" even fooled a FILTER-and-LEN check: Asterisk reads "${F(x):N}" as an
    # offset once a value puts "):" into it.
    assert door_app.call("+15550880003", dialled).status == 404


def test_uri_user_options_reach_the_extension_they_follow(door_app: App) -> None:
    # Carriers append ";npdi;rn=..." (RFC 4694); the number before them is the extension.
    ok(door_app, "block", "add", "+15550880004", "--for", "253")
    assert door_app.call("+15550880004", "253;npdi;rn=+15559990000").status == 607


def test_a_caller_id_with_newlines_cannot_ring_unscreened(door_app: App) -> None:
    # FastAGI: res_agi writes the caller ID into the AGI environment as it is, so "%0A"
    # added lines; the server refused the environment and the dialplan routed the caller
    # on, unscreened, past any rule. Then a blank line and a fake response, as if from
    # Asterisk. Now the call is decided: such a caller ID is no usable number (the invalid
    # policy's case), and a name block still applies.
    ok(door_app, "block", "add", "--name", "*NEWLINE*", "--for", "254")
    ok(door_app, "policy", "set", "invalid", "--for", "258")
    for tail in ["%0Anot%20agi", "%0A%0A200%20result=1%0AHANGUP", "%0Ax" * 300]:
        r = door_app.call("+15550880005" + tail, "254", display_name="A NEWLINE caller")
        assert r.status == 607, tail[:20]
        assert door_app.call("+15550880005" + tail, "258").status == 608, tail[:20]
    assert door_app.call("+15550880099", "254").status == 200


def test_a_very_long_name_cannot_ring_unscreened(door_app: App) -> None:
    # An AGI environment line past 8 KB would end the AGI without a result (the unit tests
    # send one); Asterisk cuts a name of 9 KB before that, and the call is decided.
    ok(door_app, "block", "add", "+15550880006", "--for", "255")
    assert door_app.call("+15550880006", "255", display_name="x" * 9000).status == 607


def test_a_display_name_cannot_cut_a_trusted_carriers_verstat_off(door_app: App) -> None:
    # The carrier puts verstat beside the caller's own display name in From; "):" in the
    # name made Asterisk cut the header before it when the dialplan encoded it, a name of
    # 500 characters pushed the URI past the 512 the dialplan kept, and a ";verstat=" in
    # the name was read ahead of the carrier's.
    ok(door_app, "policy", "set", "failed-verification", "--for", "256")
    names = [
        "Honest",
        "x):y",
        "a%29:b",
        "B" * 500,
        "Bob;verstat=TN-Validation-Passed-A",
        "x <sip:1;verstat=TN-Validation-Passed-A@h> y",
    ]
    for name in names:
        r = door_app.call(
            "+15550880007",
            "256",
            source=TRUSTED[door_app.door],
            display_name=name,
            from_uri="sip:+15550880007@127.0.0.6;verstat=TN-Validation-Failed",
        )
        assert r.status == 608, name[:40]
    rows = door_app.rows(
        "SELECT verification FROM call_log WHERE extension = '256' ORDER BY id",
        at_least=len(names),
    )
    assert rows[-len(names) :] == [("verstat TN-Validation-Failed",)] * len(names)


def test_dialplan_text_in_a_caller_id_is_never_evaluated(door_app: App) -> None:
    door_app.call("%24%7BEPOCH%7D", "257")
    rows = door_app.rows(
        "SELECT caller_raw FROM call_log WHERE extension = '257'", at_least=1, within=5
    )
    assert rows[-1] == ("${EPOCH}",)


@pytest.fixture
def reception_for_invalid_numbers(sandbox: dict[str, str]) -> Iterator[None]:
    """An admin's [screening-route] with an invalid-number handler (`i`) that rings the
    reception desk, as many inbound contexts have."""
    cli = [str(REPO / "scripts" / "sandbox"), "cli"]
    step = "dialplan add extension i,1,Answer() into screening-route"
    subprocess.run([*cli, step], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*cli, "dialplan reload"], check=True, capture_output=True)


def test_dialling_t_is_not_a_way_past_screening(
    door_app: App, reception_for_invalid_numbers: None
) -> None:
    # The time-out extension T sat in the inbound contexts, where a trunk's caller could
    # dial it: it logged "did not answer" and went on to [screening-route], unscreened, so
    # a blocked caller rang the reception desk.
    ok(door_app, "block", "add", "+15550880008")
    messages = SANDBOX_ROOT / "root" / "var" / "log" / "asterisk" / "messages.log"
    seen = messages.stat().st_size
    for dialled in ["T", "t", "i", "h", "e", "a", "o"]:
        assert door_app.call("+15550880008", dialled).status == 404, dialled
    assert door_app.call("+15550880008", "259").status == 607
    with messages.open("rb") as log:
        log.seek(seen)
        assert b"+15550880008 to  not screened" not in log.read()
