"""The early-media challenge: what the caller is asked, and what their answer means.

Pure: the screener chooses the digit (with its own randomness) and passes what the
dialplan's Read() reported; these functions only judge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CHALLENGE_SOURCE = "challenge"  # source of the allow entries a passed challenge leaves
DIGITS = "0123456789"


class Outcome(StrEnum):
    PASSED = "passed"  # the named digit: the call rings
    WRONG_DIGIT = "wrong-digit"  # refused
    TIMED_OUT = "timed-out"  # no digit (or silence) within the time-out: refused
    ABANDONED = "abandoned"  # the caller hung up during the challenge
    FAILED = "failed"  # the challenge could not be run or read: the call rings (fail open)

    @property
    def refused(self) -> bool:
        return self in (Outcome.WRONG_DIGIT, Outcome.TIMED_OUT)


@dataclass(frozen=True)
class Settings:
    timeout_s: int = 8  # after the prompt, for the digit
    sip_code: int = 608  # for refused callers: an automated verdict (RFC 8688)
    remember_days: int = 30  # a passed caller's allow entry for the extension; 0 = none
    prompt: str = "to-call-this-number&vm-press"  # sound files, then digits/N


@dataclass(frozen=True)
class Answer:
    """What the dialplan reports after Read(): the digit pressed ("" for none) and
    READSTATUS (OK, TIMEOUT, HANGUP, ERROR). Which digit was asked for is not in it: only
    the app that asked knows, so a forged report cannot name the digit it presses."""

    pressed: str
    status: str


def judge(answer: Answer, asked: str) -> Outcome:
    """The outcome of one challenge in which the app asked for `asked`. A digit the app did
    not choose, or a Read() that failed, is the system's fault, not the caller's: FAILED,
    and the call rings."""
    if len(asked) != 1 or asked not in DIGITS:
        return Outcome.FAILED
    status = answer.status.strip().upper()
    if status == "HANGUP":
        return Outcome.ABANDONED
    if status == "TIMEOUT" or (status == "OK" and not answer.pressed):
        return Outcome.TIMED_OUT
    if status != "OK":
        return Outcome.FAILED
    return Outcome.PASSED if answer.pressed == asked else Outcome.WRONG_DIGIT


def describe(outcome: Outcome, answer: Answer | None, asked: str = "") -> str:
    """For the log line and the call log's reason."""
    if outcome is Outcome.PASSED:
        return f"challenge passed (pressed {answer.pressed})" if answer else "challenge passed"
    if outcome is Outcome.WRONG_DIGIT and answer is not None:
        return f"challenge refused: pressed {answer.pressed[:1]!r}, asked for {asked}"
    if outcome is Outcome.TIMED_OUT:
        return "challenge refused: no digit before the time-out"
    if outcome is Outcome.ABANDONED:
        return "challenge abandoned: the caller hung up"
    status = f" (Read status {answer.status[:16]!r})" if answer else ""
    return f"challenge failed{status}; continued unscreened"
