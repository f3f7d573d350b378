"""Console accounts and the first pages, on each backend: `screening user ...` as an admin
types it, and the login, session, CSRF, lock-out and per-extension rules through HTTP.
(The browser tests come with the rest of the console.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from screening.config import Config
from screening.store import calllog
from screening.store.engine import make_engine
from screening.store.models import ApiToken, AuditEntry, User
from screening.web.app import create_app
from tests.cli_helpers import Cli, ok

PASSWORD = "correct horse battery"


def add_user(cli: Cli, tmp_path: Path, name: str, *args: str, password: str = PASSWORD) -> str:
    secret = tmp_path / f"{name}.pw"
    secret.write_text(password + "\n")
    return ok(cli("user", "add", name, *args, "--password-file", str(secret)))


@pytest.fixture
def client(database_url: str) -> TestClient:
    engine = make_engine(database_url)
    return TestClient(create_app(Config(), engine, "test-secret"), follow_redirects=False)


Outcome = Literal["allowed", "rejected"]


def log_calls(database_url: str, *calls: tuple[str, str, Outcome, int | None, str | None]) -> None:
    """Call-log rows as the app writes them: (extension, caller, decision, code, rule)."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    rows = [
        calllog.CallRecord(
            now, f"c{i}", caller, caller, ext, decision, code, rule, None, "why", 900
        )
        for i, (ext, caller, decision, code, rule) in enumerate(calls)
    ]
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, rows)
    engine.dispose()


def csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path).text
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    r = client.post("/login", data={"name": name, "password": password, "csrf": csrf(client)})
    return int(r.status_code)


