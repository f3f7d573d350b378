"""The redress jCard (RFC 8688): its shape, the compact JWS that carries it (verified with the
certificate's key, as a caller's network does), its re-signing, and what problems() says
about every missing or wrong setting and file."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from screening import config
from screening.config import Config
from screening.core.errors import ConfigError
from screening.service import redress
from screening.service.redress import RESIGN_S, Redress
from tests.cli_helpers import ok, run
from tests.redresskeys import (
    Pair,
    cert_pem,
    certificate,
    key_pem,
    rsa_key,
    verified,
    write_pair,
)

JCARD_URL = "https://pbx.example.com/redress/jcard"
CONTACT = {
    "SCREENING_REDRESS_NAME": "Example PBX support",
    "SCREENING_REDRESS_ORGANISATION": "Example Telecom",
    "SCREENING_REDRESS_PHONE": "+15551230000",
    "SCREENING_REDRESS_EMAIL": "unblock@example.com",
    "SCREENING_REDRESS_URL": "https://example.com/unblock",
}


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return write_pair(tmp_path)


def settings_for(pair: Pair | None = None, **env: str) -> Config:
    """The settings as `screening` reads them from SCREENING_REDRESS_* variables."""
    files = {}
    if pair is not None:
        files = {
            "SCREENING_REDRESS_KEY_FILE": str(pair.key_file),
            "SCREENING_REDRESS_CERT_FILE": str(pair.cert_file),
        }
    return config.load({"SCREENING_REDRESS_JCARD_URL": JCARD_URL, **CONTACT, **files, **env})


def test_the_jcard_names_every_contact_that_is_set(pair: Pair) -> None:
    assert redress.jcard(settings_for(pair).wire) == [
        "vcard",
        [
            ["version", {}, "text", "4.0"],
            ["fn", {}, "text", "Example PBX support"],
            ["org", {}, "text", "Example Telecom"],
            ["tel", {"type": "work"}, "uri", "tel:+15551230000"],
            ["email", {"type": "work"}, "text", "unblock@example.com"],
            ["url", {"type": "work"}, "uri", "https://example.com/unblock"],
        ],
    ]


def test_the_jcards_name_is_the_organisation_or_a_fallback_when_none_is_set() -> None:
    only_org = config.load({"SCREENING_REDRESS_ORGANISATION": "Example Telecom"}).wire
    assert redress.jcard(only_org)[1][1] == ["fn", {}, "text", "Example Telecom"]
    only_email = config.load({"SCREENING_REDRESS_EMAIL": "a@example.com"}).wire
    assert redress.jcard(only_email) == [
        "vcard",
        [
            ["version", {}, "text", "4.0"],
            ["fn", {}, "text", "Call screening"],
            ["email", {"type": "work"}, "text", "a@example.com"],
        ],
    ]


def test_the_jws_verifies_with_the_certificates_key_and_its_header_is_exact(pair: Pair) -> None:
    cfg = settings_for(pair)
    jws = redress.signed_jcard(cfg, time.time())
    # Compact serialisation: three base64url parts, no padding, no line breaks.
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", jws)
    header, payload = verified(jws, pair.cert)
    assert header == (
        b'{"alg":"ES256","typ":"vcard+json","x5u":"https://pbx.example.com/redress/cert.pem"}'
    )
    assert set(payload) == {"iat", "jcard"}
    assert isinstance(payload["iat"], int) and abs(payload["iat"] - time.time()) <= 1
    assert payload["jcard"] == redress.jcard(cfg.wire)


def test_the_x5u_is_cert_pem_beside_the_jcard_url_unless_cert_url_is_set(pair: Pair) -> None:
    assert redress.cert_url(settings_for(pair)) == "https://pbx.example.com/redress/cert.pem"
    beside = settings_for(pair, SCREENING_REDRESS_JCARD_URL="https://x.example/a/b/card?v=2")
    assert redress.cert_url(beside) == "https://x.example/a/b/cert.pem"
    chosen = settings_for(pair, SCREENING_REDRESS_CERT_URL="https://certs.example.net/pbx.pem")
    assert redress.header(chosen)["x5u"] == "https://certs.example.net/pbx.pem"
    header, _ = verified(redress.signed_jcard(chosen, time.time()), pair.cert)
    assert json.loads(header)["x5u"] == "https://certs.example.net/pbx.pem"


def test_the_served_jws_is_signed_again_once_it_is_30_seconds_old(pair: Pair) -> None:
    start = 1_800_000_000.0
    served = Redress(settings_for(pair), now=start)
    first = served.jws(start)
    assert served.jws(start + RESIGN_S - 0.5) is first  # kept: no signature per request
    later = served.jws(start + RESIGN_S)
    assert later != first
    assert verified(later, pair.cert)[1]["iat"] == int(start + RESIGN_S)
    # A clock set back gets a new one too, rather than an iat from its future.
    assert verified(served.jws(start + 5), pair.cert)[1]["iat"] == int(start + 5)


def test_the_key_is_read_once_at_start_not_per_request(pair: Pair) -> None:
    served = Redress(settings_for(pair))
    pair.key_file.unlink()
    pair.cert_file.unlink()
    jws = served.jws(time.time() + 3 * RESIGN_S)  # re-signed without the files
    verified(jws, pair.cert)
    assert b"PRIVATE" not in served.cert_pem and served.cert_pem == cert_pem(pair.cert)


def test_the_served_certificate_file_never_carries_a_private_key(pair: Pair) -> None:
    # Some admins keep the key and the certificate in one file: only certificates go out.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    chain = cert_pem(pair.cert) + cert_pem(certificate(ca_key, cn="Example CA"))
    pair.cert_file.write_bytes(pair.key_file.read_bytes() + chain)
    assert Redress(settings_for(pair)).cert_pem == chain


def test_nothing_is_served_or_missing_when_redress_is_not_set() -> None:
    assert redress.load(Config()) is None
    assert redress.problems(Config()) == []
    assert redress.report(Config(), time.time()).usable


def test_every_setting_in_place_is_no_problem(pair: Pair) -> None:
    assert redress.problems(settings_for(pair)) == []
    found = redress.report(settings_for(pair), time.time())
    assert found.usable and found.jws and found.certificate
    assert found.call_info == f"<{JCARD_URL}>;purpose=jwscard" and found.carried_on == ["608"]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _bad_key_files(tmp: Path) -> list[tuple[str, str]]:
    """(the key file, the end of its problem) for each kind of key that cannot sign."""
    p384 = ec.generate_private_key(ec.SECP384R1())
    return [
        (str(tmp / "missing.key"), "cannot read it: No such file or directory"),
        (str(tmp), "cannot read it: Is a directory"),
        (_write(tmp / "junk.key", b"not a key\n"), "not an EC P-256 private key in PEM"),
        (_write(tmp / "rsa.key", key_pem(rsa_key())), "not an EC P-256 private key (ES256"),
        (_write(tmp / "p384.key", key_pem(p384)), "(its curve is secp384r1)"),
        (_write(tmp / "locked.key", key_pem(p384, b"secret")), "encrypted: screening needs"),
        (_write(tmp / "big.key", b"x" * 70_000), "larger than 64 KB"),
    ]


def test_each_key_that_cannot_sign_is_a_problem_naming_redress_key_file(
    pair: Pair, tmp_path: Path
) -> None:
    for key_file, why in _bad_key_files(tmp_path):
        bad = settings_for(pair, SCREENING_REDRESS_KEY_FILE=key_file)
        found = redress.problems(bad)
        assert len(found) == 1 and found[0].startswith(f"redress.key_file: {key_file}: ")
        assert why in found[0], found
        with pytest.raises(ConfigError) as refused:
            Redress(bad)
        assert refused.value.field == "redress.key_file"


def test_a_certificate_whose_key_does_not_match_is_refused_naming_the_setting(
    pair: Pair, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = write_pair(tmp_path / "other")
    bad = settings_for(pair, SCREENING_REDRESS_CERT_FILE=str(other.cert_file))
    with pytest.raises(ConfigError) as refused:
        Redress(bad)
    assert str(refused.value) == (
        f"redress.cert_file: {other.cert_file}: its public key is not that of "
        f"redress.key_file ({pair.key_file})"
    )
    assert redress.problems(bad) == [str(refused.value)]


@pytest.mark.parametrize(
    ("valid_days", "why"), [((-30, -1), "expired on "), ((1, 30), "not valid until ")]
)
def test_a_certificate_out_of_date_is_a_problem(
    tmp_path: Path, valid_days: tuple[int, int], why: str
) -> None:
    stale = write_pair(tmp_path, valid_days=valid_days)
    found = redress.problems(settings_for(stale))
    assert len(found) == 1 and found[0].startswith(f"redress.cert_file: {stale.cert_file}: {why}")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC$", found[0])
    with pytest.raises(ConfigError, match=why):
        Redress(settings_for(stale))


def test_a_certificate_file_that_is_not_pem_is_a_problem(pair: Pair) -> None:
    pair.cert_file.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n")
    assert redress.problems(settings_for(pair)) == [
        f"redress.cert_file: {pair.cert_file}: not a PEM certificate"
    ]


def test_each_missing_setting_is_a_problem_naming_it(pair: Pair) -> None:
    def first_words(cfg: Config) -> list[str]:
        return [p.split(" (")[0] for p in redress.problems(cfg)]

    no_files = config.load({"SCREENING_REDRESS_JCARD_URL": JCARD_URL, **CONTACT})
    assert first_words(no_files) == [
        "redress.key_file: not set: the jCard cannot be signed",
        "redress.cert_file: not set: there is no certificate for its x5u",
    ]
    nobody = settings_for(
        pair,
        **{k: "" for k in CONTACT if k.endswith(("PHONE", "EMAIL", "URL"))},
    )
    assert first_words(nobody) == [
        "redress.phone: none of redress.phone, redress.email or redress.url is set: the jCard "
        "must name a way to reach you"
    ]
    unused = settings_for(pair, SCREENING_REDRESS_JCARD_URL="")
    assert redress.problems(unused) == [
        "redress.jcard_url: not set: no rejection points to the jCard, so its key and "
        "certificate go unused"
    ]
    assert redress.report(unused, time.time()).usable  # asked for by nothing: nothing broken
    # config.load refuses an http cert_url; a Config made in code is checked here too.
    plain = replace(settings_for(pair), redress_cert_url="http://pbx.example.com/cert.pem")
    assert redress.problems(plain) == [
        "redress.cert_url: 'http://pbx.example.com/cert.pem': expected an https:// URL"
    ]


def test_a_report_with_problems_is_not_usable_and_signs_nothing(pair: Pair) -> None:
    pair.key_file.unlink()
    found = redress.report(settings_for(pair), time.time())
    assert not found.usable and found.jws is None and found.certificate is None
    assert found.problems == [
        f"redress.key_file: {pair.key_file}: cannot read it: No such file or directory"
    ]


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=100))
def test_any_name_the_settings_take_comes_back_from_the_signed_payload(name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        cfg = config.load({**CONTACT, "SCREENING_REDRESS_NAME": name})
    except ConfigError:
        return  # a name the settings refuse never reaches the jCard
    cfg = replace(cfg, redress_cert_url="https://pbx.example.com/cert.pem")
    _, payload = verified(redress.signed_jcard(cfg, time.time(), key), certificate(key))
    assert payload["jcard"][1][1] == ["fn", {}, "text", cfg.wire.name or "Example Telecom"]


def test_config_show_prints_the_codes_that_carry_the_jcard() -> None:
    lines = ok(run("config", "show", env={"SCREENING_REDRESS_ON": "607,608"})).splitlines()
    assert [line.split()[2] for line in lines if line.startswith("redress.on ")] == ["607,608"]
