"""Names shared with asterisk-conf/extensions.conf, in one place for both doors."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from screening.core.challenge import Answer, Settings
from screening.core.decision import Decision
from screening.core.wire import Settings as WireSettings
from screening.core.wire import wire

log = logging.getLogger(__name__)

#: Where rejected calls go: the extension is the verdict's code (607 or 608), as in every
#: dialplan screening has shipped, so an older one still rejects when the app asks more.
REJECT_CONTEXT = "screening-reject"
#: Set before a rejection that says more (core.wire), base64-encoded so that it travels as
#: plain text; [screening-reject] decodes it for the module: the redress jCard's Call-Info,
#: or 603+'s Reason (then the call gets 603 Network Blocked instead of its code).
REDRESS_VARIABLE = "SCREENING_REDRESS"
BLOCKED_VARIABLE = "SCREENING_BLOCKED"
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
#: Stasis(screening,challenge,REPORT), or to `agi://.../challenge?REPORT`, where REPORT is
#: "v=2&status=READSTATUS&pressed=BASE64&end=1".
CHALLENGE_CONTEXT = "screening-challenge"
CHALLENGE_RUN_CONTEXT = "screening-challenge-run"
#: Set before a call enters the challenge: "DIGIT,TIMEOUT_S,PROMPT".
CHALLENGE_VARIABLE = "SCREENING_CHALLENGE"
#: What the FastAGI door sets RESULT_VARIABLE to, to send the call to the challenge.
CHALLENGE_RESULT = "challenge"


#: The longest value taken from the dialplan (it cuts headers to 2 KB or less itself).
MAX_HEADER = 8192
#: The longest facts string read; Asterisk's own argument buffer is 8 KB.
MAX_FACTS = 16384
_KEY = re.compile(r"[a-z]{1,16}")
_PRESENTATION = re.compile(r"[a-z_]{0,40}")


class Malformed(Exception):
    """The dialplan's facts about a call cannot be read; the message says why."""


@dataclass(frozen=True)
class CallFacts:
    """What the dialplan says about a call ([screening-call], SCREENING_CALL), decoded.
    All of it from the far end, untrusted, but none of it able to move: carrier headers
    are here only when the dialplan said, as a fact of its own, that the trunk is trusted."""

    dialled: str  # as dialled (user options included); the extension is derived from it
    caller: str = ""  # CALLERID(num)
    name: str = ""  # CALLERID(name)
    presentation: str = ""  # CALLERID(pres), e.g. allowed_not_screened, prohib
    identity: str = ""  # the raw Identity header (STIR/SHAKEN)
    date: str = ""  # the raw Date header
    carrier: tuple[str, ...] = ()  # P-Asserted-Identity, From, X-Twilio-VerStat: trusted only
    #: Set when these are the arguments of an older extensions.conf (or unreadable ones):
    #: what was read is used, carrier headers never. Says why, for the admin's log.
    legacy: str | None = None


def fields(text: str) -> dict[str, str]:
    """The key=value pairs of a "v=2&key=value&...&end=1" string. Raises Malformed for
    anything else: a string cut short (no end), a key twice, a key that is not a word."""
    if len(text) > MAX_FACTS:
        raise Malformed(f"longer than {MAX_FACTS} characters")
    pairs = text.split("&")
    if pairs[0] != "v=2":
        raise Malformed("it does not start with v=2")
    if len(pairs) < 2 or pairs[-1] != "end=1":
        raise Malformed("it does not end with end=1 (cut short?)")
    found: dict[str, str] = {}
    for pair in pairs[1:-1]:
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise Malformed(f"{pair[:24]!r} is not key=value")
        if key in found:
            raise Malformed(f"{key} given twice")
        found[key] = value
    return found


