"""Console accounts: argon2id password hashes, logins with throttling and lock-out, API
tokens (only their SHA-256 is stored), and the audit trail. Hashing and verifying cost tens
of milliseconds on purpose: the web door runs them on a thread, never on its event loop."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from screening.core.errors import InvalidInput, NotFound
from screening.store import accounts
from screening.store.accounts import Account

log = logging.getLogger(__name__)

#: Failures within LOCK_FOR before an account is locked to strangers (and a browser to
#: itself), and how long that lasts.
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
#: Failures within LOCK_FOR from one source address before it is refused unchecked.
SOURCE_FAILURES = 20
MIN_PASSWORD = 10

_hasher = PasswordHasher()


@cache
def dummy_hash() -> str:
    """Verifying against this keeps an unknown name as slow as a wrong password. Made on
    first use, not on import: hashing costs about 0.1 s of CPU, and every CLI command and
    app start imports this module (the web door makes it at start-up)."""
    return _hasher.hash("not a password anyone has")


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


class Failures:
    """Recent failures per key (a source address, a browser), at most `most` within
    `window`; bounded in keys, the oldest forgotten first. Pure bookkeeping, no I/O."""

    def __init__(self, most: int, window: timedelta, keys: int = 10_000) -> None:
        self._most, self._window, self._keys = most, window, keys
        self._seen: OrderedDict[str, list[datetime]] = OrderedDict()

    def spent(self, key: str, now: datetime) -> bool:
        times = [t for t in self._seen.get(key, ()) if t > now - self._window]
        return len(times) >= self._most

    def add(self, key: str, now: datetime) -> None:
        times = [t for t in self._seen.pop(key, []) if t > now - self._window]
        self._seen[key] = [*times, now][-self._most :]
        while len(self._seen) > self._keys:
            self._seen.popitem(last=False)

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


class Accounts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sources = Failures(SOURCE_FAILURES, LOCK_FOR)
        self._devices = Failures(LOCK_AFTER, LOCK_FOR)

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
            raise InvalidInput("name", f"a user named {name!r} exists already") from None

    def passwd(self, name: str, password: str, now: datetime) -> None:
        """A new password; the lock is lifted and every session of the user ends."""
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

    def new_token(
        self, name: str, now: datetime, expires: datetime | None, actor: str = "cli"
    ) -> tuple[str, int]:
        """(the token, shown once; its id, for listing and revoking it)."""
        token = secrets.token_urlsafe(32)
        with Session(self._engine) as s, s.begin():
            account = accounts.find(s, name)
            if account is None:
                raise NotFound(f"no user {name!r}; see `screening user list`")
            token_id = accounts.add_token(s, account.id, token_hash(token), now, expires)
            until = f"until {expires:%Y-%m-%d}" if expires else "no expiry"
            accounts.audit(s, actor, "user token", f"{name}: token #{token_id}, {until}", now)
        return token, token_id

    def tokens(self, name: str | None = None) -> list[accounts.Token]:
        with Session(self._engine) as s:
            if name is not None and accounts.find(s, name) is None:
                raise NotFound(f"no user {name!r}; see `screening user list`")
            return accounts.tokens(s, name)

    def revoke_token(self, token_id: int, now: datetime, actor: str = "cli") -> accounts.Token:
        with Session(self._engine) as s, s.begin():
            gone = accounts.revoke_token(s, token_id)
            if gone is None:
                raise NotFound(f"no API token #{token_id}; see `screening user token --list`")
            accounts.audit(s, actor, "user token revoke", f"{gone.user}: token #{token_id}", now)
            return gone

    def set_role(
        self, name: str, role: str, extension: str | None, now: datetime, actor: str = "cli"
    ) -> None:
        with Session(self._engine) as s, s.begin():
            if not accounts.set_role(s, name, role, extension):
                raise NotFound(f"no user {name!r}; see `screening user list`")
            accounts.audit(s, actor, "user role", f"{name}: {role} {extension or ''}", now)

    def end_sessions(self, account: Account, now: datetime, why: str) -> None:
        with Session(self._engine) as s, s.begin():
            accounts.end_sessions(s, account.id)
            accounts.audit(s, account.name, why, "", now)

    def by_token(self, token: str, now: datetime) -> Account | None:
        with Session(self._engine) as s, s.begin():
            return accounts.by_token(s, token_hash(token), now)

    def get(self, user_id: int) -> Account | None:
        with Session(self._engine) as s:
            return accounts.get(s, user_id)

    def login(
        self,
        name: str,
        password: str,
        now: datetime,
        source: str = "?",
        device: tuple[int, str] | None = None,
    ) -> Account | Refused:
        """Blocking (argon2): call it on a thread. Every path checks exactly one password
        hash, so an answer takes as long whether the name exists, is locked or throttled.

        `device` is (user id, device id) from the browser's signed cookie of an earlier good
        login. Attempts from a known device of this account count against that device only;
        others against the source (20 in 15 minutes) and the account (5 in 15 minutes, each
        counted before its password is checked, in one statement, however many arrive at
        once). So a stranger can lock strangers out of an account, never its owner's own
        browser."""
        name = name[:64]
        with Session(self._engine) as s, s.begin():
            account = accounts.find(s, name)
            known = device is not None and account is not None and device[0] == account.id
            why = self._barred(s, account, source, device if known else None, now)
        if account is None or why is not None:
            _verify(dummy_hash(), password)
            self._failed(source, None, now)
            return Refused(why or f"no user {name!r}")
        if not _verify(account.password_hash, password):
            self._failed(source, device if known else None, now)
            if not known:
                self._lock_if_spent(account, now)
            return Refused(f"wrong password for {account.name}")
        with Session(self._engine) as s, s.begin():
            accounts.login_ok(s, account.id)
            accounts.audit(s, account.name, "login", "", now)
        if known and device is not None:
            self._devices.forget(device[1])
        return account

    def _barred(
        self,
        s: Session,
        account: Account | None,
        source: str,
        device: tuple[int, str] | None,
        now: datetime,
    ) -> str | None:
        """Why this attempt is refused unchecked, or None (it is then counted)."""
        if device is not None:
            if self._devices.spent(device[1], now):
                return f"too many failures from this browser for {account.name if account else '?'}"
            return None
        if self._sources.spent(source, now):
            return f"too many failures from {source}"
        if account is not None and not accounts.reserve_attempt(
            s, account.id, now, now - LOCK_FOR, LOCK_AFTER
        ):
            return f"{account.name} is locked for now ({LOCK_AFTER} failures in 15 minutes)"
        return None

    def _failed(self, source: str, device: tuple[int, str] | None, now: datetime) -> None:
        if device is not None:
            self._devices.add(device[1], now)
        else:
            self._sources.add(source, now)

    def _lock_if_spent(self, account: Account, now: datetime) -> None:
        with Session(self._engine) as s, s.begin():
            current = accounts.get(s, account.id)
            if current is not None and current.failed_logins >= LOCK_AFTER:
                accounts.lock(s, account.id, now + LOCK_FOR)
                log.warning(
                    "user %s locked for 15 minutes to strangers after %d failed logins "
                    "(a browser it logged in from before can still log in)",
                    account.name,
                    current.failed_logins,
                )

    def trail(self, limit: int = 100) -> list[accounts.Audited]:
        """The audit trail, newest first."""
        with Session(self._engine) as s:
            return accounts.audit_trail(s, limit)

    def audit(self, actor: str, action: str, detail: str, now: datetime) -> None:
        with Session(self._engine) as s, s.begin():
            accounts.audit(s, actor, action, detail, now)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
