"""Who is really calling, from what the dialplan passes about the caller: a withheld caller
ID, a carrier's verstat verdict, and the PASSporT in a STIR/SHAKEN Identity header (parsed
and checked field by field; its signature and certificate are checked at the edge, where
certificates are fetched). Pure: no I/O.

Verification results are named as Asterisk's res_stir_shaken names them, so an admin sees
the same words in both.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from screening.core.numbers import classify

#: Caller IDs that say "no number" rather than give one, compared without case.
WITHHELD = frozenset(
    {"", "anonymous", "unknown", "unavailable", "private", "restricted", "blocked"}
)
#: Longest Identity header read; a real one is under 1 KB.
MAX_IDENTITY = 8192
#: How old a PASSporT's iat and the Date header may be (Asterisk's defaults: 15 s each).
MAX_AGE = timedelta(seconds=15)
#: Longest caller name kept: matched against name patterns, logged and stored.
MAX_NAME = 128


def withheld(caller: str, presentation: str = "") -> bool:
    """The caller withheld their number, or sent none we could use: an empty or placeholder
    caller ID, or presentation prohibited (`CALLERID(pres)` starting `prohib`)."""
    return caller.strip().lower() in WITHHELD or presentation.strip().lower().startswith("prohib")


class Result(StrEnum):
    """Verification outcomes, as Asterisk's res_stir_shaken names them."""

    SUCCESS = "success"
    NO_IDENTITY = "missing_identity_hdr"
    INVALID_HEADER = "invalid_header"
    NO_DATE = "missing_date_hdr"
    DATE_PARSE = "date_hdr_parse_failure"
    DATE_RANGE = "date_hdr_range_error"
    INVALID_ALG = "invalid_or_no_alg"
    INVALID_PPT = "invalid_or_no_ppt"
    INVALID_TYP = "invalid_or_no_typ"
    INVALID_ATTEST = "invalid_or_no_attest"
    NO_IAT = "missing_iat"
    IAT_RANGE = "iat_range_error"
    NO_ORIG_TN = "missing_orig_tn"
    NO_DEST_TN = "missing_dest_tn"
    NO_ORIGID = "missing_origid"
    CID_MISMATCH = "cid_orig_tn_mismatch"
    # Not Asterisk's (it checks neither): named in its manner.
    DEST_MISMATCH = "dest_tn_mismatch"  # signed for a call to another number
    REPLAYED = "passport_replayed"  # this very PASSporT was already used
    NO_X5U = "invalid_or_no_x5u"
    CERT_RETRIEVAL = "cert_retrieval_failure"
    CERT_NOT_TRUSTED = "cert_not_trusted"
    CERT_DATE = "cert_date_failure"
    CERT_NO_TN_AUTH = "cert_no_tn_auth_ext"
    SIGNATURE = "signature_validation"


@dataclass(frozen=True)
class Passport:
    """A SHAKEN PASSporT whose fields all checked out; what remains is its signature."""

    attest: str  # A, B or C
    orig_tn: str
    dest_tn: tuple[str, ...]
    iat: int
    origid: str
    x5u: str
    signing_input: bytes  # what the signature covers: b64 header "." b64 payload
    signature: bytes  # r || s, 64 bytes for ES256


@dataclass(frozen=True)
class Destination:
    """Where a call arrived, as a PASSporT's dest.tn must name it: the dialled number's
    digits (as dialled, and in E.164 when it reads as a full number) and the PBX's own
    numbers (stir.numbers). `known` is False when neither says anything: a short extension
    dialled and no own numbers set, so the destination cannot be checked."""

    numbers: frozenset[str] = frozenset()
    known: bool = False

    def named_in(self, dest_tn: tuple[str, ...]) -> bool:
        return not self.known or any(_digits(t) in self.numbers for t in dest_tn)


def destination(dialled: str, region: str, own: frozenset[str] = frozenset()) -> Destination:
    """The Destination of a call to `dialled`; `own` are the PBX's numbers, as digits."""
    number, possible = classify(dialled, region)
    forms = {_digits(dialled)} | ({_digits(number)} if number else set())
    forms.discard("")
    known = bool(own) or (possible and number is not None and number.startswith("+"))
    return Destination(frozenset(forms | own), known)


