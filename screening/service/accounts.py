"""Console accounts: argon2id password hashes, logins with throttling and lock-out, API
tokens (only their SHA-256 is stored), and the audit trail. Hashing and verifying cost tens
of milliseconds on purpose: the web door runs them on a thread, never on its event loop."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from screening.core.errors import InvalidInput, NotFound
from screening.store import accounts
from screening.store.accounts import Account

log = logging.getLogger(__name__)

#: Failures in a row before an account is locked, and for how long.
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verifying against this keeps an unknown name as slow as a wrong password.
_DUMMY = _hasher.hash("not a password anyone has")


@dataclass(frozen=True)
class Refused:
    """A login that did not work; `why` is for the log, never for the page."""

    why: str


def check_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(field, f"expected at least {MIN_PASSWORD} characters")
    if len(password) > 1024 or "\n" in password:
        raise InvalidInput(field, "expected one line of at most 1024 characters")
    return password


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        name: str,
        role: str,
        extension: str | None,
        password: str,
        now: datetime,
        actor: str = "cli",
    ) -> Account:
        hashed = _hasher.hash(check_password(password))
        try:
            with Session(self._engine) as s, s.begin():
                account = accounts.add(s, name, role, extension, hashed, now)
                accounts.audit(s, actor, "user add", f"{name} ({role} {extension or ''})", now)
                return account
        except IntegrityError:
            raise InvalidInput("NAME", f"a user named {name!r} exists already") from None

    def passwd(self, name: str, password: str, now: datetime) -> None:
        hashed = _hasher.hash(check_password(password))
        with Session(self._engine) as s, s.begin():
            if not accounts.set_password(s, name, hashed):
                raise NotFound(f"no user {name!r}; see `screening user list`")
            accounts.audit(s, "cli", "user passwd", name, now)

    def remove(self, name: str, now: datetime, actor: str = "cli") -> None:
        with Session(self._engine) as s, s.begin():
            if not accounts.remove(s, name):
                raise NotFound(f"no user {name!r}; see `screening user list`")
            accounts.audit(s, actor, "user remove", name, now)

    def all(self) -> list[Account]:
        with Session(self._engine) as s:
            return accounts.all_accounts(s)

    def new_token(self, name: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        with Session(self._engine) as s, s.begin():
            account = accounts.find(s, name)
            if account is None:
                raise NotFound(f"no user {name!r}; see `screening user list`")
            accounts.add_token(s, account.id, token_hash(token), now)
            accounts.audit(s, "cli", "user token", name, now)
        return token

    def by_token(self, token: str, now: datetime) -> Account | None:
        with Session(self._engine) as s, s.begin():
            return accounts.by_token(s, token_hash(token), now)

    def get(self, user_id: int) -> Account | None:
        with Session(self._engine) as s:
            return accounts.get(s, user_id)

    def login(self, name: str, password: str, now: datetime) -> Account | Refused:
        """Blocking (argon2): call it on a thread. Five failures in a row lock the account
        for 15 minutes; the page says the same for every failure."""
        with Session(self._engine) as s, s.begin():
            account = accounts.find(s, name[:64])
            if account is None:
                _verify(_DUMMY, password)
                return Refused(f"no user {name[:64]!r}")
            if account.locked_until is not None and account.locked_until > now:
                return Refused(f"{account.name} is locked until {account.locked_until:%H:%M} UTC")
            if not _verify(account.password_hash, password):
                failures = account.failed_logins + 1
                lock = now + LOCK_FOR if failures >= LOCK_AFTER else None
                accounts.login_failed(s, account.id, lock)
                if lock is not None:
                    log.warning(
                        "user %s locked for 15 minutes after %d failed logins", name, failures
                    )
                return Refused(f"wrong password for {account.name} ({failures} in a row)")
            accounts.login_ok(s, account.id)
            accounts.audit(s, account.name, "login", "", now)
            return account

    def audit(self, actor: str, action: str, detail: str, now: datetime) -> None:
        with Session(self._engine) as s, s.begin():
            accounts.audit(s, actor, action, detail, now)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
