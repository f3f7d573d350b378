"""The strings asterisk-conf/extensions.conf builds for the doors (SCREENING_CALL and
SCREENING_REPORT), made the way the dialplan makes them, for tests without Asterisk."""

from __future__ import annotations

import base64


def b64(value: str) -> str:
    """BASE64_ENCODE(=value), as [screening-call] encodes every far-end value."""
    return base64.b64encode(f"={value}".encode("utf-8", "surrogateescape")).decode()


def escaped(value: str) -> str:
    """What STRREPLACE makes of "%" and ")" before encoding ([screening-call])."""
    return value.replace("%", "%25").replace(")", "%29")


def call_text(
    ext: str = "201",
    cid: str = "",
    name: str = "",
    pres: str = "allowed_not_screened",
    identity: str = "",
    date: str = "",
    carrier: tuple[str, str, str] | None = None,
) -> str:
    """SCREENING_CALL; `carrier` (P-Asserted-Identity, From, X-Twilio-VerStat) only as
    from a trusted trunk."""
    parts = [
        f"ext={b64(ext)}",
        f"cid={b64(escaped(cid))}",
        f"name={b64(escaped(name))}",
        f"pres={pres}",
        f"identity={b64(identity)}",
        f"date={b64(date)}",
    ]
    if carrier is not None:
        pai, from_, verstat = carrier
        parts += [
            "trusted=yes",
            f"pai={b64(escaped(pai))}",
            f"from={b64(escaped(from_))}",
            f"verstat={b64(verstat)}",
        ]
    return "v=2&" + "&".join(parts) + "&end=1"


def report_text(status: str, pressed: str, dialled: str = "201") -> str:
    """SCREENING_REPORT, as [screening-challenge-run] builds it after Read()."""
    return f"v=2&ext={b64(dialled)}&status={status}&pressed={b64(pressed)}&end=1"
