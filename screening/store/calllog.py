"""The call log: one row per decided call, the queries `screening log` and `stats` run on it,
and retention."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Table, and_, case, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from screening.store.models import CallLog, CallLogDay


@dataclass(frozen=True)
class CallRecord:
    """One decided call, as the call log keeps it."""

    at: datetime
    channel_id: str
    caller_raw: str
    caller: str | None
    extension: str
    decision: Literal["allowed", "rejected", "abandoned"]  # abandoned: hung up in a challenge
    sip_code: int | None
    rule_kind: str | None
    rule_id: int | None
    reason: str
    decision_us: int
    door: str | None = None  # which door asked: "ari" or "agi"
    caller_name: str | None = None
    verification: str | None = None  # identity.Verification.result
    attestation: str | None = None
    policy: str | None = None  # the policy that rejected or challenged
    challenge: str | None = None  # core.challenge.Outcome, when the call was challenged


@dataclass(frozen=True, kw_only=True)
class LoggedCall(CallRecord):
    """A call as the log holds it, with its row's id."""

    id: int


def _logged(row: CallLog) -> LoggedCall:
    # The record's fields are the row's columns of the same names.
    return LoggedCall(**{f.name: getattr(row, f.name) for f in fields(LoggedCall)})


def get_call(session: Session, call_id: int) -> LoggedCall | None:
    row = session.get(CallLog, call_id)
    return _logged(row) if row is not None else None


