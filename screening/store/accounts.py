"""Console accounts, API tokens and the audit trail in SQL. Hashing is the caller's
(service.accounts): this module only keeps what it is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.orm import Session

from screening.store.models import ApiToken, AuditEntry, User


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str  # admin | user
    extension: str | None
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    session_epoch: int = 0  # in each session cookie; raised to end the user's sessions


@dataclass(frozen=True)
class Token:
    """An API token as listed: never the token itself (only its hash is kept)."""

    id: int
    user: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


def _account(row: User) -> Account:
    return Account(
        row.id,
        row.name,
        row.role,
        row.extension,
        row.password_hash,
        row.failed_logins,
        row.locked_until,
        row.created_at,
        row.session_epoch or 0,
    )


def find(session: Session, name: str) -> Account | None:
    row = session.scalar(select(User).where(User.name == name))
    return _account(row) if row else None


def get(session: Session, user_id: int) -> Account | None:
    row = session.get(User, user_id)
    return _account(row) if row else None


def add(
    session: Session, name: str, role: str, extension: str | None, password_hash: str, now: datetime
) -> Account:
    row = User(
        name=name,
        role=role,
        extension=extension,
        password_hash=password_hash,
        failed_logins=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _account(row)


def all_accounts(session: Session) -> list[Account]:
    return [_account(r) for r in session.scalars(select(User).order_by(User.name))]


def remove(session: Session, name: str) -> bool:
    row = session.scalar(select(User).where(User.name == name))
    if row is None:
        return False
    session.execute(delete(ApiToken).where(ApiToken.user_id == row.id))
    session.delete(row)
    return True


def set_password(session: Session, name: str, password_hash: str) -> bool:
    """A new password: the lock is lifted and every session of the user ends."""
    row = session.scalar(select(User).where(User.name == name))
    if row is None:
        return False
    row.password_hash = password_hash
    row.failed_logins = 0
    row.locked_until = None
    row.session_epoch = (row.session_epoch or 0) + 1
    return True


def set_role(session: Session, name: str, role: str, extension: str | None) -> bool:
    """A new role (and extension): every session of the user ends."""
    row = session.scalar(select(User).where(User.name == name))
    if row is None:
        return False
    row.role, row.extension = role, extension
    row.session_epoch = (row.session_epoch or 0) + 1
    return True


def end_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(User).where(User.id == user_id).values(session_epoch=User.session_epoch + 1)
    )


def reserve_attempt(
    session: Session, user_id: int, now: datetime, since: datetime, most: int
) -> bool:
    """Count a login attempt as failed before its password is checked, in one statement, so
    that however many arrive at once at most `most` are checked within the window. False:
    the account is locked, or its `most` attempts are taken. Failures before `since` fade."""
    fresh = or_(User.failed_at.is_(None), User.failed_at < since)
    result = session.execute(
        update(User)
        .where(
            User.id == user_id,
            or_(User.locked_until.is_(None), User.locked_until <= now),
            or_(fresh, User.failed_logins < most),
        )
        .values(
            failed_logins=case((fresh, 1), else_=User.failed_logins + 1),
            failed_at=now,
            locked_until=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def lock(session: Session, user_id: int, until: datetime) -> None:
    session.execute(update(User).where(User.id == user_id).values(locked_until=until))


def login_ok(session: Session, user_id: int) -> None:
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(failed_logins=0, failed_at=None, locked_until=None)
    )


def add_token(
    session: Session, user_id: int, token_hash: str, now: datetime, expires: datetime | None
) -> int:
    row = ApiToken(user_id=user_id, token_hash=token_hash, created_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    return row.id


def by_token(session: Session, token_hash: str, now: datetime) -> Account | None:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        return None
    token.last_used_at = now
    return get(session, token.user_id)


def tokens(session: Session, name: str | None = None) -> list[Token]:
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
    if name is not None:
        query = query.where(User.name == name)
    return [
        Token(t.id, user, t.created_at, t.last_used_at, t.expires_at)
        for t, user in session.execute(query.order_by(ApiToken.id))
    ]


def revoke_token(session: Session, token_id: int) -> Token | None:
    found = session.execute(
        select(ApiToken, User.name)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id)
    ).first()
    if found is None:
        return None
    token, user = found
    session.delete(token)
    return Token(token.id, user, token.created_at, token.last_used_at, token.expires_at)


def audit(session: Session, actor: str, action: str, detail: str, now: datetime) -> None:
    session.add(AuditEntry(at=now, actor=actor[:64], action=action[:64], detail=detail[:512]))


@dataclass(frozen=True)
class Audited:
    """One line of the audit trail: who did what, when."""

    at: datetime
    actor: str
    action: str
    detail: str


def audit_trail(session: Session, limit: int = 100) -> list[Audited]:
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    return [Audited(r.at, r.actor, r.action, r.detail) for r in session.scalars(query)]
