"""Spam reports: "the last caller was spam" from a phone, its undo, and the global reputation
block that reports from several extensions add."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from screening.core.decision import REPUTATION
from screening.core.features import FEATURE_SOURCE, Outcome, Reputation, Result
from screening.store import lists
from screening.store.models import BlockEntry, CallLog, SpamReport


def mark_last_caller(
    session: Session, extension: str, now: datetime, reputation: Reputation
) -> Result:
    # The last call that rang the phone: a call screening rejected never reached the user,
    # so it cannot be the one they are reporting.
    last = session.scalars(
        select(CallLog)
        .where(CallLog.extension == extension, CallLog.decision == "allowed")
        .order_by(CallLog.at.desc(), CallLog.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return Result(Outcome.NOT_POSSIBLE, f"no call to {extension} in the log")
    if last.caller is None:
        return Result(
            Outcome.NOT_POSSIBLE, f"the last caller to {extension} had no usable caller ID"
        )
    return mark_caller(session, last.caller, extension, now, reputation)


def mark_caller(
    session: Session, caller: str, extension: str, now: datetime, reputation: Reputation
) -> Result:
    """`extension` says `caller` (normalised) is spam: what *60 does for the last caller,
    and what the console's "this was spam" does for a chosen one."""
    _block(session, caller, extension, f"marked as spam from {extension}", FEATURE_SOURCE, now)
    report = session.scalars(
        select(SpamReport).where(SpamReport.caller == caller, SpamReport.extension == extension)
    ).one_or_none()
    if report is None:
        session.add(SpamReport(caller=caller, extension=extension, reported_at=now))
    else:
        report.reported_at = now
    session.flush()
    return Result(
        Outcome.MARKED,
        f"{caller} blocked for {extension}; " + _reputation(session, caller, now, reputation),
    )


def undo_last_mark(
    session: Session, extension: str, now: datetime, reputation: Reputation
) -> Result:
    entry = session.scalars(
        select(BlockEntry)
        .where(BlockEntry.scope == extension, BlockEntry.source == FEATURE_SOURCE)
        .order_by(BlockEntry.created_at.desc(), BlockEntry.id.desc())
        .limit(1)
    ).first()
    if entry is None:
        return Result(Outcome.NOT_POSSIBLE, f"{extension} has no mark to undo")
    return _unmark(session, entry.id, entry.value, extension, now, reputation)


def _block(
    session: Session, caller: str, extension: str | None, reason: str, source: str, now: datetime
) -> None:
    """Add or refresh a 607 block of one exact number (users' reports mean "unwanted")."""
    lists.upsert_entry(
        session,
        "block",
        lists.NewEntry(caller, caller, False, extension, reason, source, sip_code=607),
        now,
    )


def _reputation(session: Session, caller: str, now: datetime, reputation: Reputation) -> str:
    """Add, refresh or withdraw the global reputation block for this caller. An admin's own
    global entry for the number is never touched."""
    reporters = (
        session.scalar(
            select(func.count(func.distinct(SpamReport.extension))).where(
                SpamReport.caller == caller,
                SpamReport.reported_at >= now - timedelta(days=reputation.days),
            )
        )
        or 0
    )
    existing = lists.find_entry(session, "block", caller, False, None)
    status = f"{reporters} of {reputation.reports} reports for reputation"
    if reporters >= reputation.reports:
        # Add it, or refresh the count in its reason; an admin's own entry stays as it is.
        if existing is None or existing.source == REPUTATION:
            reason = f"marked as spam by {reporters} extensions"
            _block(session, caller, None, reason, REPUTATION, now)
        return status + (": blocked for everyone" if existing is None else "")
    if existing is not None and existing.source == REPUTATION:
        session.delete(existing)
        return status + ": reputation block withdrawn"
    return status


def unmark_caller(
    session: Session, caller: str, extension: str, now: datetime, reputation: Reputation
) -> Result:
    """Undo `mark_caller` for this caller and extension."""
    entry = lists.find_entry(session, "block", caller, False, extension)
    if entry is None or entry.source != FEATURE_SOURCE:
        return Result(Outcome.NOT_POSSIBLE, f"{caller} is not marked as spam by {extension}")
    return _unmark(session, entry.id, caller, extension, now, reputation)


def _unmark(
    session: Session,
    entry_id: int,
    caller: str,
    extension: str,
    now: datetime,
    reputation: Reputation,
) -> Result:
    """Drop the extension's spam block and report for `caller`; reputation follows."""
    session.execute(delete(BlockEntry).where(BlockEntry.id == entry_id))
    session.execute(
        delete(SpamReport).where(SpamReport.caller == caller, SpamReport.extension == extension)
    )
    session.flush()
    return Result(
        Outcome.UNMARKED,
        f"{caller} unblocked for {extension}; " + _reputation(session, caller, now, reputation),
    )


def marked_callers(session: Session, extension: str) -> set[str]:
    """Callers this extension has marked as spam (and not undone)."""
    rows = session.scalars(select(SpamReport.caller).where(SpamReport.extension == extension))
    return set(rows)