def test_user_accounts_from_the_cli(cli: Cli, database_url: str, tmp_path: Path) -> None:
    assert "add the first admin" in ok(cli("user", "list"))
    assert add_user(cli, tmp_path, "alice", "--role", "admin") == "added admin alice\n"
    out = add_user(cli, tmp_path, "bob", "--role", "user", "--extension", "201")
    assert out == "added user bob for extension 201\n"
    listed = json.loads(ok(cli("user", "list", "--json")))
    assert [(u["name"], u["role"], u["extension"]) for u in listed] == [
        ("alice", "admin", None),
        ("bob", "user", "201"),
    ]
    token = ok(cli("user", "token", "bob")).strip()
    assert len(token) >= 40
    engine = make_engine(database_url)
    with Session(engine) as s:
        hashes = [u.password_hash for u in s.scalars(select(User))]
        stored = [t.token_hash for t in s.scalars(select(ApiToken))]
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert stored and token not in stored[0] and len(stored[0]) == 64  # its SHA-256 only
    assert actions == ["user add", "user add", "user token"]
    ok(cli("user", "remove", "bob"))
    with Session(engine) as s:
        assert s.scalar(text("SELECT count(*) FROM api_tokens")) == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("user", "add", "a b", "--role", "admin"), "NAME"),
        (("user", "add", "carol", "--role", "user"), "--extension"),
        (("user", "add", "carol", "--role", "admin", "--extension", "201"), "--extension"),
        (("user", "add", "carol", "--role", "root"), "Invalid value for '--role'"),
    ],
)
def test_bad_user_input_exits_2(
    cli: Cli, tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    r = cli(*args, "--password-file", str(secret))
    assert r.code == 2 and field in r.err, r.err
    assert "add the first admin" in ok(cli("user", "list"))


def test_short_password_and_duplicate_names_are_refused(cli: Cli, tmp_path: Path) -> None:
    r = cli(
        "user", "add", "dave", "--role", "admin", "--password-file", str(_pw(tmp_path, "short"))
    )
    assert r.code == 2 and "password: expected at least 10 characters" in r.err
    add_user(cli, tmp_path, "dave", "--role", "admin")
    r = cli(
        "user", "add", "dave", "--role", "admin", "--password-file", str(_pw(tmp_path, PASSWORD))
    )
    assert r.code == 2 and "a user named 'dave' exists already" in r.err


def _pw(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "other.pw"
    path.write_text(password)
    return path


def test_login_logout_and_the_csrf_token(cli: Cli, client: TestClient, tmp_path: Path) -> None:
    add_user(cli, tmp_path, "alice", "--role", "admin")
    assert client.get("/").headers["location"] == "/login"
    # A form without the session's token is refused and logs nobody in.
    r = client.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    assert client.get("/").status_code == 303
    assert login(client, "alice") == 303
    home = client.get("/")
    assert home.status_code == 200 and "Today" in home.text and "alice (admin)" in home.text
    cookie = home.request.headers.get("cookie", "")
    assert "screening_session=" in cookie
    set_cookie = client.post(
        "/login", data={"name": "alice", "password": PASSWORD, "csrf": csrf(client)}
    ).headers["set-cookie"]
    assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower()
    assert "secure" not in set_cookie.lower()  # plain http here: web.secure_cookies is off
    assert client.post("/logout", data={"csrf": "nope"}).status_code == 403
    assert client.post("/logout", data={"csrf": csrf(client, "/")}).status_code == 303
    assert client.get("/").status_code == 303


def test_wrong_passwords_lock_the_account(cli: Cli, client: TestClient, tmp_path: Path) -> None:
    add_user(cli, tmp_path, "alice", "--role", "admin")
    for _ in range(5):
        r = client.post(
            "/login", data={"name": "alice", "password": "wrong password", "csrf": csrf(client)}
        )
        assert r.status_code == 401 and "Wrong name or password, or locked for now." in r.text
    # Locked: even the right password is refused, with the same words.
    assert login(client, "alice") == 401
    # An unknown name gets the same answer.
    assert login(client, "nobody") == 401
    # The admin lifts it by setting a new password.
    ok(cli("user", "passwd", "alice", "--password-file", str(_pw(tmp_path, "a new password 1"))))
    assert login(client, "alice", "a new password 1") == 303


def test_a_user_sees_only_their_extension(
    cli: Cli, client: TestClient, database_url: str, tmp_path: Path
) -> None:
    add_user(cli, tmp_path, "bob", "--role", "user", "--extension", "201")
    log_calls(
        database_url,
        ("201", "+15550300201", "rejected", 607, "block"),
        ("202", "+15550300202", "rejected", 607, "block"),
    )
    assert login(client, "bob") == 303
    assert client.get("/").headers["location"] == "/ext/201"
    page = client.get("/ext/201").text
    assert "Extension 201" in page and "+15550300201" in page
    assert "+15550300202" not in page and "Today" not in page
    # Another extension's page, and a change to it, by URL: 403.
    assert client.get("/ext/202").status_code == 403
    token = csrf(client, "/ext/201")
    r = client.post("/ext/202/spam", data={"caller": "+15550300202", "csrf": token})
    assert r.status_code == 403


def test_this_was_spam_and_its_undo(
    cli: Cli, client: TestClient, database_url: str, tmp_path: Path
) -> None:
    add_user(cli, tmp_path, "bob", "--role", "user", "--extension", "201")
    log_calls(database_url, ("201", "+15550300301", "allowed", None, None))
    engine = make_engine(database_url)
    assert login(client, "bob") == 303
    token = csrf(client, "/ext/201")
    # Only a caller that rang this extension can be reported; a form needs its token.
    assert (
        client.post("/ext/201/spam", data={"caller": "+15559999999", "csrf": token}).status_code
        == 400
    )
    assert client.post("/ext/201/spam", data={"caller": "+15550300301"}).status_code == 403
    r = client.post("/ext/201/spam", data={"caller": "+15550300301", "csrf": token})
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "+15550300301 blocked for 201" in page and "Undo spam" in page
    # The same effect as *60: the caller is blocked for 201 with 607.
    decision = json.loads(ok(cli("check", "+15550300301", "201", "--json")))
    assert (decision["sip_code"], decision["rule_kind"]) == (607, "block")
    r = client.post("/ext/201/spam", data={"caller": "+15550300301", "undo": "1", "csrf": token})
    assert "+15550300301 unblocked for 201" in client.get(r.headers["location"]).text
    assert json.loads(ok(cli("check", "+15550300301", "201", "--json")))["decision"] == "allowed"
    with Session(engine) as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-2:] == ["mark spam", "unmark spam"]
    engine.dispose()


def test_the_session_cookie_is_secure_when_asked(
    cli: Cli, database_url: str, tmp_path: Path
) -> None:
    add_user(cli, tmp_path, "alice", "--role", "admin")
    engine = make_engine(database_url)
    secure = TestClient(
        create_app(Config(), engine, "k", https_only=True),
        base_url="https://testserver",
        follow_redirects=False,
    )
    r = secure.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": csrf(secure)})
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    engine.dispose()
