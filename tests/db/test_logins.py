"""Console logins against guessing, on each backend: however many guesses arrive at once, at
most five passwords are checked; every answer costs one password check, whatever the
reason; failures fade; a stranger can lock strangers out of an account, never the owner's
own browser; API tokens expire and can be revoked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from screening.service import accounts as service
from screening.service.accounts import LOCK_AFTER, SOURCE_FAILURES, Accounts, Refused
from screening.store.models import User
from tests.cli_helpers import run

PASSWORD = "correct horse battery"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the service makes: 'real' against an account's hash, 'dummy'
    against the stand-in that keeps a refusal as slow as a check."""
    made: list[str] = []
    real = service._verify

    def counted(hashed: str, password: str) -> bool:
        made.append("dummy" if hashed == service.dummy_hash() else "real")
        return real(hashed, password)

    monkeypatch.setattr(service, "_verify", counted)
    return made


def accounts_with_admin(engine: Engine) -> Accounts:
    accounts = Accounts(engine)
    accounts.add("alice", "admin", None, PASSWORD, NOW)
    return accounts


def test_sixty_guesses_at_once_check_at_most_five_passwords(
    engine: Engine, checks: list[str]
) -> None:
    # 60 parallel guesses used to make 17 password checks against the limit of 5: each
    # read the failure count before any of them wrote it.
    accounts = accounts_with_admin(engine)
    with ThreadPoolExecutor(12) as pool:
        results = list(
            pool.map(
                lambda n: accounts.login("alice", f"guess {n}", NOW, source=f"10.0.0.{n}"),
                range(60),
            )
        )
    assert all(isinstance(r, Refused) for r in results)
    assert checks.count("real") == LOCK_AFTER
    assert len(checks) == 60  # and every answer cost one check: no timing tells
    with Session(engine) as s:
        row = s.scalar(select(User).where(User.name == "alice"))
        assert row is not None and row.locked_until is not None


def test_every_refusal_costs_one_password_check(engine: Engine, checks: list[str]) -> None:
    # A locked account answered in ~7 ms against ~150 ms for a wrong password: the time
    # told which names exist (and which are locked).
    accounts = accounts_with_admin(engine)
    for n in range(LOCK_AFTER):
        assert isinstance(accounts.login("alice", "wrong", NOW, source=f"10.1.0.{n}"), Refused)
    checks.clear()
    cases = [
        ("nobody", "wrong", "10.2.0.1"),  # no such name
        ("alice", PASSWORD, "10.2.0.2"),  # locked, right password
        ("alice", "wrong", "10.2.0.3"),  # locked, wrong password
    ]
    for name, password, source in cases:
        assert isinstance(accounts.login(name, password, NOW, source=source), Refused)
    assert len(checks) == len(cases)


def test_failures_fade_so_a_guess_now_and_then_never_locks_the_account(engine: Engine) -> None:
    # One bad guess every 15 minutes kept an account locked for ever.
    accounts = accounts_with_admin(engine)
    for n in range(3 * LOCK_AFTER):
        at = NOW + timedelta(minutes=16 * n)
        assert isinstance(accounts.login("alice", "wrong", at, source="10.3.0.1"), Refused)
    later = NOW + timedelta(minutes=16 * 3 * LOCK_AFTER)
    assert not isinstance(accounts.login("alice", PASSWORD, later, source="10.3.0.1"), Refused)


def test_a_stranger_cannot_lock_the_owner_out_of_their_own_browser(engine: Engine) -> None:
    accounts = accounts_with_admin(engine)
    alice = next(a for a in accounts.all() if a.name == "alice")
    browser = (alice.id, "alices-laptop")  # from the cookie of an earlier good login
    for n in range(2 * LOCK_AFTER):
        accounts.login("alice", "guess", NOW, source=f"10.4.0.{n}")
    # Locked to strangers, the right password included (a cookie for another account
    # makes no one a known browser here) ...
    assert isinstance(accounts.login("alice", PASSWORD, NOW, source="10.4.1.1"), Refused)
    assert isinstance(accounts.login("alice", PASSWORD, NOW, device=(999, "x")), Refused)
    # ... but not from the browser alice logged in from before.
    assert not isinstance(
        accounts.login("alice", PASSWORD, NOW, source="10.4.1.2", device=browser), Refused
    )
    # A browser's own failures lock only that browser.
    for _ in range(LOCK_AFTER):
        accounts.login("alice", "typo", NOW, source="10.4.1.2", device=browser)
    assert isinstance(
        accounts.login("alice", PASSWORD, NOW, source="10.4.1.2", device=browser), Refused
    )
    other = (alice.id, "alices-phone")
    assert not isinstance(accounts.login("alice", PASSWORD, NOW, device=other), Refused)


def test_one_source_guessing_many_names_is_throttled(engine: Engine, checks: list[str]) -> None:
    accounts = accounts_with_admin(engine)
    for n in range(SOURCE_FAILURES):
        accounts.login(f"name{n}", "guess", NOW, source="192.0.2.7")
    checks.clear()
    assert isinstance(accounts.login("alice", PASSWORD, NOW, source="192.0.2.7"), Refused)
    assert checks == ["dummy"]  # refused unchecked, in the time of a check
    assert not isinstance(accounts.login("alice", PASSWORD, NOW, source="192.0.2.8"), Refused)


def test_api_tokens_expire_and_are_listed_and_revoked(database_url: str, engine: Engine) -> None:
    # Tokens never expired and could not be listed or revoked.
    env = {"SCREENING_DATABASE_URL": database_url}
    accounts_with_admin(engine)
    made = run("user", "token", "alice", "--expires", "30d", env=env)
    assert made.code == 0, made.err
    token = made.out.strip()
    assert "token #1 for alice, expires" in made.err
    accounts = Accounts(engine)
    assert accounts.by_token(token, datetime.now(UTC)) is not None
    assert accounts.by_token(token, datetime.now(UTC) + timedelta(days=31)) is None
    listed = run("user", "token", "--list", env=env)
    assert listed.code == 0 and "#1" in listed.out and "alice" in listed.out
    assert token not in listed.out  # only its hash is kept
    assert run("user", "token", "--revoke", "#1", env=env).code == 0
    assert accounts.by_token(token, datetime.now(UTC)) is None
    gone = run("user", "token", "--revoke", "1", env=env)
    assert gone.code == 1 and "no API token #1" in gone.err
    assert run("user", "token", "--revoke", "²", env=env).code == 2


def test_upgrade_to_0010_keeps_users_and_tokens_and_downgrades(empty_database_url: str) -> None:
    from screening.store import migrate
    from screening.store.engine import make_engine

    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0009")
    accounts = Accounts(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO users (id, name, role, extension, password_hash, failed_logins, "
            "created_at) VALUES (7, 'old', 'admin', NULL, 'x', 3, '2026-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO api_tokens (id, user_id, token_hash, created_at) VALUES "
            f"(1, 7, '{service.token_hash('old-token')}', '2026-01-01 00:00:00')"
        )
    migrate.upgrade(engine)
    old = next(a for a in accounts.all() if a.name == "old")
    assert (old.session_epoch, old.failed_logins) == (0, 3)
    found = accounts.by_token("old-token", datetime.now(UTC))
    assert found is not None and found.name == "old"  # an old token has no expiry
    migrate.downgrade(engine, "0009")
    migrate.upgrade(engine)
    engine.dispose()