def decoded(value: str) -> str:
    """A value [screening-call] base64-encoded after a leading "=" (BASE64_ENCODE refuses an
    empty string); anything that is not such a value reads as empty."""
    try:
        raw = base64.b64decode(value[: MAX_HEADER * 2], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace").removeprefix("=")[:MAX_HEADER]


_ESCAPED = re.compile(r"%(25|29)")


def _unescaped(header: str) -> str:
    """Undo the dialplan's escapes of "%" and ")" in the caller ID, the name and the
    carrier's headers (see [screening-call])."""
    return _ESCAPED.sub(lambda m: "%" if m.group(1) == "25" else ")", header)


def call_facts(text: str) -> CallFacts:
    """The facts of SCREENING_CALL. Raises Malformed (the door then screens on what it can
    read itself, trusting no carrier header)."""
    f = fields(text)
    if "ext" not in f:
        raise Malformed("no ext")
    presentation = f.get("pres", "")
    carrier: tuple[str, ...] = ()
    if f.get("trusted") == "yes":
        headers = [_unescaped(decoded(f.get(k, ""))) for k in ("pai", "from")]
        headers.append(decoded(f.get("verstat", "")))
        carrier = tuple(h for h in headers if h)
    return CallFacts(
        dialled=decoded(f["ext"]),
        caller=_unescaped(decoded(f.get("cid", ""))),
        name=_unescaped(decoded(f.get("name", ""))),
        presentation=presentation if _PRESENTATION.fullmatch(presentation) else "",
        identity=decoded(f.get("identity", "")),
        date=decoded(f.get("date", "")),
        carrier=carrier,
    )


def read_call(text: str | None, args: Sequence[str], dialled: str) -> CallFacts:
    """A call's facts: from SCREENING_CALL (`text`) when the dialplan passed one; else from
    an older dialplan's arguments `args`. `dialled` is the extension the channel is at, as
    the door read it from Asterisk itself."""
    if text is not None:
        try:
            return call_facts(text)
        except Malformed as e:
            return CallFacts(dialled=dialled, legacy=f"SCREENING_CALL unreadable: {e}")
    return legacy_facts(args, dialled)


def legacy_facts(args: Sequence[str], dialled: str) -> CallFacts:
    """The arguments of an extensions.conf older than SCREENING_CALL: the dialled number,
    CALLERID(pres), then the Identity and Date headers. Carrier headers that followed them
    are never used: their trust was only their position in the list. When the first
    argument is not the channel's own extension, a comma in it shifted them all: none is
    read."""
    shifted = not args or args[0] != dialled
    headers = ["", ""] if shifted else [decoded(a) for a in [*args[2:4], "", ""][:2]]
    presentation = "" if shifted or len(args) < 2 else args[1][:40]
    return CallFacts(
        dialled=dialled,
        presentation=presentation if _PRESENTATION.fullmatch(presentation) else "",
        identity=headers[0],
        date=headers[1],
        legacy="arguments of the old form" + (", shifted by the dialled number" if shifted else ""),
    )


class Throttled:
    """An error said at most once per `every` seconds: one per outage, not one per call."""

    def __init__(self, every: float = 600.0) -> None:
        self._every = every
        self._last = float("-inf")

    def error(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            log.error(message, *args)


#: Told when a call arrives with an older dialplan's arguments.
OLD_DIALPLAN = (
    "the dialplan passes the arguments of an older screening (%s): update "
    "asterisk-conf/extensions.conf and run `dialplan reload`; until then carrier verstat "
    "is ignored and `screening doctor` fails"
)


def challenge_value(digit: str, settings: Settings) -> str:
    """CHALLENGE_VARIABLE for one call: the digit, the time-out and the prompt."""
    return f"{digit},{settings.timeout_s},{settings.prompt}"


def challenge_answer(text: str) -> tuple[str, Answer]:
    """(dialled number, answer) from what [screening-challenge-run] reports after Read()
    (SCREENING_REPORT). A report that cannot be read is judged failed: the call rings."""
    try:
        f = fields(text)
    except Malformed:
        return "", Answer(pressed="", status="")
    answer = Answer(pressed=decoded(f.get("pressed", ""))[:1], status=f.get("status", "")[:16])
    return decoded(f.get("ext", ""))[:80], answer


def legacy_answer(args: Sequence[str]) -> tuple[str, Answer]:
    """An older dialplan's report: EXT, EXPECTED, READSTATUS, PRESSED (EXPECTED is not
    read: which digit was asked for is the app's to know)."""
    padded = [a[:80] for a in args[:4]] + [""] * (4 - len(args[:4]))
    return padded[0], Answer(pressed=padded[3][:1], status=padded[2][:16])


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


@dataclass(frozen=True)
class Rejection:
    """How a door sends a rejected call on: set the variable `more` names to its value
    first when there is one, then continue to `extension` of REJECT_CONTEXT. If the
    variable cannot be set the call is still rejected there, with its code alone."""

    extension: str
    more: tuple[str, str] | None = None  # (variable, base64 value)


def rejection(decision: Decision, settings: WireSettings) -> Rejection:
    sent = wire(decision, settings)
    code = str(decision.sip_code if decision.sip_code in (607, 608) else 608)
    if sent.code == 603:
        return Rejection(code, (BLOCKED_VARIABLE, _encoded(sent.reason)))
    if sent.call_info is not None:
        return Rejection(code, (REDRESS_VARIABLE, _encoded(sent.call_info)))
    return Rejection(code)


def _encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()
