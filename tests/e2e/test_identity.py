"""Who is really calling, end to end: real INVITEs with real STIR/SHAKEN Identity headers
(signed with the sandbox's test signing key, whose certificate the app fetches over http),
carrier verstat in P-Asserted-Identity, caller names and withheld numbers, through each
door. Calls come in on the sandbox's trusted, verifying trunk (127.0.0.6 for ARI, 127.0.0.7
for FastAGI). Each test uses its own extension: the apps' database is shared."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, App
from tests.sipprobe import CallResult, identity_headers

pytestmark = pytest.mark.e2e

#: The sandbox's trusted trunks (scripts/sandbox-conf/pjsip.conf), one per door.
STIR_SOURCE = {"ari": "127.0.0.6", "agi": "127.0.0.7"}


@pytest.fixture(scope="session")
def signer(sandbox: dict[str, str]) -> tuple[bytes, str]:
    """(signing key PEM, x5u) that scripts/sandbox up made."""
    key, x5u = sandbox.get("SANDBOX_STIR_KEY"), sandbox.get("SANDBOX_STIR_X5U")
    if not key or not x5u:
        pytest.fail(".sandbox.env has no SANDBOX_STIR_KEY/X5U: run scripts/sandbox up again")
    return Path(key).read_bytes(), x5u


def call(
    app: App,
    caller: str,
    to: str,
    *,
    signer: tuple[bytes, str] | None = None,
    attest: str = "A",
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> CallResult:
    """A call on the door's trusted trunk, signed when `signer` is given."""
    extra = dict(headers or {})
    if signer is not None:
        extra = identity_headers(signer[0], signer[1], caller, to, attest) | extra
    kwargs.setdefault("source", STIR_SOURCE[app.door])
    return app.call(caller, to, extra_headers=extra, **kwargs)


def ok(app: App, *args: str) -> None:
    r = app.cli(*args)
    assert r.code == 0, r.err


