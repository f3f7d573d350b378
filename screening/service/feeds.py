"""Subscribed spam feeds: adding, listing and removing them, and updating one from its URL.
An update parses the body as it arrives (core.feeds.Reader), then writes its numbers in
one transaction: it is taken whole or not at all, and a failed one only leaves its error.
Never on the call path: `screening feed update --due` runs from a systemd timer."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from screening.core.errors import InvalidInput, NotFound
from screening.core.feeds import FORMATS, FeedFormatError, Reader
from screening.service import parse
from screening.service.actor import Actor, audit
from screening.service.views import iso
from screening.stir.feedfetch import MAX_FEED_BYTES, Body, FeedRefused, get_feed, url_problem
from screening.store.models import Feed, FeedNumber

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: Numbers looked up and written at once (an IN list every backend takes).
BATCH = 500
#: What a dated URL (the FTC's DNC_Complaint_Numbers_YYYY-MM-DD.csv) writes for the day.
DATE_FIELD = "{date}"


@dataclass(frozen=True)
class NewFeed:
    name: str
    url: str
    format: str
    every: timedelta
    keep: timedelta
    min_reports: int
    sip_code: int
    action: str
    extension: str | None
    relaxed: bool


@dataclass(frozen=True)
class FeedView:
    """One feed as `feed list` and `feed show` print it."""

    name: str
    url: str
    format: str
    every_s: int
    keep_s: int
    min_reports: int
    sip_code: int
    action: str
    extension: str | None
    relaxed: bool
    etag: str | None
    last_modified: str | None
    last_checked_at: datetime | None
    last_updated_at: datetime | None
    last_error: str | None
    numbers_in_force: int
    numbers: int = 0  # every number it holds, in force or not yet (show only)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "format": self.format,
            "every": _span(self.every_s),
            "keep": _span(self.keep_s),
            "min_reports": self.min_reports,
            "code": self.sip_code,
            "action": self.action,
            "extension": self.extension,
            "relaxed": self.relaxed,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "last_checked_at": iso(self.last_checked_at),
            "last_updated_at": iso(self.last_updated_at),
            "last_error": self.last_error,
            "numbers_in_force": self.numbers_in_force,
            "numbers": self.numbers,
        }


@dataclass
class UpdateResult:
    """What one update did. status: updated, not-modified, no-file or failed."""

    name: str
    status: str
    rows: int = 0  # data rows read
    reports: int = 0  # reports taken (ftc-dnc: complaint rows; others: numbers)
    numbers: int = 0  # numbers the feed holds after the update
    in_force: int = 0
    dropped: int = 0  # numbers not seen for --keep, removed
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class Fetch(Protocol):
    """Opens a feed's body (stir.feedfetch.get_feed; tests hand in their own)."""

    def __call__(
        self,
        url: str,
        *,
        etag: str | None = ...,
        last_modified: str | None = ...,
        relaxed: bool = ...,
        max_bytes: int = ...,
    ) -> AbstractContextManager[Body]: ...


#: Told the body's length (None: unknown) once, then each chunk's size as it arrives.
Progress = Callable[[int | None, int], None]