def parse_passport(
    identity: str, caller: str, date: str, now: datetime, to: Destination | None = None
) -> Passport | Result:
    """Check an Identity header (RFC 8224, compact or full form) and its Date header against
    the caller ID `caller` and the call's destination `to` at `now`. Returns the PASSporT, or
    why it fails."""
    if not identity.strip():
        return Result.NO_IDENTITY
    if len(identity) > MAX_IDENTITY:
        return Result.INVALID_HEADER
    token, _, params = identity.strip().partition(";")
    parts = token.strip().split(".")
    if len(parts) != 3:
        return Result.INVALID_HEADER
    header, payload = _json(parts[0]), _json(parts[1])
    signature = _b64(parts[2])
    if header is None or payload is None or signature is None:
        return Result.INVALID_HEADER
    info = _param(params, "info").strip("<>")
    alg, ppt = _param(params, "alg") or "ES256", _param(params, "ppt") or "shaken"
    if header.get("alg") != "ES256" or alg != "ES256":
        return Result.INVALID_ALG
    if header.get("ppt") != "shaken" or ppt.strip('"') != "shaken":
        return Result.INVALID_PPT
    if header.get("typ") != "passport":
        return Result.INVALID_TYP
    x5u = header.get("x5u")
    if not isinstance(x5u, str) or not x5u or (info and info != x5u):
        return Result.NO_X5U
    checked = _payload(payload, caller)
    if isinstance(checked, Result):
        return checked
    attest, orig_tn, dest_tn, iat, origid = checked
    if to is not None and not to.named_in(dest_tn):
        return Result.DEST_MISMATCH
    when = _date(date)
    if isinstance(when, Result):
        return when
    if abs(now - when) > MAX_AGE:
        return Result.DATE_RANGE
    # An int past 2**53 cannot meet a float: out of range, not an OverflowError.
    if abs(iat) > 2**53 or abs(now.timestamp() - iat) > MAX_AGE.total_seconds():
        return Result.IAT_RANGE
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    return Passport(attest, orig_tn, dest_tn, iat, origid, x5u, signing_input, signature)


def _payload(
    payload: dict[str, Any], caller: str
) -> tuple[str, str, tuple[str, ...], int, str] | Result:
    attest = payload.get("attest")
    if attest not in ("A", "B", "C"):
        return Result.INVALID_ATTEST
    iat = payload.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        return Result.NO_IAT
    orig = payload.get("orig")
    orig_tn = orig.get("tn") if isinstance(orig, dict) else None
    if not isinstance(orig_tn, str) or not orig_tn:
        return Result.NO_ORIG_TN
    dest = payload.get("dest")
    dest_tn = dest.get("tn") if isinstance(dest, dict) else None
    if not isinstance(dest_tn, list) or not dest_tn or not all(isinstance(t, str) for t in dest_tn):
        return Result.NO_DEST_TN
    origid = payload.get("origid")
    if not isinstance(origid, str) or not origid:
        return Result.NO_ORIGID
    if _digits(orig_tn) != _digits(caller) or not _digits(caller):
        return Result.CID_MISMATCH
    return attest, orig_tn, tuple(dest_tn), iat, origid


def _date(raw: str) -> datetime | Result:
    if not raw.strip():
        return Result.NO_DATE
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):  # a year past C's long
        return Result.DATE_PARSE
    if when.tzinfo is None:
        return Result.DATE_PARSE
    return when


class Verstat(StrEnum):
    """A carrier's verdict on the caller's number (3GPP TS 24.229 `verstat`)."""

    PASSED = "passed"
    FAILED = "failed"
    NONE = "none"  # No-TN-Validation: the carrier did not verify


@dataclass(frozen=True)
class CarrierVerdict:
    verstat: Verstat
    attestation: str | None  # A, B or C when the carrier says which
    raw: str = field(default="", compare=False)  # as the carrier wrote it, for the log


_VERSTAT = re.compile(r"(?i)(TN-Validation-(Passed|Failed)(?:-([ABC]))?|No-TN-Validation)")


def verstat(header: str) -> CarrierVerdict | None:
    """The verstat parameter of a P-Asserted-Identity or From header, or a vendor header's
    whole value (X-Twilio-VerStat); None when there is none or it is not one we know.

    Read only from the header's URI (see _uri): a display name or a quoted header parameter
    may hold "<", ">" or ";verstat=" of the caller's own. Two verstats in the URI that
    disagree are no verdict."""
    text = header[:MAX_IDENTITY]
    uri = _uri(text)
    if uri is None:
        return None
    found = re.findall(r"(?i)[;?&]verstat=([A-Za-z-]+)", uri)
    if len({f.lower() for f in found}) > 1:
        return None
    value = found[0] if found else ("" if "<" in text else text.strip())
    v = _VERSTAT.fullmatch(value)
    if v is None:
        return None
    if v.group(2) is None:
        return CarrierVerdict(Verstat.NONE, None, value)
    passed = v.group(2).lower() == "passed"
    letter = v.group(3).upper() if v.group(3) else None
    return CarrierVerdict(Verstat.PASSED if passed else Verstat.FAILED, letter, value)


