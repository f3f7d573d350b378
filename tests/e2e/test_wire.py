"""What the caller's network hears, read off the wire: every header of the final response
to real INVITEs through the real app (both doors) and the sandbox's Asterisk with
screening's module (asterisk-module/), and without it."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from screening.core.wire import REJECTED_REASON
from tests.e2e.conftest import REPO, App, free_port, own_door
from tests.sipprobe import CallResult, load, place_call

REDRESS = {
    "SCREENING_REDRESS_NAME": "Example Telecom unblocking desk",
    "SCREENING_REDRESS_PHONE": "+15550001111",
    "SCREENING_REDRESS_EMAIL": "unblock@example.net",
    "SCREENING_REDRESS_URL": "https://example.net/unblock",
    "SCREENING_REDRESS_JCARD_URL": "https://pbx.example.net/redress/jcard",
}
CALL_INFO = "<https://pbx.example.net/redress/jcard>;purpose=jwscard"
CAUSE_21 = REJECTED_REASON  # what the app says it sends; read off the wire below
BLOCKED_603 = (
    'SIP;cause=603;text="v=analytics1;url=https://example.net/unblock;tel=+15550001111;'
    'email=unblock@example.net";location=RLN'
)
#: Every header an INVITE's final response from the sandbox carries, whatever the code.
ALWAYS = ["Via", "Call-ID", "From", "To", "CSeq", "Server", "Content-Length"]
MODULE = "res_screening.so"


def sandbox_cli(command: str) -> str:
    proc = subprocess.run(
        [str(REPO / "scripts" / "sandbox"), "cli", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout + proc.stderr


def header_names(result: CallResult) -> list[str]:
    return [line.split(":", 1)[0] for line in result.header_lines()]


def shown(label: str, result: CallResult) -> CallResult:
    """The response as received, in the test's output (pytest -s): what the network hears."""
    print(f"--- {label}\n{result.response}")
    return result


def assert_rejected(result: CallResult, status: str, reasons: list[str], **more: list[str]) -> None:
    """The status line, and exactly these Reason (and Call-Info) headers, and nothing else
    beyond what every response has."""
    assert result.status_line == status, result.response
    assert result.headers("Reason") == reasons, result.response
    assert result.headers("Call-Info") == more.get("call_info", []), result.response
    extra = ["Reason"] * len(reasons) + ["Call-Info"] * len(more.get("call_info", []))
    assert sorted(header_names(result)) == sorted(ALWAYS + extra), result.response


@pytest.fixture(params=["ari", "agi"])
def redress_door(
    request: pytest.FixtureRequest, sandbox: dict[str, str], tmp_path: Path
) -> Iterator[App]:
    with own_door(request, sandbox, tmp_path, request.param, None, **REDRESS) as door:
        yield door


def test_every_rejection_says_cause_21_and_a_608_carries_the_redress_jcard(
    redress_door: App,
) -> None:
    door = redress_door
    assert door.cli("block", "add", "+15550900001").code == 0
    assert door.cli("block", "add", "+15550900002", "--code", "608").code == 0

    first = shown(f"607, {door.door}", door.call("+15550900001", "230"))
    assert_rejected(first, "607 Unwanted", [CAUSE_21])
    second = shown(f"608 with redress, {door.door}", door.call("+15550900002", "230"))
    assert_rejected(second, "608 Rejected", [CAUSE_21], call_info=[CALL_INFO])
    assert door.call("+15550900003", "230").status_line == "200 OK"
    door.wait_log("to 230: rejected 608 with redress, block")


@pytest.fixture(params=["ari", "agi"])
def provider_door(
    request: pytest.FixtureRequest, sandbox: dict[str, str], tmp_path: Path
) -> Iterator[App]:
    settings = {**REDRESS, "SCREENING_SIP_PROVIDER_MODE": "yes"}
    with own_door(request, sandbox, tmp_path, request.param, None, **settings) as door:
        yield door


def test_provider_mode_answers_an_analytics_verdict_603_plus(provider_door: App) -> None:
    door = provider_door
    assert door.cli("policy", "set", "unverified", "--for", "231").code == 0
    assert door.cli("block", "add", "+15550900011").code == 0

    blocked = shown(f"603+, {door.door}", door.call("+15550900010", "231"))
    assert_rejected(blocked, "603 Network Blocked", [BLOCKED_603, CAUSE_21])
    # A person's own block is the callee's verdict, not analytics: it stays 607.
    assert_rejected(door.call("+15550900011", "232"), "607 Unwanted", [CAUSE_21])
    door.wait_log("to 231: rejected 603 Network Blocked (603+ for a 608 verdict), policy")