def _printable(text: str) -> str:
    """Control characters as \\xNN: a NUL or a newline from a FastAGI peer's caller ID is
    no text any database must take (PostgreSQL refuses a NUL outright)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def repairs(record: CallRecord) -> list[CallRecord]:
    """What to write in place of a row the database refused, mildest first: characters
    outside the Basic Multilingual Plane replaced (a MariaDB table that is not utf8mb4
    refuses an emoji), then everything that is not ASCII (a latin1 table)."""

    def each(change: Callable[[str], str]) -> CallRecord:
        r = record
        return replace(
            r,
            channel_id=change(r.channel_id),
            caller_raw=change(r.caller_raw),
            caller=change(r.caller) if r.caller is not None else None,
            extension=change(r.extension),
            reason=change(r.reason),
            caller_name=change(r.caller_name) if r.caller_name is not None else None,
        )

    return [
        each(lambda t: "".join(c if ord(c) < 0x10000 else "\ufffd" for c in t)),
        each(lambda t: t.encode("ascii", "replace").decode()),
    ]


def write_call_log(session: Session, records: Sequence[CallRecord]) -> None:
    if not records:
        return
    # The table, not the class: a plain executemany, without the ORM's bulk bookkeeping
    # (it cost the log writer thread, and so the event loop waiting on the GIL, 3x more).
    session.execute(
        insert(cast(Table, CallLog.__table__)),
        [
            {
                "at": r.at,
                "channel_id": _printable(r.channel_id)[:64],
                # Caller ID is set by the far end: clip it to the column rather than fail.
                "caller_raw": _printable(r.caller_raw)[:128],
                "caller": r.caller,
                "extension": r.extension[:32],
                "decision": r.decision,
                "sip_code": r.sip_code,
                "rule_kind": r.rule_kind,
                "rule_id": r.rule_id,
                "reason": _printable(r.reason)[:255],
                "decision_us": r.decision_us,
                "door": r.door,
                "caller_name": _printable(r.caller_name)[:128] if r.caller_name else None,
                "verification": r.verification[:40] if r.verification else None,
                "attestation": r.attestation,
                "policy": r.policy,
                "challenge": r.challenge,
            }
            for r in records
        ],
    )


def query_log(
    session: Session,
    *,
    since: datetime | None = None,
    extension: str | None = None,
    caller: str | None = None,
    decision: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
    rule_kind: str | None = None,
) -> list[LoggedCall]:
    """Newest first; `before_id` continues after the last row of a previous page (keyset:
    the same cost for page 1 and page 1,000)."""
    query = select(CallLog).order_by(CallLog.at.desc(), CallLog.id.desc()).limit(limit)
    if before_id is not None:
        last = session.get(CallLog, before_id)
        if last is not None:
            query = query.where(
                CallLog.at <= last.at,
                or_(CallLog.at < last.at, CallLog.id < last.id),
            )
    if since is not None:
        query = query.where(CallLog.at >= since)
    if extension is not None:
        query = query.where(CallLog.extension == extension)
    if caller is not None:
        query = query.where(CallLog.caller == caller)
    if decision is not None:
        query = query.where(CallLog.decision == decision)
    if rule_kind is not None:
        query = query.where(CallLog.rule_kind == rule_kind)
    return [_logged(row) for row in session.scalars(query)]


def purge_log(session: Session, before: datetime) -> int:
    """Delete call-log rows older than `before`; returns how many. The day summaries of
    the days it touches go too, in every zone (settle_days writes them again from what is
    left)."""
    latest = (before.astimezone(UTC) + MAX_AHEAD).date().isoformat()
    session.execute(delete(CallLogDay).where(CallLogDay.day <= latest))
    result = session.execute(delete(CallLog).where(CallLog.at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Stats:
    since: datetime | None
    calls: int
    allowed: int
    rejected_607: int
    rejected_608: int
    rejected_by_reputation: int
    failed_open: int  # continued unscreened because screening failed
    top_callers: list[tuple[str, int]]  # rejected callers, most first
    top_rules: list[tuple[str, int]]  # rule descriptions that rejected, most first
    by_policy: list[tuple[str, int]]  # rejections per policy kind, most first
    by_verification: list[tuple[str, int]]  # calls per verification result and attestation
    top_names: list[tuple[str, int]]  # rejected callers' names, most first
    challenges: dict[str, int]  # challenge outcome -> calls (core.challenge.Outcome)


def stats(session: Session, since: datetime | None = None, top: int = 10) -> Stats:
    scope = [CallLog.at >= since] if since is not None else []

    def matching(*where: ColumnElement[bool]) -> ColumnElement[int]:
        # COUNT skips NULLs: one pass over the log counts every category at once.
        return func.count(case((and_(*where), 1)))

    totals = session.execute(
        select(
            func.count(),
            matching(CallLog.decision == "allowed"),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 607),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 608),
            matching(CallLog.rule_kind == "reputation"),
            matching(CallLog.rule_kind == "error"),
        )
        .select_from(CallLog)
        .where(*scope)
    ).one()
    rejected = [*scope, CallLog.decision == "rejected"]
    top_callers = session.execute(
        select(CallLog.caller, func.count().label("n"))
        .where(*rejected, CallLog.caller.is_not(None))
        .group_by(CallLog.caller)
        .order_by(func.count().desc(), CallLog.caller)
        .limit(top)
    ).all()
    top_rules = session.execute(
        select(CallLog.rule_kind, CallLog.rule_id, func.max(CallLog.reason), func.count())
        .where(*rejected)
        .group_by(CallLog.rule_kind, CallLog.rule_id)
        .order_by(func.count().desc())
        .limit(top)
    ).all()
    by_policy = session.execute(
        select(CallLog.policy, func.count())
        .where(*rejected, CallLog.policy.is_not(None))
        .group_by(CallLog.policy)
        .order_by(func.count().desc(), CallLog.policy)
    ).all()
    verified = session.execute(
        select(CallLog.verification, CallLog.attestation, func.count())
        .where(*scope)
        .group_by(CallLog.verification, CallLog.attestation)
        .order_by(func.count().desc(), CallLog.verification, CallLog.attestation)
    ).all()
    challenges = session.execute(
        select(CallLog.challenge, func.count())
        .where(*scope, CallLog.challenge.is_not(None))
        .group_by(CallLog.challenge)
    ).all()
    top_names = session.execute(
        select(CallLog.caller_name, func.count())
        .where(*rejected, CallLog.caller_name.is_not(None))
        .group_by(CallLog.caller_name)
        .order_by(func.count().desc(), CallLog.caller_name)
        .limit(top)
    ).all()
    return Stats(
        since=since,
        calls=totals[0],
        allowed=totals[1],
        rejected_607=totals[2],
        rejected_608=totals[3],
        rejected_by_reputation=totals[4],
        failed_open=totals[5],
        top_callers=[(str(c), n) for c, n in top_callers],
        top_rules=[(reason, n) for _kind, _id, reason, n in top_rules],
        by_policy=[(str(p), n) for p, n in by_policy],
        by_verification=[(f"{v or 'none'} {a or ''}".strip(), n) for v, a, n in verified],
        top_names=[(str(name), n) for name, n in top_names],
        challenges={str(outcome): n for outcome, n in challenges},
    )


#: A day's summary is written this long after it ends: rows reach the log in batches, and
#: a call that started before midnight is logged after it.
SETTLE = timedelta(hours=1)
#: The furthest ahead of UTC a zone is (Pacific/Kiritimati): no zone's date at an instant
#: is later than the date at that instant plus this.
MAX_AHEAD = timedelta(hours=14)


@dataclass(frozen=True)
class Day:
    """One day's calls in one time zone: allowed (failed open among them), and rejected
    with 607 (spam) or with 608."""

    day: date
    allowed: int = 0
    spam: int = 0
    refused: int = 0
    failed_open: int = 0

    @property
    def calls(self) -> int:
        return self.allowed + self.spam + self.refused


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants a day in `zone` runs between: [its midnight, the next one). Each
    day ends where the next begins, across DST changes too."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _counted(session: Session, day: date, zone: str, extension: str | None = None) -> Day:
    """One day's counts from the log: an index-only range read (ix_call_log_at_outcome), or
    the extension's index for one extension."""
    start, end = day_bounds(day, zone)
    query = select(
        func.count(case((CallLog.decision == "allowed", 1))),
        func.count(case((and_(CallLog.decision == "rejected", CallLog.sip_code == 607), 1))),
        func.count(case((CallLog.decision == "rejected", 1))),
        func.count(case((CallLog.rule_kind == "error", 1))),
    ).where(CallLog.at >= start, CallLog.at < end)
    if extension is not None:
        query = query.where(CallLog.extension == extension)
    allowed, spam, rejected, failed = (int(n) for n in session.execute(query).one())
    return Day(day, allowed, spam, rejected - spam, failed)