def _uri(text: str) -> str | None:
    """The URI of a name-addr, from the right: between the last ">" outside a quoted string
    and the "<" before it. From the right because the dialplan passes a long header's tail,
    which may begin inside a display name; quoted header parameters after the URI are
    skipped. An addr-spec (no "<") is its own URI; a cut or unbalanced header has none."""
    if "<" not in text and ">" not in text:
        return text
    quoted = False
    for i in range(len(text) - 1, -1, -1):
        if text[i] == '"' and _unescaped(text, i):
            quoted = not quoted
        elif text[i] == ">" and not quoted:
            start = text.rfind("<", 0, i)
            return text[start + 1 : i] if start >= 0 else None
    return None


def _unescaped(text: str, i: int) -> bool:
    """Whether text[i] is not escaped by an odd run of backslashes before it."""
    j = i
    while j > 0 and text[j - 1] == "\\":
        j -= 1
    return (i - j) % 2 == 0


def carrier_verdict(*headers: str) -> CarrierVerdict | None:
    """The first verstat found in a trusted trunk's headers, in the order given
    (P-Asserted-Identity, From, a vendor header)."""
    for header in headers:
        if header and (found := verstat(header)) is not None:
            return found
    return None


def _b64(text: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _json(text: str) -> dict[str, Any] | None:
    raw = _b64(text)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _param(params: str, name: str) -> str:
    for part in params.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


class Status(StrEnum):
    """What the verification says about the caller's number, as policies read it."""

    PASSED = "passed"
    FAILED = "failed"  # the number was shown to be false, or the proof was broken
    NONE = "none"  # nothing to check, or we could not check it


# Results that mean "we could not check", not "the caller lied": a certificate server that
# is down must not get a legitimate caller rejected as a spoofer. A PASSporT signed for
# another number, or already used, proves nothing about this call: also unverified, not
# failed, because a forwarded call legitimately arrives with another dest (RFC 8224
# s.12.1.1), and a replayer so gains nothing over sending no PASSporT at all.
_COULD_NOT_CHECK = frozenset(
    {Result.NO_IDENTITY, Result.CERT_RETRIEVAL, Result.DEST_MISMATCH, Result.REPLAYED}
)


@dataclass(frozen=True)
class Verification:
    """Who vouches for the caller's number, and how strongly."""

    status: Status
    attestation: str | None  # A, B or C when known
    result: str  # Asterisk's result name, or "verstat <value>" for a carrier's verdict
    source: str  # "identity" (we checked the PASSporT), "carrier" (verstat) or "none"

    def describe(self) -> str:
        letter = f" {self.attestation}" if self.attestation else ""
        return f"{self.source} {self.result}{letter}"


UNVERIFIED = Verification(Status.NONE, None, Result.NO_IDENTITY.value, "none")


def verdict(
    result: Result, attestation: str | None, carrier: CarrierVerdict | None
) -> Verification:
    """One verdict from our own check of the Identity header (`result`, with the PASSporT's
    attestation when it parsed) and a trusted carrier's verstat. Our own check wins when it
    reached a verdict; the carrier's fills in when we had nothing to check."""
    if result is Result.SUCCESS:
        return Verification(Status.PASSED, attestation, result.value, "identity")
    if result not in _COULD_NOT_CHECK:
        return Verification(Status.FAILED, attestation, result.value, "identity")
    if carrier is not None:
        status = {
            Verstat.PASSED: Status.PASSED,
            Verstat.FAILED: Status.FAILED,
            Verstat.NONE: Status.NONE,
        }[carrier.verstat]
        return Verification(status, carrier.attestation, f"verstat {carrier.raw}", "carrier")
    return Verification(Status.NONE, None, result.value, "none")


def caller_name(raw: str) -> str:
    """The caller name as matched and kept: printable, trimmed, at most MAX_NAME characters."""
    text = "".join(c if c.isprintable() else " " for c in raw[: MAX_NAME * 4])
    return " ".join(text.split())[:MAX_NAME]
