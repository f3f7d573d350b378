"""Console accounts, API tokens and the audit trail in SQL. Hashing is the caller's
(service.accounts): this module only keeps what it is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
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
    row = session.scalar(select(User).where(User.name == name))
    if row is None:
        return False
    row.password_hash = password_hash
    row.failed_logins = 0
    row.locked_until = None
    return True


def login_failed(session: Session, user_id: int, locked_until: datetime | None) -> int:
    row = session.get(User, user_id)
    assert row is not None
    row.failed_logins += 1
    row.locked_until = locked_until
    return row.failed_logins


def login_ok(session: Session, user_id: int) -> None:
    row = session.get(User, user_id)
    if row is not None:
        row.failed_logins = 0
        row.locked_until = None


def add_token(session: Session, user_id: int, token_hash: str, now: datetime) -> None:
    session.add(ApiToken(user_id=user_id, token_hash=token_hash, created_at=now))


def by_token(session: Session, token_hash: str, now: datetime) -> Account | None:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if token is None:
        return None
    token.last_used_at = now
    return get(session, token.user_id)


def audit(session: Session, actor: str, action: str, detail: str, now: datetime) -> None:
    session.add(AuditEntry(at=now, actor=actor[:64], action=action[:64], detail=detail[:512]))


def audit_trail(session: Session, limit: int = 100) -> list[AuditEntry]:
    rows = list(
        session.scalars(
            select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        )
    )
    session.expunge_all()
    return rows