def settle_days(session: Session, zone: str, days: Sequence[date], now: datetime) -> int:
    """Write the summary of each of `days` (in `zone`) that is over (SETTLE ago) and has
    none yet; returns how many were written. The caller commits; a summary another process
    wrote meanwhile makes the commit fail harmlessly (primary key)."""
    over = [d for d in days if day_bounds(d, zone)[1] + SETTLE <= now]
    if not over:
        return 0
    keys = [d.isoformat() for d in over]
    have = set(
        session.scalars(
            select(CallLogDay.day).where(CallLogDay.zone == zone, CallLogDay.day.in_(keys))
        )
    )
    missing = [d for d in over if d.isoformat() not in have]
    # Counted first, written after: an INSERT would take SQLite's write lock and hold it
    # through every count after it, keeping the call-log writer waiting.
    counted = [_counted(session, d, zone) for d in missing]
    for d, counts in zip(missing, counted, strict=True):
        session.add(
            CallLogDay(
                zone=zone,
                day=d.isoformat(),
                allowed=counts.allowed,
                spam=counts.spam,
                refused=counts.refused,
                failed_open=counts.failed_open,
                computed_at=now,
            )
        )
    return len(missing)


@dataclass(frozen=True)
class Today:
    """The dashboard's figures since `since` (midnight in the console's zone)."""

    calls: int
    allowed: int
    rejected_607: int
    rejected_608: int
    failed_open: int
    top_callers: list[tuple[str, int]]  # rejected callers, most first


def today(session: Session, since: datetime, top: int = 10) -> Today:
    """Two index-only reads (ix_call_log_at_outcome): the counts, then the rejected
    callers, counted here. A GROUP BY caller would make SQLite walk the caller index of the
    whole log instead."""

    def matching(*where: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count(case((and_(*where), 1)))

    counts = session.execute(
        select(
            func.count(),
            matching(CallLog.decision == "allowed"),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 607),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 608),
            matching(CallLog.rule_kind == "error"),
        ).where(CallLog.at >= since)
    ).one()
    callers = Counter(
        caller
        for caller in session.scalars(
            select(CallLog.caller).where(CallLog.at >= since, CallLog.decision == "rejected")
        )
        if caller is not None
    )
    ranked = sorted(callers.items(), key=lambda item: (-item[1], item[0]))[:top]
    calls, allowed, r607, r608, failed = (int(n) for n in counts)
    return Today(calls, allowed, r607, r608, failed, ranked)


def daily(
    session: Session, zone: str, days: Sequence[date], extension: str | None = None
) -> list[Day]:
    """Each of `days` in `zone`, in order, a day without calls as zeros. For the whole PBX a
    settled day comes from its summary (settle_days), the others from the log."""
    settled: dict[str, Day] = {}
    if extension is None:
        keys = [d.isoformat() for d in days]
        for row in session.scalars(
            select(CallLogDay).where(CallLogDay.zone == zone, CallLogDay.day.in_(keys))
        ):
            when = date.fromisoformat(row.day)
            settled[row.day] = Day(when, row.allowed, row.spam, row.refused, row.failed_open)
    return [settled.get(d.isoformat()) or _counted(session, d, zone, extension) for d in days]


def rang(session: Session, extension: str, caller: str) -> bool:
    """Whether `caller` (normalised) reached `extension`: only such a call can be reported."""
    found = session.scalar(
        select(CallLog.id)
        .where(
            CallLog.extension == extension,
            CallLog.caller == caller,
            CallLog.decision == "allowed",
        )
        .limit(1)
    )
    return found is not None
