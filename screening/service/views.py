"""What a user of one extension may learn about the rules that decided their calls.

A user sees every call to their extension, its outcome and code, and the kind of rule that
decided: a block or allow entry, reputation, a caller-name entry, which policy, DND, the
challenge's outcome. Never a rule's id, the number or pattern it matches, or its reason:
an admin's notes are the admin's, a pattern tells a spammer how to get round it, and a
reputation block is made of other extensions' reports. Their own entries, reasons and all,
are on their own page. Admins see everything (docs/security.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from screening.core.decision import DndWindow, Entry, ManualDnd, NameEntry, Policy
from screening.store.calllog import LoggedCall
from screening.store.lists import ListedEntry

_KINDS = {
    "allow": "an allow entry",
    "block": "a block entry",
    "reputation": "reputation: several extensions reported this caller",
    "name-allow": "a caller-name allow entry",
    "name-block": "a caller-name block entry",
    "feed": "a spam feed the PBX subscribes to reported this caller",
    "dnd": "a do-not-disturb schedule",
    "manual-dnd": "do-not-disturb",
    "error": "screening could not decide; the call went on unscreened",
    "not-an-extension": "the dialled number is not an extension",
}


def reason_for_user(rule_kind: str | None, policy: str | None, challenge: str | None) -> str:
    """A call's explanation as its extension's user sees it."""
    if rule_kind == "policy":
        why = f"the {policy} policy" if policy else "a policy"
    else:
        why = _KINDS.get(rule_kind or "", "no rule matched")
    return f"{why}; challenge {challenge}" if challenge else why


# -- one view per record: the CLI's --json, the API and its OpenAPI document -----------------
#
# Declared once as msgspec Structs: the API encodes them, the CLI prints their builtins, and
# web.api.openapi derives every response schema from them (all fields required, no others),
# so a field dropped here is a field the API's fuzz test sees missing.


class View(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A record as every door shows it."""


#: RFC 3339 in UTC, with a Z (msgspec writes aware UTC datetimes so).
Time = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Kind = Literal["block", "allow"]
Code = Literal[607, 608]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]


def utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at else None


