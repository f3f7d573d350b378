"""The decision core: (call, rules, now) -> Decision. Pure: no database, clock or network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Literal
from zoneinfo import ZoneInfo

from screening.core.challenge import CHALLENGE_SOURCE
from screening.core.identity import UNVERIFIED, Status, Verification

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REPUTATION = "reputation"  # source of the global blocks that spam reports add


class Action(StrEnum):
    CONTINUE = "continue"
    REJECT = "reject"
    CHALLENGE = "challenge"  # policies only: ask for a digit in early media (core.challenge)


@dataclass(frozen=True)
class IncomingCall:
    caller_raw: str
    caller: str | None  # normalised; None = no usable caller ID (anonymous, garbage)
    extension: str
    name: str = ""  # the caller name as shown (identity.caller_name)
    withheld: bool = False  # no number given, or presentation prohibited (identity.withheld)
    possible: bool = True  # a possible number for its region (numbers.possible)
    verification: Verification = UNVERIFIED


class PolicyKind(StrEnum):
    """What a policy looks at. Policies are checked in this order."""

    ANONYMOUS = "anonymous"  # withheld or unusable caller ID
    INVALID = "invalid"  # a number that cannot exist
    FAILED = "failed-verification"  # STIR/SHAKEN or the carrier says the number is false
    UNVERIFIED = "unverified"  # nobody vouches for the number
    BELOW_A = "attestation-below-A"  # verified, but the carrier attested only B or C
    BELOW_B = "attestation-below-B"  # verified with C only
    CONTACTS_ONLY = "contacts-only"  # only callers with an allow entry ring


@dataclass(frozen=True)
class Policy:
    """A policy of one kind, global or for one extension: the extension's beats the global
    one, so an extension can also switch a global policy off (action continue)."""

    id: int
    kind: PolicyKind
    action: Action
    sip_code: int | None  # reject only: 607 or 608
    extension: str | None = None  # None = global

    def describe(self) -> str:
        scope = f"extension {self.extension}" if self.extension else "global"
        return f"policy #{self.id} {self.kind} ({scope})"


@dataclass(frozen=True)
class NameEntry:
    """Block or allow callers whose name matches a case-insensitive glob (`*SPAM*`)."""

    id: int
    kind: Literal["block", "allow"]
    pattern: str  # lower case
    extension: str | None = None
    sip_code: int | None = None  # blocks only
    reason: str | None = None

    def matches(self, name: str) -> bool:
        return bool(name) and fnmatchcase(name.lower(), self.pattern)

    def describe(self) -> str:
        scope = f"extension {self.extension}" if self.extension else "global"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.kind} #{self.id} {scope} name {self.pattern!r}{why}"


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
class FeedHit:
    """The caller's number as one subscribed spam feed reported it (service.feeds)."""

    feed_id: int
    feed: str  # the feed's name
    reports: int
    first_seen: datetime
    last_seen: datetime
    min_reports: int
    keep: timedelta  # unseen this long, the number no longer counts
    sip_code: int
    action: Action  # reject or challenge
    extension: str | None = None  # None: every extension

    def in_force(self, call: IncomingCall, now: datetime) -> bool:
        return (
            self.reports >= self.min_reports
            and self.last_seen + self.keep > now
            and (self.extension is None or self.extension == call.extension)
        )

    def describe(self) -> str:
        reports = "1 report" if self.reports == 1 else f"{self.reports} reports"
        return f"feed {self.feed}: {reports} since {self.first_seen:%Y-%m-%d}"


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
    policies: Sequence[Policy] = ()
    names: Sequence[NameEntry] = ()
    feeds: Sequence[FeedHit] = ()


@dataclass(frozen=True)
class Decision:
    action: Action
    sip_code: int | None
    # allow, block, reputation, name-allow, name-block, feed, policy, dnd, manual-dnd, error;
    # None when no rule applied
    rule_kind: str | None
    rule_id: int | None
    reason: str
    policy: PolicyKind | None = None  # which policy, when rule_kind is "policy"
    digit: str | None = None  # challenge only: what the caller must press (the screener's)

    @property
    def rejected(self) -> bool:
        return self.action is Action.REJECT

    @property
    def challenged(self) -> bool:
        return self.action is Action.CHALLENGE


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


def _best_name(entries: Iterable[NameEntry], call: IncomingCall) -> NameEntry | None:
    """The extension's name entries before global ones; then the longest pattern."""
    candidates = [e for e in entries if (e.extension is None or e.extension == call.extension)]
    candidates = [e for e in candidates if e.matches(call.name)]
    if not candidates:
        return None
    return max(candidates, key=lambda e: (e.extension is not None, len(e.pattern)))


def _policies_that_apply(call: IncomingCall) -> list[PolicyKind]:
    v = call.verification
    applies = {
        PolicyKind.ANONYMOUS: call.withheld,
        PolicyKind.INVALID: not call.withheld and not call.possible,
        PolicyKind.FAILED: v.status is Status.FAILED,
        PolicyKind.UNVERIFIED: v.status is Status.NONE,
        # A verified call whose carrier did not say which level is not rejected for it.
        PolicyKind.BELOW_A: v.status is Status.PASSED and v.attestation in ("B", "C"),
        PolicyKind.BELOW_B: v.status is Status.PASSED and v.attestation == "C",
        # Reached only when no allow entry let the call through.
        PolicyKind.CONTACTS_ONLY: True,
    }
    return [kind for kind in PolicyKind if applies[kind]]


