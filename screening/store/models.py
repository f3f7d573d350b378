"""SQLAlchemy models: the same schema on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Time,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GLOBAL = ""  # scope value of a global entry: NULL would defeat the unique constraint


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores.
    MariaDB's DATETIME drops microseconds unless asked for fsp=6."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A value read past the column type (an aggregate, a UNION) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns max() of a DATETIME as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class _ListEntry:
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(32))  # normalised number or prefix
    is_prefix: Mapped[bool] = mapped_column(Boolean)
    entered: Mapped[str] = mapped_column(String(64))  # as the admin typed it
    scope: Mapped[str] = mapped_column(String(32), default=GLOBAL)  # extension, or GLOBAL
    reason: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Call-log rows name the rule that decided by id: SQLite must never hand a deleted entry's id
# to a new one (AUTOINCREMENT), or old calls would be counted against the new entry.
_NO_REUSE = {"sqlite_autoincrement": True}


class BlockEntry(_ListEntry, Base):
    __tablename__ = "block_entries"
    __table_args__ = (
        UniqueConstraint("value", "is_prefix", "scope", name="uq_block_entries_rule"),
        CheckConstraint("sip_code IN (607, 608)", name="ck_block_entries_sip_code"),
        # One extension's entries in number order: the console's pages (0008).
        Index("ix_block_entries_scope_value", "scope", "value", "is_prefix"),
        _NO_REUSE,
    )
    sip_code: Mapped[int] = mapped_column(SmallInteger)


class AllowEntry(_ListEntry, Base):
    __tablename__ = "allow_entries"
    __table_args__ = (
        UniqueConstraint("value", "is_prefix", "scope", name="uq_allow_entries_rule"),
        Index("ix_allow_entries_scope_value", "scope", "value", "is_prefix"),
        _NO_REUSE,
    )


class DndSchedule(Base):
    __tablename__ = "dnd_schedules"
    __table_args__ = (Index("ix_dnd_schedules_extension", "extension"), _NO_REUSE)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    extension: Mapped[str] = mapped_column(String(32))
    days: Mapped[int] = mapped_column(SmallInteger)  # bit 0 = Monday ... bit 6 = Sunday
    start_time: Mapped[time] = mapped_column(Time())
    end_time: Mapped[time] = mapped_column(Time())
    tz: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ManualDnd(Base):
    """Do-not-disturb switched on by hand (CLI or feature code) until switched off."""

    __tablename__ = "manual_dnd"
    __table_args__ = (UniqueConstraint("extension", name="uq_manual_dnd_extension"), _NO_REUSE)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    extension: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(32))


class Policy(Base):
    """One policy of one kind, global (scope GLOBAL) or for one extension."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint("kind", "scope", name="uq_policies_kind_scope"),
        CheckConstraint("sip_code IN (607, 608)", name="ck_policies_sip_code"),
        CheckConstraint("action IN ('reject', 'challenge', 'continue')", name="ck_policies_action"),
        _NO_REUSE,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # core.decision.PolicyKind
    scope: Mapped[str] = mapped_column(String(32), default=GLOBAL)
    action: Mapped[str] = mapped_column(String(16))  # reject | challenge | continue
    sip_code: Mapped[int | None] = mapped_column(SmallInteger)  # reject only
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NameEntry(Base):
    """Block or allow by caller name: a case-insensitive glob, stored in lower case."""

    __tablename__ = "name_entries"
    __table_args__ = (
        UniqueConstraint("kind", "pattern", "scope", name="uq_name_entries_rule"),
        CheckConstraint("kind IN ('block', 'allow')", name="ck_name_entries_kind"),
        CheckConstraint("sip_code IN (607, 608)", name="ck_name_entries_sip_code"),
        Index("ix_name_entries_scope", "scope"),
        _NO_REUSE,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    pattern: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(32), default=GLOBAL)
    sip_code: Mapped[int | None] = mapped_column(SmallInteger)  # blocks only
    reason: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SpamReport(Base):
    """An extension said "this caller is spam" (feature code). One row per caller and
    extension: marking twice only refreshes the time."""

    __tablename__ = "spam_reports"
    __table_args__ = (
        UniqueConstraint("caller", "extension", name="uq_spam_reports_caller_extension"),
        Index("ix_spam_reports_caller_at", "caller", "reported_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller: Mapped[str] = mapped_column(String(32))
    extension: Mapped[str] = mapped_column(String(32))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallLog(Base):
    __tablename__ = "call_log"
    __table_args__ = (
        # Time first, then what the console counts (0009): today's figures are read from
        # the index alone, without touching the rows.
        Index("ix_call_log_at_outcome", "at", "decision", "sip_code", "rule_kind", "caller"),
        Index("ix_call_log_extension_at", "extension", "at"),
        Index("ix_call_log_caller_at", "caller", "at"),
        Index("ix_call_log_rule", "rule_kind", "rule_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel_id: Mapped[str] = mapped_column(String(64))
    caller_raw: Mapped[str] = mapped_column(String(128))  # truncated: callers control it
    caller: Mapped[str | None] = mapped_column(String(32))
    extension: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))  # "allowed" | "rejected"
    sip_code: Mapped[int | None] = mapped_column(SmallInteger)
    rule_kind: Mapped[str | None] = mapped_column(String(16))  # allow|block|dnd|error
    rule_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(255))
    decision_us: Mapped[int] = mapped_column(Integer)
    door: Mapped[str | None] = mapped_column(String(8))  # ari | agi; NULL before 0004
    # Who the caller really is (0005; NULL before): name as shown, the verification result
    # (Asterisk's name, or "verstat ..."), the attestation, and the policy that rejected.
    caller_name: Mapped[str | None] = mapped_column(String(128))
    verification: Mapped[str | None] = mapped_column(String(40))
    attestation: Mapped[str | None] = mapped_column(String(1))
    policy: Mapped[str | None] = mapped_column(String(32))
    # The challenge's outcome (0007; core.challenge.Outcome), NULL when not challenged.
    challenge: Mapped[str | None] = mapped_column(String(16))


class User(Base):
    """A console account: an admin, or the user of one extension."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name", name="uq_users_name"),
        CheckConstraint("role IN ('admin', 'user')", name="ck_users_role"),
        _NO_REUSE,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(8))
    extension: Mapped[str | None] = mapped_column(String(32))  # users only
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # 0010: in every session cookie; raised when the user's sessions must end.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the last failure


class ApiToken(Base):
    """A bearer token for /api/v1; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_hash"), _NO_REUSE)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # 0010; NULL: never


class AuditEntry(Base):
    """Who changed what, when (console and API)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(512))


class CallLogDay(Base):
    """One day's calls in one time zone (a console's web.timezone; PBXs that share the
    database may each have theirs), written once the day is over (store.calllog.settle_days):
    the console's 30-day chart reads 30 rows instead of a million (0009, 0011)."""

    __tablename__ = "call_log_days"
    zone: Mapped[str] = mapped_column(String(64), primary_key=True)  # IANA name
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD in the zone
    allowed: Mapped[int] = mapped_column(Integer)
    spam: Mapped[int] = mapped_column(Integer)  # rejected with 607
    refused: Mapped[int] = mapped_column(Integer)  # rejected with 608
    failed_open: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Feed(Base):
    """A subscribed spam feed: where it is, how to read it, and what its numbers do."""

    __tablename__ = "feeds"
    __table_args__ = (
        UniqueConstraint("name", name="uq_feeds_name"),
        CheckConstraint("sip_code IN (607, 608)", name="ck_feeds_sip_code"),
        CheckConstraint("action IN ('reject', 'challenge')", name="ck_feeds_action"),
        _NO_REUSE,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(16))  # core.feeds.FORMATS
    every_s: Mapped[int] = mapped_column(Integer)  # how often `update --due` fetches it
    keep_s: Mapped[int] = mapped_column(Integer)  # a number unseen this long drops out
    min_reports: Mapped[int] = mapped_column(Integer)
    sip_code: Mapped[int] = mapped_column(SmallInteger)
    action: Mapped[str] = mapped_column(String(16))  # reject | challenge
    extension: Mapped[str | None] = mapped_column(String(32))  # None: every extension
    relaxed: Mapped[bool] = mapped_column(Boolean, default=False)  # http and local hosts
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of the last body taken: the same file again (a server that ignores
    #: conditional requests, a dated file fetched twice) adds no reports.
    digest: Mapped[str | None] = mapped_column(String(64))
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(512))
    numbers_in_force: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeedNumber(Base):
    """One number a feed has reported: since when, until when, how often."""

    __tablename__ = "feed_numbers"
    __table_args__ = (
        # The call path asks for one caller's number across every feed.
        Index("ix_feed_numbers_number", "number"),
    )
    feed_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(32), primary_key=True)  # normalised
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    reports: Mapped[int] = mapped_column(Integer)
