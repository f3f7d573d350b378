"""Names shared with asterisk-conf/extensions.conf, in one place for both doors."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from screening.core.challenge import Answer, Settings

log = logging.getLogger(__name__)

#: Where rejected calls go: the extension is the SIP code (607 or 608).
REJECT_CONTEXT = "screening-reject"
#: The only context feature requests are accepted from: the phones reach it through
#: [screening-features]; outside callers never do.
FEATURE_CONTEXT = "screening-feature"
#: Where a feature request ends: the extension is the outcome, which plays its prompt.
FEATURE_RESULT_CONTEXT = "screening-feature-result"
#: The channel variable the FastAGI door sets: "607"/"608" to reject, "continue" to go on,
#: or a feature outcome. Unset after AGI() means the server did not answer: fail open.
RESULT_VARIABLE = "SCREENING_RESULT"
#: Where a challenged call goes (the extension is the dialled one); [screening-challenge-run]
#: plays the prompt, reads the digit and reports back: to the ARI app with
#: Stasis(screening,challenge,EXT,EXPECTED,READSTATUS,PRESSED), or to `agi://.../challenge`
#: with the same arguments after "challenge".
CHALLENGE_CONTEXT = "screening-challenge"
CHALLENGE_RUN_CONTEXT = "screening-challenge-run"
#: Set before a call enters the challenge: "DIGIT,TIMEOUT_S,PROMPT".
CHALLENGE_VARIABLE = "SCREENING_CHALLENGE"
#: What the FastAGI door sets RESULT_VARIABLE to, to send the call to the challenge.
CHALLENGE_RESULT = "challenge"


#: The longest header value taken from an argument (Asterisk's own buffer is 4 KB).
MAX_HEADER = 8192


@dataclass(frozen=True)
class IdentityArgs:
    """What [screening-identity] passes after the extension: CALLERID(pres), then the
    Identity and Date headers, then (trusted trunks only) P-Asserted-Identity, From and
    X-Twilio-VerStat. Headers come base64-encoded with a leading "=" (so that BASE64_ENCODE
    never gets an empty string), so no comma or quote a caller sends can shift them."""

    presentation: str = ""
    identity: str = ""
    date: str = ""
    carrier: tuple[str, ...] = ()


def identity_args(args: Sequence[str]) -> IdentityArgs:
    """The identity arguments after the extension; missing or broken ones are empty."""
    headers = [_header(a) for a in args[1:6]]
    headers += [""] * (5 - len(headers))
    presentation = args[0][:64] if args else ""
    return IdentityArgs(presentation, headers[0], headers[1], tuple(h for h in headers[2:] if h))


def _header(arg: str) -> str:
    try:
        raw = base64.b64decode(arg[: MAX_HEADER * 2], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace").removeprefix("=")[:MAX_HEADER]


def challenge_value(digit: str, settings: Settings) -> str:
    """CHALLENGE_VARIABLE for one call: the digit, the time-out and the prompt."""
    return f"{digit},{settings.timeout_s},{settings.prompt}"


def challenge_answer(args: Sequence[str]) -> tuple[str, Answer]:
    """(extension, answer) from the report's arguments after "challenge": EXT, EXPECTED,
    READSTATUS, PRESSED. PRESSED is last because it is empty when nothing was pressed.
    Missing arguments are empty (the answer is then judged failed, and the call rings)."""
    padded = [a[:32] for a in args[:4]] + [""] * (4 - len(args[:4]))
    extension, expected, status, pressed = padded
    return extension, Answer(expected=expected, pressed=pressed, status=status)


class ChallengeDialplan:
    """Whether Asterisk's dialplan has the challenge. A door asks (DIALPLAN_EXISTS) before
    its first challenge, and after a miss before each one: a call sent to a context that is
    not there is hung up by Asterisk, and a caller must never be lost to an old
    extensions.conf. Once found, never asked again."""

    EXPRESSION = f"DIALPLAN_EXISTS({CHALLENGE_RUN_CONTEXT},s,1)"

    def __init__(self) -> None:
        self.found = False
        self._warned_at = float("-inf")

    def answer(self, value: str | None) -> bool:
        """Take the expression's value; False only when the dialplan surely lacks it (None:
        it could not be read, e.g. the caller left; the challenge is tried)."""
        if value is None or value.strip() == "1":
            self.found = value is not None
            return True
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.error(
                "the dialplan has no [%s]: challenged calls ring unscreened until "
                "asterisk-conf/extensions.conf is updated and `dialplan reload` run",
                CHALLENGE_RUN_CONTEXT,
            )
        return False