def test_without_the_module_the_code_still_goes_out_with_asterisks_own_reason(
    app: App,
) -> None:
    assert app.cli("block", "add", "+15550900020").code == 0
    assert "unloaded" in sandbox_cli(f"module unload {MODULE}").lower()
    try:
        # Asterisk alone: PJSIPHangup's 607 with the cause no Q.850 table has.
        plain = shown("607 without the module", app.call("+15550900020", "233"))
        assert_rejected(plain, "607 Unwanted", ["Q.850;cause=0"])
    finally:
        assert "loaded" in sandbox_cli(f"module load {MODULE}").lower()
    assert_rejected(app.call("+15550900020", "233"), "607 Unwanted", [CAUSE_21])
    # A 608 where no redress contact is set: the cause, no Call-Info.
    assert app.cli("block", "add", "+15550900021", "--code", "608").code == 0
    no_redress = shown("608 without redress", app.call("+15550900021", "233"))
    assert_rejected(no_redress, "608 Rejected", [CAUSE_21])


#: (variable's X- header, value): what the module must refuse, each a way to break or
#: add to the response if it were taken.
HOSTILE = [
    ("X-Reason", "Q.850;cause=21\r\nX-Injected: yes"),
    ("X-Reason", "Q.850;cause=21\nX-Injected: yes"),
    ("X-Reason", "Q.850;cause=21\x00X-Injected: yes"),
    ("X-Reason", "Q.850;cause=21;text=\x7f"),
    ("X-Reason", 'Q.850;cause=21;text="é"'),
    ("X-Reason", "X-Injected: yes"),
    ("X-Reason", 'SIP;cause=603;text="' + "a" * 10_000 + '"'),
    # A second value in one header: a comma outside quotes, an unclosed quote.
    ("X-Reason", 'SIP;cause=603;text="x", Q.850;cause=16'),
    ("X-Reason", 'SIP;cause=603;text="unterminated'),
    ("X-Call-Info", "<https://a.example/j>;purpose=jwscard, <https://evil.example/x>;purpose=icon"),
    ("X-Call-Info", '<https://a.example/j>;purpose="jwscard"'),
    ("X-Call-Info", "<https://x.example/j>;purpose=jwscard\r\nX-Injected: yes"),
    ("X-Call-Info", "<https://x.example/" + "a" * 10_000 + ">;purpose=jwscard"),
    ("X-Call-Info", "<http://x.example/j>;purpose=jwscard"),
    ("X-Phrase", "Blocked\r\nX-Injected: yes"),
    # Asterisk's own strings end at a NUL: the module sees "Blocked", a fine phrase.
    ("X-Phrase", "Blocked\x00X-Injected: yes"),
    ("X-Phrase", "a" * 10_000),
    ("X-Phrase", "Blocked;x=<y>"),
]


@pytest.mark.parametrize("code,phrase", [("607", "Unwanted"), ("608", "Rejected")])
def test_hostile_values_cannot_add_a_header_or_stop_asterisk(
    sandbox: dict[str, str], code: str, phrase: str
) -> None:
    port = int(sandbox.get("SANDBOX_SIP_PORT", "5060"))
    for header, value in HOSTILE:
        # The test trunk (127.0.0.8) URL-decodes each X- header into the module's variable.
        sent = {header: urllib.parse.quote(value, safe="")}
        result = asyncio.run(
            place_call(code, "+15550900030", port=port, source="127.0.0.8", extra_headers=sent)
        )
        shown = "Blocked" if value.startswith("Blocked\x00") else phrase
        try:
            assert_rejected(result, f"{code} {shown}", [CAUSE_21])
        except AssertionError as e:
            raise AssertionError(f"{header}: {value[:40]!r}: {e}") from None
        assert "X-Injected" not in result.response
    assert "Asterisk" in sandbox_cli("core show version")