def asterisk_running() -> bool:
    proc = subprocess.run(
        [str(REPO / "scripts" / "sandbox"), "cli", "core show version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return proc.returncode == 0 and "Asterisk" in proc.stdout


def test_only_attestation_a_rings_under_an_a_only_policy(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    ok(door_app, "policy", "set", "attestation-below-A", "--for", "230")
    assert call(door_app, "+15550770001", "230", signer=signer, attest="A").status == 200
    assert call(door_app, "+15550770001", "230", signer=signer, attest="B").status == 608
    assert call(door_app, "+15550770001", "230", signer=signer, attest="C").status == 608
    # The policy is 230's only.
    assert call(door_app, "+15550770001", "240", signer=signer, attest="C").status == 200
    rows = door_app.rows(
        "SELECT verification, attestation, policy, sip_code FROM call_log "
        "WHERE extension = '230' ORDER BY id",
        at_least=3,
    )
    assert rows[-3:] == [
        ("success", "A", None, None),
        ("success", "B", "attestation-below-A", 608),
        ("success", "C", "attestation-below-A", 608),
    ]
    door_app.wait_log("identity success C")  # written just after the call


def test_a_bad_signature_fails_verification_and_gets_608(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    ok(door_app, "policy", "set", "failed-verification", "--for", "231")
    good = identity_headers(signer[0], signer[1], "+15550770002", "231")
    token, _, params = good["Identity"].partition(";")
    head, payload, signature = token.split(".")
    flipped = ("B" if signature[5] != "B" else "C").join((signature[:5], signature[6:]))
    forged = {**good, "Identity": f"{head}.{payload}.{flipped};{params}"}
    assert call(door_app, "+15550770002", "231", headers=forged).status_line == "608 Rejected"
    # The caller ID does not match the PASSporT's orig: a spoofed number.
    other = identity_headers(signer[0], signer[1], "+15550779999", "231")
    assert call(door_app, "+15550770002", "231", headers=other).status == 608
    assert call(door_app, "+15550770002", "231", signer=signer).status == 200
    rows = door_app.rows(
        "SELECT verification FROM call_log WHERE extension = '231' ORDER BY id", at_least=3
    )
    assert [r[0] for r in rows[-3:]] == ["signature_validation", "cid_orig_tn_mismatch", "success"]


def test_unsigned_call_gets_608_under_the_unverified_policy(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    ok(door_app, "policy", "set", "unverified", "--for", "232")
    assert call(door_app, "+15550770003", "232").status_line == "608 Rejected"
    assert call(door_app, "+15550770003", "232", signer=signer).status == 200
    # A trusted carrier's verstat vouches for an unsigned call.
    pai = {"P-Asserted-Identity": "<sip:+15550770003;verstat=TN-Validation-Passed@127.0.0.1>"}
    assert call(door_app, "+15550770003", "232", headers=pai).status == 200


def test_withheld_caller_gets_608_under_the_anonymous_policy_and_200_without(
    door_app: App,
) -> None:
    ok(door_app, "policy", "set", "anonymous", "--for", "233")
    assert call(door_app, "anonymous", "233").status_line == "608 Rejected"
    assert call(door_app, "", "233").status == 608
    assert call(door_app, "anonymous", "234").status == 200
    # A number sent with privacy asked (presentation prohibited) is withheld too.
    private = {
        "P-Asserted-Identity": "<sip:+15550770004@127.0.0.1>",
        "Privacy": "id",
    }
    assert call(door_app, "+15550770004", "233", headers=private).status == 608
    assert call(door_app, "+15550770004", "233").status == 200


def test_carrier_verstat_failed_gets_608_only_from_a_trusted_trunk(door_app: App) -> None:
    ok(door_app, "policy", "set", "failed-verification", "--for", "235")
    pai = {
        "P-Asserted-Identity": (
            "<sip:+15550770005;verstat=TN-Validation-Failed@127.0.0.1;user=phone>"
        )
    }
    assert call(door_app, "+15550770005", "235", headers=pai).status_line == "608 Rejected"
    vendor = {"X-Twilio-VerStat": "TN-Validation-Failed-A"}
    assert call(door_app, "+15550770005", "235", headers=vendor).status == 608
    # The same header from a trunk not marked trusted is not believed.
    untrusted = {"ari": "127.0.0.1", "agi": "127.0.0.5"}[door_app.door]
    assert call(door_app, "+15550770005", "235", headers=pai, source=untrusted).status == 200


def test_caller_name_matching_a_block_pattern_gets_607(door_app: App) -> None:
    ok(door_app, "block", "add", "--name", "*SPAM*", "--for", "236")
    assert call(door_app, "+15550770006", "236", display_name="Likely Spam").status == 607
    assert call(door_app, "+15550770006", "236", display_name="Alice").status == 200
    rows = door_app.rows(
        "SELECT caller_name, rule_kind FROM call_log WHERE extension = '236' ORDER BY id",
        at_least=2,
    )
    assert rows[-2:] == [("Likely Spam", "name-block"), ("Alice", None)]


def test_contacts_only_line_rings_only_for_allowed_callers(door_app: App) -> None:
    ok(door_app, "policy", "set", "contacts-only", "--for", "237")
    ok(door_app, "allow", "add", "+15550770007", "--for", "237")
    assert call(door_app, "+15550770008", "237").status_line == "608 Rejected"
    assert call(door_app, "+15550770007", "237").status == 200


def test_an_allowed_number_whose_verification_failed_is_rejected(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    # Documented: a failed verification never rides on an allow entry (a spoofer can
    # borrow an allowed number); with the failed-verification policy it gets 608.
    ok(door_app, "policy", "set", "failed-verification", "--for", "238")
    ok(door_app, "allow", "add", "+15550770009", "--for", "238")
    spoofed = identity_headers(signer[0], signer[1], "+15550778888", "238")
    assert call(door_app, "+15550770009", "238", headers=spoofed).status == 608
    assert call(door_app, "+15550770009", "238", signer=signer).status == 200
    assert call(door_app, "+15550770009", "238").status == 200  # unsigned: the allow counts
    door_app.wait_log("ignored: verification failed")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


GARBAGE_IDENTITY = [
    "notjwt",
    "a.b.c;info=<notaurl>",
    "..;;;",
    # Well-formed, every field right, but an x5u that is not a URL: the INVITE that stops
    # Asterisk 22.10.1 when a dialplan reads STIR_SHAKEN(0,verify_result).
    "PLACEHOLDER",
    'e30.e30.e30;info="<,,,>";alg=ES256,ppt=shaken',
]


def _notaurl(caller: str, to: str, key: bytes) -> dict[str, str]:
    return identity_headers(key, "notaurl", caller, to)


def test_garbage_in_every_new_input_gets_a_normal_decision(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    ok(door_app, "policy", "set", "failed-verification", "--for", "239")
    results: list[int] = []
    for identity in GARBAGE_IDENTITY:
        headers = (
            _notaurl("+15550770010", "239", signer[0])
            if identity == "PLACEHOLDER"
            else {"Identity": identity, "Date": "not a date, at all"}
        )
        results.append(call(door_app, "+15550770010", "239", headers=headers).status)
    # Broken proofs are failed verifications: 608 under this policy, never a crash or a hang.
    assert results == [608] * len(GARBAGE_IDENTITY)
    # Longer than Asterisk's 4 KB header buffer: Asterisk logs an error and passes nothing,
    # so the call is unverified, not failed.
    huge = {"Identity": "x" * 5000, "Date": "Mon, 30 Nov 2026 08:00:00 GMT"}
    assert call(door_app, "+15550770010", "239", headers=huge).status == 200
    odd_verstat = [
        "<sip:+15550770010;verstat=@127.0.0.1>",
        "<sip:+15550770010;verstat=TN-Validation-Passed-Z@127.0.0.1>",
        "<sip:+15550770010;verstat=" + "A" * 3000 + "@127.0.0.1>",
        "garbage,,,\"'",
    ]
    for value in odd_verstat:
        r = call(door_app, "+15550770010", "241", headers={"P-Asserted-Identity": value})
        assert r.status == 200, value
    for name in (
        "x" * 4096,
        "Robert'); DROP TABLE call_log;--",
        "\u260e \u00dcn\u00efcode, with ,,; <>",
    ):
        assert call(door_app, "+15550770010", "241", display_name=name).status == 200
    assert door_app.proc is not None and door_app.proc.poll() is None
    assert asterisk_running()
    assert call(door_app, "+15550770011", "241", signer=signer).status == 200


def test_first_certificate_fetch_is_cached(door_app: App, signer: tuple[bytes, str]) -> None:
    t0 = time.perf_counter()
    for _ in range(5):
        assert call(door_app, "+15550770012", "242", signer=signer).status == 200
    elapsed = time.perf_counter() - t0
    assert elapsed < 30
    rows = door_app.rows(
        "SELECT verification FROM call_log WHERE extension = '242' ORDER BY id", at_least=5
    )
    assert {r[0] for r in rows} == {"success"}


def test_a_passport_is_accepted_once(door_app: App, signer: tuple[bytes, str]) -> None:
    # A signed INVITE captured (or resent) within its freshness window used to verify as
    # often as it was sent. Now the second use is unverified (passport_replayed).
    ok(door_app, "policy", "set", "unverified", "--for", "259")
    caller = "+15550770020" if door_app.door == "ari" else "+15550770021"
    headers = identity_headers(signer[0], signer[1], caller, "259")
    assert call(door_app, caller, "259", headers=headers).status == 200
    assert call(door_app, caller, "259", headers=headers).status == 608
    assert call(door_app, caller, "259", signer=signer).status == 200  # a new one, a new call
    rows = door_app.rows(
        f"SELECT verification FROM call_log WHERE caller = '{caller}' ORDER BY id", at_least=3
    )
    assert [r[0] for r in rows[-3:]] == ["success", "passport_replayed", "success"]


def test_a_passport_signed_for_another_number_proves_nothing(
    door_app: App, signer: tuple[bytes, str]
) -> None:
    # The trunk delivers the DID the caller dialled; a PASSporT whose dest names another
    # number was made for another call (RFC 8225 s.10.1): unverified, not a pass.
    did = "+15551230261"
    ok(door_app, "policy", "set", "unverified", "--for", did)
    caller = "+15550770022" if door_app.door == "ari" else "+15550770023"
    other = identity_headers(signer[0], signer[1], caller, "+15559990000")
    assert call(door_app, caller, did, headers=other).status == 608
    ours = identity_headers(signer[0], signer[1], caller, "15551230261")
    call(door_app, caller, did, headers=ours)  # verified; it then finds no route here
    rows = door_app.rows(
        f"SELECT verification, sip_code FROM call_log WHERE caller = '{caller}' ORDER BY id",
        at_least=2,
    )
    assert rows[-2:] == [("dest_tn_mismatch", 608), ("success", None)]


def test_a_trunk_that_delivers_extensions_checks_against_the_pbxs_numbers(
    own_app: Callable[..., App], signer: tuple[bytes, str]
) -> None:
    app = own_app(SCREENING_STIR_NUMBERS="+15551230000,+15551230001")
    ok(app, "policy", "set", "unverified", "--for", "262")
    caller = "+15550770024"
    for dest, status in [("15551230001", 200), ("15559990000", 608), ("262", 200)]:
        headers = identity_headers(signer[0], signer[1], caller, dest)
        assert call(app, caller, "262", headers=headers).status == status, dest
