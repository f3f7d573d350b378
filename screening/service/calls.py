"""The call log as every door reads it: one filter, one page, one "this was spam", each
checked against who asks (a user sees and reports only their own extension's calls)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from screening.core.decision import DndWindow, ManualDnd
from screening.core.errors import InvalidInput, NotFound
from screening.core.features import Reputation, Result
from screening.core.numbers import normalise
from screening.service import parse
from screening.service.actor import Actor, audit
from screening.store import calllog, lists, reports
from screening.store.calllog import LoggedCall, Stats, Today

log = logging.getLogger(__name__)

DECISIONS = ("allowed", "rejected", "abandoned")
#: A caller as the call log keeps it (normalised): what the console's spam form sends back.
_CALLER = re.compile(r"\+?[0-9]{1,31}")


@dataclass(frozen=True)
class CallFilter:
    extension: str | None = None
    caller: str | None = None  # normalised
    decision: str | None = None
    before: int | None = None  # a call's id: the page after it
    since: datetime | None = None
    rule_kind: str | None = None


def call_filter(
    region: str,
    *,
    extension: str | None = None,
    caller: str | None = None,
    decision: str | None = None,
    before: str | None = None,
    since: str | None = None,
    now: datetime | None = None,
) -> CallFilter:
    """The filter from what a person typed; empty means "any". Errors name the field."""
    wanted = None
    if caller:
        wanted = normalise(caller, region)
        if wanted is None:
            raise InvalidInput("caller", f"expected a phone number, got {caller[:40]!r}")
    if decision and decision not in DECISIONS:
        raise InvalidInput("decision", "expected allowed, rejected or abandoned")
    return CallFilter(
        extension=parse.parse_extension(extension, "extension") if extension else None,
        caller=wanted,
        decision=decision or None,
        before=parse.parse_id(before, "before", parse.MAX_CALL_ID) if before else None,
        since=parse.parse_since(since, now or datetime.now(UTC), field="since") if since else None,
    )


def query_filter(region: str, query: Mapping[str, str]) -> CallFilter:
    """The filter a page or an API request asks for in its query string."""
    return call_filter(
        region,
        extension=query.get("extension"),
        caller=query.get("caller"),
        decision=query.get("decision"),
        before=query.get("before"),
    )


@dataclass(frozen=True)
class CallPage:
    calls: list[LoggedCall]
    next: int | None  # the `before` of the next page; None on the last one


def list_calls(engine: Engine, actor: Actor, wanted: CallFilter, limit: int) -> CallPage:
    """Newest first; a user's own extension's calls only."""
    extension = actor.scope(wanted.extension)
    with Session(engine) as s:
        rows = calllog.query_log(
            s,
            since=wanted.since,
            extension=extension,
            caller=wanted.caller,
            decision=wanted.decision,
            before_id=wanted.before,
            rule_kind=wanted.rule_kind,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return CallPage(rows, rows[-1].id if more and rows else None)


def mark_spam(
    engine: Engine,
    actor: Actor,
    reputation: Reputation,
    call: int | tuple[str, str],
    *,
    undo: bool = False,
    now: datetime | None = None,
) -> Result:
    """ "This was spam" (what *60 does) for a call by its id, or for (extension, caller),
    or its undo. Only a caller whose call rang the extension can be reported: a rejected
    call never reached the user."""
    now = now or datetime.now(UTC)
    with Session(engine) as s, s.begin():
        extension, caller = _reported(s, actor, call)
        if not undo and not calllog.rang(s, extension, caller):
            raise InvalidInput("caller", f"no call from {caller} rang {extension}")
        change = reports.unmark_caller if undo else reports.mark_caller
        result = change(s, caller, extension, now, reputation)
        what = "unmark spam" if undo else "mark spam"
        audit(s, actor, what, result.detail, now)
    return result


def _reported(session: Session, actor: Actor, call: int | tuple[str, str]) -> tuple[str, str]:
    """(extension, caller) of the report, once the actor may make it: whose call it is is
    checked before anything else is said about it."""
    if isinstance(call, tuple):
        extension, caller = parse.parse_extension(call[0], "extension"), call[1]
        actor.may(extension)
        if not _CALLER.fullmatch(caller):
            raise InvalidInput("caller", f"expected a caller's number, got {caller[:40]!r}")
        return extension, caller
    found = calllog.get_call(session, call)
    if found is None:
        raise NotFound(f"no call with id {call}")
    actor.may(found.extension)
    if found.caller is None or found.decision != "allowed":
        raise InvalidInput("id", "only a call that rang, from a number, can be spam")
    return found.extension, found.caller


def stats(engine: Engine, since: datetime | None, top: int = 10) -> Stats:
    with Session(engine) as s:
        return calllog.stats(s, since, top)


def purge(engine: Engine, before: datetime) -> int:
    with Session(engine) as s, s.begin():
        return calllog.purge_log(s, before)


#: The console's chart: this many days, today the last.
CHART_DAYS = 30


def chart_days(zone: str, now: datetime) -> list[date]:
    """The chart's days in `zone`, oldest first, ending today there."""
    today = now.astimezone(ZoneInfo(zone)).date()
    return [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]


def settle(engine: Engine, zone: str, now: datetime) -> int:
    """Write the day summaries the dashboard's chart reads (once a day: a few rows)."""
    try:
        with Session(engine) as s, s.begin():
            return calllog.settle_days(s, zone, chart_days(zone, now), now)
    except IntegrityError:
        return 0  # another console (another PBX's) wrote the same day just now
    except OperationalError as e:  # locked or busy: the chart counts from the log instead
        log.warning("day summaries not written now (%s); the chart counts them live", e)
        return 0


@dataclass(frozen=True)
class Dashboard:
    days: list[calllog.Day]  # the chart's, in the console's zone
    today: Today  # since midnight there
    failed_open: list[LoggedCall]


def dashboard(engine: Engine, zone: str, now: datetime) -> Dashboard:
    """The admin's home page: 30 days, today's figures, today's calls that went unscreened;
    days are the console's (`zone`)."""
    days = chart_days(zone, now)
    midnight = calllog.day_bounds(days[-1], zone)[0]
    settle(engine, zone, now)
    with Session(engine) as s:
        return Dashboard(
            calllog.daily(s, zone, days),
            calllog.today(s, midnight, 10),
            calllog.query_log(s, since=midnight, rule_kind="error", limit=10),
        )


@dataclass(frozen=True)
class ExtensionView:
    days: list[calllog.Day]
    calls: list[LoggedCall]
    marked: set[str]  # callers this extension reported as spam
    blocks: list[lists.ListedEntry]
    allows: list[lists.ListedEntry]
    windows: list[DndWindow]
    manual: list[ManualDnd]


def extension_view(
    engine: Engine, actor: Actor, extension: str, zone: str, now: datetime
) -> ExtensionView:
    """An extension's page: its last 30 days (in `zone`), its calls, its own lists and DND."""
    actor.may(extension)
    extension = parse.parse_extension(extension, "extension")
    with Session(engine) as s:
        windows, manual = lists.list_dnd(s, extension)
        return ExtensionView(
            calllog.daily(s, zone, chart_days(zone, now), extension),
            calllog.query_log(s, extension=extension, limit=50),
            reports.marked_callers(s, extension),
            lists.page_entries(s, "block", scope=extension, limit=100).entries,
            lists.page_entries(s, "allow", scope=extension, limit=100).entries,
            windows,
            manual,
        )