def test_an_endpoint_that_suppresses_q850_reasons_gets_none(sandbox: dict[str, str]) -> None:
    # suppress_q850_reason_headers=yes (the sandbox's 127.0.0.9 trunk): the admin's other
    # way out of cause 0; the module's own headers still go out.
    port = int(sandbox.get("SANDBOX_SIP_PORT", "5060"))
    sent = {"X-Call-Info": urllib.parse.quote(CALL_INFO, safe="")}
    quiet = asyncio.run(
        place_call("608", "+15550900031", port=port, source="127.0.0.9", extra_headers=sent)
    )
    assert_rejected(quiet, "608 Rejected", [], call_info=[CALL_INFO])


def test_the_module_unloaded_and_loaded_again_under_50_calls_a_second_loses_no_call(
    app: App,
) -> None:
    assert app.cli("block", "add", "+15550900040").code == 0
    mix = [("+15550900040", "234"), ("+15550900041", "235")]
    expected = {"+15550900040": "607 Unwanted", "+15550900041": "200 OK"}
    stop = threading.Event()
    cycles = Counter[str]()

    def churn() -> None:
        while not stop.is_set():
            # An unload is refused while a call runs ScreeningHangup; it is tried again.
            out = sandbox_cli(f"module unload {MODULE}").lower()
            cycles["unloaded" if "unloaded" in out else "refused"] += 1
            time.sleep(0.2)
            if "loaded" in sandbox_cli(f"module load {MODULE}").lower():
                cycles["loaded"] += 1
            time.sleep(0.2)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        done = asyncio.run(load(mix, 50, 8, port=app.sip_port, final_within=8))
    finally:
        stop.set()
        churner.join(timeout=30)
        sandbox_cli(f"module load {MODULE}")
    wrong = [(c, r.status_line) for _, c, _, r in done if r.status_line != expected[c]]
    assert not wrong, f"{len(wrong)} of {len(done)} calls: {wrong[:5]}"
    reasons = Counter(r.headers("Reason")[0] for _, c, _, r in done if c == "+15550900040")
    print(f"module churn: {len(done)} calls, {dict(cycles)}, rejections' Reason: {dict(reasons)}")
    # Both sides of the churn were on the wire: with the module and without it.
    assert cycles["unloaded"] >= 3 and reasons[CAUSE_21] > 0 and reasons["Q.850;cause=0"] > 0
    assert "res_screening.so" in sandbox_cli("module show like screening")


def test_a_608s_call_info_leads_to_a_jcard_that_verifies(
    request: pytest.FixtureRequest, sandbox: dict[str, str], tmp_path: Path
) -> None:
    """The whole path a wrongly blocked caller's network takes: the Call-Info of a real 608,
    fetched over https (nginx with the admin guide's location, in front of `screening web`),
    the JWS's x5u fetched too, and the signature checked with it."""
    import json

    import httpx
    from cryptography import x509

    from tests.db.test_redress import guide_proxy, running_web
    from tests.redresskeys import verified, write_pair

    pair = write_pair(tmp_path)
    port = free_port()
    public = f"https://127.0.0.1:{port}"
    settings = {
        **REDRESS,
        "SCREENING_REDRESS_JCARD_URL": f"{public}/redress/jcard",
        "SCREENING_REDRESS_KEY_FILE": str(pair.key_file),
        "SCREENING_REDRESS_CERT_FILE": str(pair.cert_file),
    }
    with running_web(tmp_path, settings) as console, guide_proxy(tmp_path, console.port, port):
        with own_door(request, sandbox, tmp_path, "ari", None, **settings) as door:
            assert door.cli("block", "add", "+15550900050", "--code", "608").code == 0
            rejected = door.call("+15550900050", "236")
        [info] = rejected.headers("Call-Info")
        url = info.removeprefix("<").split(">;purpose=jwscard")[0]
        assert url == f"{public}/redress/jcard", info
        fetch = httpx.Client(verify=False, trust_env=False, timeout=10)
        jws = fetch.get(url).text
        head = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))
        assert head["alg"] == "ES256" and head["typ"] == "vcard+json", head
        cert = x509.load_pem_x509_certificate(fetch.get(head["x5u"]).content)
        _, payload = verified(jws, cert)
        assert abs(payload["iat"] - time.time()) < 60
        props = {p[0]: p[3] for p in payload["jcard"][1]}
        assert props["tel"] == "tel:+15550001111" and props["email"] == "unblock@example.net"
