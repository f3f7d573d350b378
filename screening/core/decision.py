"""The decision core: (call, rules, now) -> Decision. Pure: no database, clock or network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REPUTATION = "reputation"  # source of the global blocks that spam reports add


class Action(StrEnum):
    CONTINUE = "continue"
    REJECT = "reject"


@dataclass(frozen=True)
class IncomingCall:
    caller_raw: str
    caller: str | None  # normalised; None = no usable caller ID (anonymous, garbage)
    extension: str


@dataclass(frozen=True)
class Entry:
    """One block or allow list entry."""

    id: int
    kind: Literal["block", "allow"]
    value: str  # normalised number, or the start of one when is_prefix
    is_prefix: bool
    extension: str | None = None  # None = global
    sip_code: int | None = None  # blocks only: 607 or 608
    reason: str | None = None
    expires_at: datetime | None = None
    source: str | None = None  # cli, import, feature code, reputation, ...

    def matches(self, number: str) -> bool:
        return number.startswith(self.value) if self.is_prefix else number == self.value

    def live_at(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def describe(self) -> str:
        scope = f"extension {self.extension}" if self.extension else "global"
        what = f"prefix {self.value}*" if self.is_prefix else self.value
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.kind} #{self.id} {scope} {what}{why}"


@dataclass(frozen=True)
class DndWindow:
    """Do-not-disturb for one extension on some weekdays, in the schedule's own time zone.
    start > end crosses midnight (22:00-07:00); start == end is the whole day."""

    id: int
    extension: str
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: time
    end: time
    tz: str

    def active_at(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.tz))
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # Crosses midnight: the part after midnight belongs to the day it started on.
        yesterday = (local - timedelta(days=1)).weekday()
        return (day in self.days and t >= self.start) or (yesterday in self.days and t < self.end)

    def describe(self) -> str:
        days = (
            "every day" if len(self.days) == 7 else ",".join(WEEKDAYS[d] for d in sorted(self.days))
        )
        return (
            f"dnd #{self.id} extension {self.extension} {days} "
            f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz}"
        )


@dataclass(frozen=True)
class ManualDnd:
    """Do-not-disturb switched on by hand; holds until switched off or `until`."""

    id: int
    extension: str
    until: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = f" until {self.until:%Y-%m-%d %H:%M} UTC" if self.until else ""
        return f"manual dnd #{self.id} extension {self.extension}{until}"


@dataclass(frozen=True)
class Rules:
    """The rules that may apply to one call; a superset is fine, decide() filters."""

    allow: Sequence[Entry] = ()
    block: Sequence[Entry] = ()
    dnd: Sequence[DndWindow] = field(default_factory=tuple)
    manual_dnd: Sequence[ManualDnd] = ()


@dataclass(frozen=True)
class Decision:
    action: Action
    sip_code: int | None
    # allow, block, reputation, dnd, manual-dnd, error; None when no rule applied
    rule_kind: str | None
    rule_id: int | None
    reason: str

    @property
    def rejected(self) -> bool:
        return self.action is Action.REJECT


def _best(entries: Iterable[Entry], call: IncomingCall, now: datetime) -> Entry | None:
    """Extension's entries before global ones; within a scope an exact number beats a prefix,
    and the longest prefix wins."""
    assert call.caller is not None
    candidates = [
        e
        for e in entries
        if e.live_at(now)
        and (e.extension is None or e.extension == call.extension)
        and e.matches(call.caller)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda e: (e.extension is not None, not e.is_prefix, len(e.value)))


def decide(call: IncomingCall, rules: Rules, now: datetime) -> Decision:
    if call.caller is not None:
        allowed = _best(rules.allow, call, now)
        if allowed is not None:
            # Checked before DND on purpose: a VIP still gets through a meeting.
            return Decision(Action.CONTINUE, None, "allow", allowed.id, allowed.describe())
        blocked = _best(rules.block, call, now)
        if blocked is not None:
            # A block that reputation added is told apart in the log and in stats.
            kind = "reputation" if blocked.source == REPUTATION else "block"
            return Decision(
                Action.REJECT, blocked.sip_code or 607, kind, blocked.id, blocked.describe()
            )
    for manual in rules.manual_dnd:
        if manual.extension == call.extension and manual.active_at(now):
            return Decision(Action.REJECT, 608, "manual-dnd", manual.id, manual.describe())
    for window in rules.dnd:
        if window.extension == call.extension and window.active_at(now):
            # 608, not 607: the callee is busy, not calling this caller spam (RFC 8688).
            return Decision(Action.REJECT, 608, "dnd", window.id, window.describe())
    why = "no rule matched" if call.caller is not None else "no usable caller ID, no rule"
    return Decision(Action.CONTINUE, None, None, None, why)