def iso(at: datetime | None) -> str | None:
    """UTC, RFC 3339, with a Z."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def plain(view: View | list[View]) -> Any:
    """A view as JSON's builtins (dicts, lists, strings), for the CLI's --json."""
    return msgspec.to_builtins(view)


class EntryView(View):
    id: int
    kind: Kind
    number: str  # a prefix ends in *
    extension: str | None
    code: Code | None
    reason: str | None
    source: str | None
    expires: Time | None


class ListedView(EntryView):
    entered: str  # as it was typed
    created: Time
    calls: int  # calls it decided
    last_call: Time | None


class EntryPage(View):
    entries: list[ListedView]
    next: str | None  # the cursor of the next page


def as_code(raw: int | None) -> Code | None:
    return 607 if raw == 607 else 608 if raw == 608 else None


def entry_view(e: Entry | ListedEntry) -> EntryView:
    """A block or allow entry."""
    return EntryView(
        id=e.id,
        kind=e.kind,
        number=e.value + ("*" if e.is_prefix else ""),
        extension=e.extension,
        code=as_code(e.sip_code),
        reason=e.reason,
        source=e.source,
        expires=utc(e.expires_at),
    )


def listed_view(e: ListedEntry) -> ListedView:
    """A listed entry, with how often it decided a call."""
    return ListedView(
        **msgspec.structs.asdict(entry_view(e)),
        entered=e.entered,
        created=e.created_at.astimezone(UTC),
        calls=e.hits,
        last_call=utc(e.last_hit),
    )


class NameView(View):
    id: int
    kind: Kind
    pattern: str
    extension: str | None
    code: Code | None
    reason: str | None


def name_view(n: NameEntry) -> NameView:
    return NameView(
        id=n.id,
        kind=n.kind,
        pattern=n.pattern,
        extension=n.extension,
        code=as_code(n.sip_code),
        reason=n.reason,
    )


class PolicyView(View):
    id: int
    kind: str
    extension: str | None
    action: Literal["reject", "challenge", "continue"]
    code: Code | None


def policy_view(p: Policy) -> PolicyView:
    return PolicyView(
        id=p.id,
        kind=p.kind.value,
        extension=p.extension,
        action=p.action.value,
        code=as_code(p.sip_code),
    )


class WindowView(View):
    id: int
    extension: str
    description: str
    days: list[Weekday]  # 0 is Monday
    start: str = msgspec.field(name="from")  # HH:MM, in tz
    end: str = msgspec.field(name="to")
    tz: str


def window_view(w: DndWindow) -> WindowView:
    return WindowView(
        id=w.id,
        extension=w.extension,
        description=w.describe(),
        days=sorted(w.days),
        start=f"{w.start:%H:%M}",
        end=f"{w.end:%H:%M}",
        tz=w.tz,
    )


class ManualView(View):
    extension: str
    until: Time | None  # none: until switched off


class DndView(View):
    schedules: list[WindowView]
    manual: list[ManualView]


def dnd_view(windows: list[DndWindow], manual: list[ManualDnd]) -> DndView:
    return DndView(
        schedules=[window_view(w) for w in windows],
        manual=[ManualView(extension=m.extension, until=utc(m.until)) for m in manual],
    )


class CallView(View):
    id: int
    at: Time
    channel_id: str
    caller: str | None  # E.164, when the caller ID was a number
    caller_raw: str
    caller_name: str | None
    extension: str
    decision: Literal["allowed", "rejected", "abandoned"]
    code: Code | None
    rule_kind: str | None
    rule_id: int | None  # admins only
    reason: str
    policy: str | None
    verification: str | None
    attestation: str | None
    challenge: str | None
    door: str | None
    decision_ms: float


class CallPage(View):
    calls: list[CallView]
    next: int | None  # `before` for the next page


def call_view(r: LoggedCall, admin: bool = True) -> CallView:
    """One call; for a user, the rule that decided told by its kind only (reason_for_user)."""
    reason = r.reason if admin else reason_for_user(r.rule_kind, r.policy, r.challenge)
    return CallView(
        id=r.id,
        at=r.at.astimezone(UTC),
        channel_id=r.channel_id,
        caller=r.caller,
        caller_raw=r.caller_raw,
        caller_name=r.caller_name,
        extension=r.extension,
        decision=r.decision,
        code=as_code(r.sip_code),
        rule_kind=r.rule_kind,
        rule_id=r.rule_id if admin else None,
        reason=reason,
        policy=r.policy,
        verification=r.verification,
        attestation=r.attestation,
        challenge=r.challenge,
        door=r.door,
        decision_ms=r.decision_us / 1000,
    )


# The CLI's --json: the same views as builtins.


def entry_json(e: Entry | ListedEntry) -> dict[str, Any]:
    return plain(listed_view(e) if isinstance(e, ListedEntry) else entry_view(e))  # type: ignore[no-any-return]


def name_json(n: NameEntry) -> dict[str, Any]:
    return plain(name_view(n))  # type: ignore[no-any-return]


def policy_json(p: Policy) -> dict[str, Any]:
    return plain(policy_view(p))  # type: ignore[no-any-return]


def window_json(w: DndWindow) -> dict[str, Any]:
    return plain(window_view(w))  # type: ignore[no-any-return]


def call_json(r: LoggedCall, admin: bool = True) -> dict[str, Any]:
    return plain(call_view(r, admin))  # type: ignore[no-any-return]


# Answers of operations rather than records: the API's, declared here beside the records so
# every door that grows them shows the same fields.


class WhoView(View):
    name: str
    role: str  # admin or user
    extension: str | None


class ManualDndView(View):
    extension: str
    on: bool
    until: Time | None  # on: until when (none: until switched off)
    was_on: bool | None  # off: whether it was on


class SpamView(View):
    outcome: str
    detail: str


class CheckView(View):
    caller: str
    caller_normalised: str | None
    extension: str
    action: Literal["continue", "reject", "challenge"]
    sip_code: Code | None
    rule_kind: str | None
    rule_id: int | None  # admins only
    policy: str | None
    reason: str


class TopCaller(View):
    caller: str
    calls: int


class StatsView(View):
    since: Time | None
    calls: int
    allowed: int
    rejected_607: int
    rejected_608: int
    failed_open: int
    challenges: dict[str, int]  # challenge outcome -> calls
    top_callers: list[TopCaller]


class ErrorView(View):
    error: str  # "field: what was expected"
    field: str