def _policy(policies: Sequence[Policy], kind: PolicyKind, extension: str) -> Policy | None:
    own = [p for p in policies if p.kind is kind and p.extension == extension]
    if own:
        return own[0]
    return next((p for p in policies if p.kind is kind and p.extension is None), None)


def _best_feed(hits: Iterable[FeedHit], call: IncomingCall, now: datetime) -> FeedHit | None:
    """The extension's feeds before global ones; then the most reports."""
    live = [h for h in hits if h.in_force(call, now)]
    if not live:
        return None
    return max(live, key=lambda h: (h.extension is not None, h.reports, -h.feed_id))


def decide(call: IncomingCall, rules: Rules, now: datetime) -> Decision:
    """In order: allow entries, block entries, subscribed feeds, policies, DND. The first
    that applies decides: an allow entry always beats a feed, and so does an admin's block
    (whose code and reason are the admin's own).

    An allow entry does not count for a call whose verification failed: a spoofer can borrow
    an allowed number, and STIR/SHAKEN (or the carrier) just said this call did. Such a call
    goes on through blocks, policies and DND like any stranger's.

    An allow entry left by a passed challenge (source "challenge") is weaker than one a
    person made: it only spares the caller the policies (so they are asked once); blocks and
    DND still apply to them."""
    failed = call.verification.status is Status.FAILED
    ignored = ""
    passed: Entry | None = None
    allowed: Entry | NameEntry | None = None
    if call.caller is not None:
        allowed = _best((e for e in rules.allow if e.source != CHALLENGE_SOURCE), call, now)
        passed = _best((e for e in rules.allow if e.source == CHALLENGE_SOURCE), call, now)
    allowed = allowed or _best_name((n for n in rules.names if n.kind == "allow"), call)
    if allowed is not None and not failed:
        # Checked before DND on purpose: a VIP still gets through a meeting.
        kind = "allow" if isinstance(allowed, Entry) else "name-allow"
        return Decision(Action.CONTINUE, None, kind, allowed.id, allowed.describe())
    if allowed is not None:
        ignored = f"; {allowed.describe()} ignored: verification failed"
    if call.caller is not None:
        blocked = _best(rules.block, call, now)
        if blocked is not None:
            # A block that reputation added is told apart in the log and in stats.
            kind = "reputation" if blocked.source == REPUTATION else "block"
            return Decision(
                Action.REJECT,
                blocked.sip_code or 607,
                kind,
                blocked.id,
                blocked.describe() + ignored,
            )
    named = _best_name((n for n in rules.names if n.kind == "block"), call)
    if named is not None:
        return Decision(
            Action.REJECT, named.sip_code or 607, "name-block", named.id, named.describe() + ignored
        )
    dnd = _dnd(call, rules, now, ignored)
    fed = _best_feed(rules.feeds, call, now) if call.caller is not None else None
    if fed is not None and fed.action is Action.REJECT:
        return Decision(Action.REJECT, fed.sip_code, "feed", fed.feed_id, fed.describe() + ignored)
    if passed is not None and not failed:
        return dnd or Decision(Action.CONTINUE, None, "allow", passed.id, passed.describe())
    if fed is not None:
        # A feed that challenges: like a policy's challenge, not to a caller in DND.
        why = fed.describe() + ignored
        return dnd or Decision(Action.CHALLENGE, None, "feed", fed.feed_id, why)
    for kind in _policies_that_apply(call):
        policy = _policy(rules.policies, kind, call.extension)
        if policy is None or policy.action is Action.CONTINUE:
            continue
        why = f"{policy.describe()}: {_policy_why(kind, call)}{ignored}"
        if policy.action is Action.CHALLENGE:
            # Asking a caller to press a digit only to refuse them for DND would be unkind.
            return dnd or Decision(Action.CHALLENGE, None, "policy", policy.id, why, kind)
        # 608 unless the admin chose 607: the verdict is the system's (RFC 8688).
        return Decision(Action.REJECT, policy.sip_code or 608, "policy", policy.id, why, kind)
    if dnd is not None:
        return dnd
    why = "no rule matched" if call.caller is not None else "no usable caller ID, no rule"
    return Decision(Action.CONTINUE, None, None, None, why + ignored)


def _dnd(call: IncomingCall, rules: Rules, now: datetime, ignored: str) -> Decision | None:
    """Manual DND, then schedules. 608, not 607: the callee is busy, not calling this caller
    spam (RFC 8688)."""
    for manual in rules.manual_dnd:
        if manual.extension == call.extension and manual.active_at(now):
            return Decision(
                Action.REJECT, 608, "manual-dnd", manual.id, manual.describe() + ignored
            )
    for window in rules.dnd:
        if window.extension == call.extension and window.active_at(now):
            return Decision(Action.REJECT, 608, "dnd", window.id, window.describe() + ignored)
    return None


def _policy_why(kind: PolicyKind, call: IncomingCall) -> str:
    if kind is PolicyKind.ANONYMOUS:
        return "caller ID withheld"
    if kind is PolicyKind.INVALID:
        return f"{call.caller_raw[:32]!r} is not a possible number"
    if kind is PolicyKind.CONTACTS_ONLY:
        return "caller is not on the allow list"
    return f"verification {call.verification.describe()}"
