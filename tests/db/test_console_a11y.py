"""The console's accessibility in Debian's chromium: axe-core (from npm, by scripts/axe-core)
audits every page an admin and an extension's user see, with data in every table, in light
and dark colours. A serious or critical violation fails the test, named with its nodes.
Screenshots of each page go to test-artifacts/ (or $SCREENING_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy.orm import Session

from screening.service import ops, parse
from screening.service.accounts import Accounts
from screening.service.actor import CLI
from screening.store import calllog, migrate
from screening.store.engine import make_engine
from tests.browser import chromium, log_in
from tests.cli_helpers import start_web

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SCREENING_TEST_ARTIFACTS", REPO / "test-artifacts"))
PASSWORD = "an accessible passphrase"
#: What an admin reaches from the navigation and the forms (the import page is reached by
#: importing, below); every route of web.app and web.pages that answers with HTML.
ADMIN_PAGES = [
    "/",
    "/calls",
    "/calls?caller=hello",  # a filter the page refuses: the error state
    "/lists/block",
    "/lists/allow",
    "/names/block",
    "/names/allow",
    "/policies",
    "/dnd",
    "/transfer",
    "/users",
    "/audit",
    "/ext/201",
]
USER_PAGES = ["/ext/201", "/ext/201?done=do-not-disturb+off+for+extension+201"]
BAD = ("serious", "critical")


@dataclass(frozen=True)
class Finding:
    page: str
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        nodes = "; ".join(self.targets[:6]) + (" ..." if len(self.targets) > 6 else "")
        return f"{self.page}: {self.rule} ({self.impact}) {self.help} -- {nodes}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def axe() -> str:
    """axe.min.js; never skipped: without it the test fails saying why."""
    r = subprocess.run(
        [str(REPO / "scripts" / "axe-core")], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        pytest.fail(f"axe-core could not be had (scripts/axe-core): {r.stderr.strip()}")
    return Path(r.stdout.strip()).read_text()


def _seed(url: str) -> None:
    """A row in every table the console shows: calls over the 30 days, lists, names,
    policies, DND, users and a token (so the audit trail has rows too)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    accounts = Accounts(engine)
    accounts.add("admin", "admin", None, PASSWORD, now)
    accounts.add("user201", "user", "201", PASSWORD, now)
    accounts.new_token("user201", now, now + timedelta(days=90))
    ops.add_entry(engine, "block", "+15557000001", "US", reason="robocaller", by=CLI)
    ops.add_entry(engine, "block", "+1900*", "US", extension="201", expires="30d", by=CLI)
    ops.add_entry(engine, "allow", "+15557000002", "US", extension="201", by=CLI)
    ops.save_name(engine, parse.new_name("block", "*scam likely*"), by=CLI)
    ops.set_policy(engine, parse.new_policy("anonymous", "challenge", None), by=CLI)
    ops.add_dnd(engine, "201", "mon-fri", "22:00", "07:00", "UTC", by=CLI)
    ops.dnd_on(engine, "202", now + timedelta(hours=2), by=CLI)
    rows = []
    for day in (0, 1, 3, 12):
        for n in range(day % 5 + 2):
            decision: Literal["allowed", "rejected"] = "rejected" if n % 2 else "allowed"
            rows.append(
                calllog.CallRecord(
                    now - timedelta(days=day, minutes=n),
                    f"a{day}-{n}",
                    f"+1555700001{n}",
                    f"+1555700001{n}",
                    "201",
                    decision,
                    (607, 608)[n % 4 // 2] if decision == "rejected" else None,
                    "block" if decision == "rejected" else ("error" if n == 2 else None),
                    None,
                    "matched the block list" if decision == "rejected" else "no rule matched",
                    900,
                )
            )
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, rows)
    engine.dispose()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`screening web` on a SQLite database with something in every table."""
    work = tmp_path_factory.mktemp("a11y")
    url = f"sqlite:///{work / 'screening.db'}"
    _seed(url)
    port = _free_port()
    env = {
        "SCREENING_DATABASE_URL": url,
        "SCREENING_WEB_SECRET_KEY": "a11y-test-key-" * 3,
        "SCREENING_WEB_TIMEZONE": "Europe/Berlin",  # times with an offset, as most admins see
    }
    proc = start_web(env, port, work / "web.log")
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


def audit(page: Any, axe: str, name: str) -> list[Finding]:
    """axe's violations of the page shown now, serious and critical ones; and its picture."""
    scheme = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    shot = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / f"a11y-{shot}-{'dark' if scheme else 'light'}.png"), full_page=True
    )
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document)")
    return [
        Finding(
            name,
            v["id"],
            v["impact"],
            v["help"],
            [" ".join(map(str, node["target"])) for node in v["nodes"]],
        )
        for v in result["violations"]
        if v["impact"] in BAD
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_console_page_has_no_serious_or_critical_violation(
    console: str, browser: Any, axe: str, scheme: str, tmp_path: Path
) -> None:
    found: list[Finding] = []
    stranger = browser.new_context(color_scheme=scheme).new_page()
    stranger.goto(f"{console}/login")
    found += audit(stranger, axe, "/login")
    stranger.get_by_label("Name").fill("admin")
    stranger.get_by_label("Password").fill("not the password")
    stranger.get_by_role("button", name="Log in").click()
    found += audit(stranger, axe, "/login (refused)")
    seen = 2

    admin = log_in(browser, console, "admin", PASSWORD, color_scheme=scheme)
    for path in ADMIN_PAGES:
        admin.goto(console + path)
        found += audit(admin, axe, f"admin {path}")
        seen += 1
    csv = tmp_path / "rules.csv"
    csv.write_text("type,number\nblock,+15557000099\n")
    admin.goto(f"{console}/transfer")
    admin.get_by_label("File").set_input_files(str(csv))
    admin.get_by_role("button", name="Import").click()
    admin.wait_for_url(lambda u: "/transfer/" in u)
    found += audit(admin, axe, "admin /transfer/JOB")

    user = log_in(browser, console, "user201", PASSWORD, color_scheme=scheme)
    for path in USER_PAGES:
        user.goto(console + path)
        found += audit(user, axe, f"user {path}")
    seen += 1 + len(USER_PAGES)
    rules = sorted({f.rule for f in found})
    assert not found, (
        f"{len(found)} serious or critical violations on {seen} pages ({scheme}), "
        + (f"rules {', '.join(rules)}:\n" + "\n".join(map(str, found)))
    )