def _span(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def new_feed(
    name: str,
    url: str,
    fmt: str,
    *,
    every: str = "1d",
    keep: str = "90d",
    min_reports: str | int = 1,
    code: str | int = 607,
    action: str = "reject",
    extension: str | None = None,
    relaxed: bool = False,
) -> NewFeed:
    """Check every field of a feed (no I/O); raises InvalidInput naming the field."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "name",
            f"expected a name of lower-case letters, digits, . _ - like ftc-dnc, got {name!r}",
        )
    problem = url_problem(url, relaxed) if len(url) <= 1024 else "longer than 1024 characters"
    if problem is not None:
        # Never the URL's credentials, even when refusing them.
        shown = re.sub(r"//[^/@]*@", "//", url)[:80]
        raise InvalidInput("url", f"{problem}: {shown!r}")
    if fmt not in FORMATS:
        raise InvalidInput("format", f"expected one of {', '.join(FORMATS)}, got {fmt[:40]!r}")
    if action not in ("reject", "challenge"):
        raise InvalidInput("action", f"expected reject or challenge, got {action[:40]!r}")
    every_d, keep_d = parse.parse_duration(every, "every"), parse.parse_duration(keep, "keep")
    if keep_d > timedelta(days=3650) or every_d > timedelta(days=365):
        raise InvalidInput("keep" if keep_d > timedelta(days=3650) else "every", "too long")
    return NewFeed(
        name=name,
        url=url,
        format=fmt,
        every=every_d,
        keep=keep_d,
        min_reports=parse.whole_number(str(min_reports), "min_reports", 1, 1_000_000),
        sip_code=parse.parse_code(code),
        action=action,
        extension=parse.parse_extension(extension) if extension is not None else None,
        relaxed=relaxed,
    )


def shown_url(url: str) -> str:
    """A feed's URL as printed, logged and audited: the query's values hidden, since a
    provider may take an API key there (the stored URL keeps them, for the fetch)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    names = [part.partition("=")[0] for part in query.split("&")]
    return base + "?" + "&".join(f"{name}=..." if name else "..." for name in names)


def _view(row: Feed, numbers: int = 0) -> FeedView:
    return FeedView(
        row.name,
        shown_url(row.url),
        row.format,
        row.every_s,
        row.keep_s,
        row.min_reports,
        row.sip_code,
        row.action,
        row.extension,
        row.relaxed,
        row.etag,
        row.last_modified,
        row.last_checked_at,
        row.last_updated_at,
        row.last_error,
        row.numbers_in_force,
        numbers,
    )


def add_feed(engine: Engine, new: NewFeed, now: datetime, *, by: Actor) -> FeedView:
    """Subscribe to a feed; it holds no numbers until its first update."""
    by.admins_only("feeds")
    row = Feed(
        name=new.name,
        url=new.url,
        format=new.format,
        every_s=int(new.every.total_seconds()),
        keep_s=int(new.keep.total_seconds()),
        min_reports=new.min_reports,
        sip_code=new.sip_code,
        action=new.action,
        extension=new.extension,
        relaxed=new.relaxed,
        numbers_in_force=0,
        created_at=now,
    )
    try:
        with Session(engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
            s.flush()
            audit(s, by, "feed add", f"{new.name} {new.format} {shown_url(new.url)}", now)
    except IntegrityError:
        raise InvalidInput("name", f"a feed named {new.name!r} exists already") from None
    return _view(row)


def list_feeds(engine: Engine) -> list[FeedView]:
    with Session(engine) as s:
        return [_view(r) for r in s.scalars(select(Feed).order_by(Feed.name))]


def show_feed(engine: Engine, name: str) -> FeedView:
    with Session(engine) as s:
        row = _find(s, name)
        count = select(func.count()).select_from(FeedNumber).where(FeedNumber.feed_id == row.id)
        return _view(row, s.scalar(count) or 0)


def remove_feed(engine: Engine, name: str, now: datetime, *, by: Actor) -> FeedView:
    """Unsubscribe: the feed and every number it reported go at once."""
    by.admins_only("feeds")
    with Session(engine) as s, s.begin():
        row = _find(s, name)
        view = _view(row)
        s.execute(delete(FeedNumber).where(FeedNumber.feed_id == row.id))
        s.delete(row)
        audit(s, by, "feed remove", name, now)
    return view


def _find(s: Session, name: str) -> Feed:
    row = s.scalar(select(Feed).where(Feed.name == name))
    if row is None:
        raise NotFound(f"no feed named {name[:64]!r} (see `screening feed list`)")
    return row


def is_due(feed: FeedView, now: datetime) -> bool:
    """Whether `every` has passed since the feed was last checked (or it never was)."""
    last = feed.last_checked_at
    return last is None or now - last >= timedelta(seconds=feed.every_s)


def feed_url(url: str, now: datetime) -> str:
    """The URL for today's file: a dated URL's {date} is now's date (YYYY-MM-DD)."""
    return url.replace(DATE_FIELD, f"{now:%Y-%m-%d}")


def update_feed(
    engine: Engine,
    name: str,
    now: datetime,
    region: str,
    *,
    fetch: Fetch = get_feed,
    progress: Progress | None = None,
    max_bytes: int = MAX_FEED_BYTES,
) -> UpdateResult:
    """Fetch the feed, parsing the body as it arrives, then take its numbers and age out
    those not seen for `keep` in one transaction. The transaction starts once the body is
    in: a slow server never holds the database (SQLite has one writer). A failure (refused,
    cut off, not the feed's format) changes nothing but last_checked_at and last_error, and
    is returned as status failed."""
    with Session(engine) as s:
        feed = _find(s, name)
        feed_id, url, fmt = feed.id, feed.url, feed.format
        etag, modified, relaxed = feed.etag, feed.last_modified, feed.relaxed
    result = UpdateResult(name, "updated")
    dated = DATE_FIELD in url
    try:
        with fetch(
            feed_url(url, now),
            # A dated URL names a new file each day: yesterday's validators do not apply.
            etag=None if dated else etag,
            last_modified=None if dated else modified,
            relaxed=relaxed,
            max_bytes=max_bytes,
        ) as body:
            if body.status == 304 or (body.status == 404 and dated):
                # 304: nothing new. 404 on a dated URL: no file that day (weekends, holidays).
                result.status = "not-modified" if body.status == 304 else "no-file"
                with Session(engine) as s, s.begin():
                    row = _by_id(s, feed_id, name)
                    row.last_checked_at, row.last_error = now, None
                    result.in_force = row.numbers_in_force
                return result
            if body.status == 404:
                raise FeedRefused("HTTP 404 Not Found")
            if progress is not None:
                progress(body.length, 0)
            reader = Reader(fmt, region)
            counts: Counter[str] = Counter()
            digest = hashlib.sha256()
            for chunk in body.chunks:
                digest.update(chunk)
                counts.update(reader.feed(chunk))
                if progress is not None:
                    progress(None, len(chunk))
            counts.update(reader.close())
            etag, modified = validator(body.etag, 255), validator(body.last_modified, 64)
    except (FeedRefused, FeedFormatError) as e:
        why = printable(str(e) if isinstance(e, FeedRefused) else e.detail)
        with Session(engine) as s, s.begin():
            s.execute(
                update(Feed)
                .where(Feed.id == feed_id)
                .values(last_checked_at=now, last_error=why[:500])
            )
        return UpdateResult(name, "failed", error=why)
    result.rows, result.skipped = reader.rows, dict(reader.skipped)
    result.reports = counts.total()
    with Session(engine) as s, s.begin():
        row = _by_id(s, feed_id, name)
        row.etag, row.last_modified = etag, modified
        row.last_checked_at, row.last_error = now, None
        if row.digest == digest.hexdigest():
            # The same file as last time, sent again: its reports are counted already.
            result.status, result.reports, result.in_force = "not-modified", 0, row.numbers_in_force
            return result
        _merge(s, feed_id, counts, now)
        _age(s, row, now, result)
        row.digest, row.last_updated_at = digest.hexdigest(), now
    return result


def validator(value: str | None, longest: int) -> str | None:
    """An ETag or Last-Modified worth keeping and sending back: printable ASCII that fits;
    anything else is dropped (a server's bytes must not break the next request, or a
    terminal showing `feed show`)."""
    if value and len(value) <= longest and value.isascii() and value.isprintable():
        return value
    return None


def printable(text: str) -> str:
    """An error for `feed show` and the log: no control or bidi characters, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text)[:500]


def _by_id(s: Session, feed_id: int, name: str) -> Feed:
    row = s.get(Feed, feed_id)
    if row is None:  # removed while its body came in
        raise NotFound(f"no feed named {name[:64]!r} any more")
    return row


def update_due(
    engine: Engine,
    now: datetime,
    region: str,
    *,
    fetch: Fetch = get_feed,
    max_bytes: int = MAX_FEED_BYTES,
) -> list[UpdateResult]:
    """Update every feed whose `every` has passed since it was last checked. One feed that
    fails in a way nobody foresaw is recorded as failed and the others still update: a
    timer run must never stop at the same feed every hour."""
    results = []
    for feed in list_feeds(engine):
        if not is_due(feed, now):
            continue
        try:
            results.append(
                update_feed(engine, feed.name, now, region, fetch=fetch, max_bytes=max_bytes)
            )
        except Exception as e:
            log.exception("feed %s: update failed", feed.name)
            why = printable(f"{type(e).__name__}: {e}")
            with contextlib.suppress(Exception), Session(engine) as s, s.begin():
                s.execute(
                    update(Feed)
                    .where(Feed.name == feed.name)
                    .values(last_checked_at=now, last_error=why)
                )
            results.append(UpdateResult(feed.name, "failed", error=why))
    return results


def _merge(s: Session, feed_id: int, counts: Counter[str], now: datetime) -> None:
    """Add this update's reports: numbers seen again, and numbers new since now."""
    numbers = list(counts)
    for i in range(0, len(numbers), BATCH):
        part = numbers[i : i + BATCH]
        known = dict(
            s.execute(
                select(FeedNumber.number, FeedNumber.reports).where(
                    FeedNumber.feed_id == feed_id, FeedNumber.number.in_(part)
                )
            ).all()
        )
        seen: list[dict[str, Any]] = [
            {"feed_id": feed_id, "number": n, "reports": known[n] + counts[n], "last_seen": now}
            for n in part
            if n in known
        ]
        new: list[dict[str, Any]] = [
            {"feed_id": feed_id, "number": n, "reports": counts[n], "first_seen": now}
            | {"last_seen": now}
            for n in part
            if n not in known
        ]
        if seen:
            s.execute(update(FeedNumber), seen)
        if new:
            s.execute(insert(FeedNumber), new)


def _age(s: Session, row: Feed, now: datetime, result: UpdateResult) -> None:
    """Numbers not seen for `keep` drop out; count what remains and what is in force."""
    gone = now - timedelta(seconds=row.keep_s)
    mine = FeedNumber.feed_id == row.id
    dropped = s.execute(delete(FeedNumber).where(mine, FeedNumber.last_seen <= gone))
    result.dropped = int(getattr(dropped, "rowcount", 0) or 0)
    result.numbers = s.scalar(select(func.count()).select_from(FeedNumber).where(mine)) or 0
    in_force = select(func.count()).select_from(FeedNumber)
    in_force = in_force.where(mine, FeedNumber.reports >= row.min_reports)
    result.in_force = s.scalar(in_force) or 0
    row.numbers_in_force = result.in_force
