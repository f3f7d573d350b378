"""The web console in a real browser (Debian's chromium, driven by Playwright; no browser
download), beside the real ARI app and real SIP calls. Screenshots of the pages go to
test-artifacts/ (or $SCREENING_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.browser import chromium
from tests.browser import log_in as browser_log_in
from tests.cli_helpers import start_web
from tests.e2e.conftest import REPO, App, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "a browser passphrase"
ARTIFACTS = Path(os.environ.get("SCREENING_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def console(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`screening web` on the shared app's database, with an admin and the user of 201."""
    work = tmp_path_factory.mktemp("web")
    secret = work / "pw"
    secret.write_text(PASSWORD + "\n")
    for args in (("admin", "--role", "admin"), ("user201", "--role", "user", "--extension", "201")):
        r = app.cli("user", "add", *args, "--password-file", str(secret))
        assert r.code == 0 or "exists already" in r.err, r.err
    port = free_port()
    env = {**app.env, "SCREENING_WEB_SECRET_KEY": "browser-test-key-" * 3}
    proc = start_web(env, port, work / "web.log")
    url = f"http://127.0.0.1:{port}"
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as instance:
        yield instance


def call(app: App, caller: str, to: str) -> str:
    """A real call, on a thread: Playwright's sync API keeps an event loop on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(app.call, caller, to).result().status_line


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def log_in(browser: object, url: str, name: str, **context: object) -> object:
    page: object = browser_log_in(browser, url, name, PASSWORD, **context)
    return page


def test_admin_sees_a_real_call_on_the_dashboard(app: App, console: str, browser: object) -> None:
    page = log_in(browser, console, "admin")
    assert page.get_by_role("heading", name="Today", exact=True).is_visible()  # type: ignore[attr-defined]
    before = int(page.locator("#calls").inner_text())  # type: ignore[attr-defined]
    assert app.cli("block", "add", "+15550900001", "--reason", "seen in the browser").code == 0
    assert call(app, "+15550900001", "201") == "607 Unwanted"
    app.rows("SELECT id FROM call_log WHERE caller = '+15550900001'", at_least=1)
    page.reload()  # type: ignore[attr-defined]
    assert int(page.locator("#calls").inner_text()) == before + 1  # type: ignore[attr-defined]
    assert page.get_by_role("cell", name="+15550900001").is_visible()  # type: ignore[attr-defined]
    shot(page, "dashboard")


def test_user_sees_only_their_extension(app: App, console: str, browser: object) -> None:
    assert call(app, "+15550900002", "202") == "200 OK"
    assert call(app, "+15550900003", "201") == "200 OK"
    app.rows("SELECT id FROM call_log WHERE caller = '+15550900003'", at_least=1)
    page = log_in(browser, console, "user201")
    text = page.inner_text("main")  # type: ignore[attr-defined]
    assert "Extension 201" in text and "+15550900003" in text
    assert "+15550900002" not in text and "Today" not in text
    shot(page, "extension-201")
    # "This was spam" on the call that rang: the caller is then blocked for 201.
    page.get_by_role("button", name="+15550900003 was spam").click()  # type: ignore[attr-defined]
    assert "+15550900003 blocked for 201" in page.get_by_role("status").inner_text()  # type: ignore[attr-defined]
    assert call(app, "+15550900003", "201") == "607 Unwanted"
    # 202's page by URL: refused.
    response = page.goto(console + "/ext/202")  # type: ignore[attr-defined]
    assert response.status == 403


def test_a_form_without_its_csrf_token_is_refused(console: str, browser: object) -> None:
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    page.goto(f"{console}/login")
    page.evaluate("document.querySelector('input[name=csrf]').remove()")
    page.get_by_label("Name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    assert "refused: the form's CSRF token is missing or wrong" in page.content()
    page.goto(f"{console}/")
    assert page.url.endswith("/login")  # still logged out


def test_login_page_on_a_phone_sized_screen(console: str, browser: object) -> None:
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()  # type: ignore[attr-defined]
    page.goto(f"{console}/login")
    # Keyboard only: the name field has the focus first, Tab moves on, Enter submits.
    assert page.evaluate("document.activeElement.id") == "name"
    page.keyboard.type("nobody")
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.get_by_role("alert").inner_text() == "Wrong name or password, or locked for now."
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the login page scrolls sideways on a phone ({width}px)"
    shot(page, "login-phone")


def test_admin_blocks_sees_the_call_and_its_reason_then_allows_it_from_the_log(
    app: App, console: str, browser: object
) -> None:
    caller = "+15550900010"
    page = log_in(browser, console, "admin")
    page.get_by_role("link", name="Block list").click()  # type: ignore[attr-defined]
    page.get_by_label("Number or prefix (+1900*)").fill(caller)  # type: ignore[attr-defined]
    page.get_by_label("Reason").fill("robocaller seen in the browser")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Block", exact=True).click()  # type: ignore[attr-defined]
    assert "added block" in page.get_by_role("status").inner_text()  # type: ignore[attr-defined]
    shot(page, "block-list")
    assert call(app, caller, "201") == "607 Unwanted"
    app.rows(f"SELECT id FROM call_log WHERE caller = '{caller}'", at_least=1)
    page.get_by_role("link", name="Calls").click()  # type: ignore[attr-defined]
    row = page.locator("tr", has_text=caller).first  # type: ignore[attr-defined]
    assert "rejected 607" in row.inner_text()
    assert "robocaller seen in the browser" in row.inner_text()  # the why
    shot(page, "calls")
    row.get_by_role("button", name=f"allow {caller}").click()
    assert "added allow" in page.get_by_role("status").inner_text()  # type: ignore[attr-defined]
    assert call(app, caller, "201") == "200 OK"  # an allow entry beats the block


def test_every_admin_page_renders_and_the_import_shows_its_result(
    console: str, browser: object, tmp_path: Path
) -> None:
    page = log_in(browser, console, "admin")
    for link, heading in (
        ("Policies", "Policies"),
        ("Do-not-disturb", "Do-not-disturb"),
        ("Users", "Users"),
        ("Audit", "Audit trail"),
        ("Import / export", "Import and export"),
    ):
        page.get_by_role("link", name=link, exact=True).click()  # type: ignore[attr-defined]
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()  # type: ignore[attr-defined]
        shot(page, heading.lower().replace(" ", "-").replace("/", ""))
    rules = tmp_path / "rules.csv"
    rules.write_text(
        "kind,number,reason\n"
        + "".join(f"block,+1555091{n:04d},imported in the browser\n" for n in range(500))
    )
    page.get_by_label("File").set_input_files(str(rules))  # type: ignore[attr-defined]
    page.get_by_role("button", name="Import").click()  # type: ignore[attr-defined]
    page.get_by_text("imported 500 block").wait_for(timeout=15000)  # type: ignore[attr-defined]
    shot(page, "import-done")


def test_a_users_page_fits_a_phone(app: App, console: str, browser: object) -> None:
    assert call(app, "+15550900020", "201") == "200 OK"
    app.rows("SELECT id FROM call_log WHERE caller = '+15550900020'", at_least=1)
    page = log_in(browser, console, "user201", viewport={"width": 390, "height": 844})
    assert page.get_by_role("heading", name="Extension 201").is_visible()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Switch do-not-disturb on").click()  # type: ignore[attr-defined]
    assert "do-not-disturb on" in page.get_by_role("status").inner_text()  # type: ignore[attr-defined]
    assert call(app, "+15550900021", "201") == "608 Rejected"
    page.get_by_role("button", name="Switch do-not-disturb off").click()  # type: ignore[attr-defined]
    assert call(app, "+15550900022", "201") == "200 OK"
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 390, f"the extension page scrolls sideways on a phone ({width}px)"
    shot(page, "extension-201-phone")


def test_an_admin_adds_an_entry_by_keyboard_on_a_phone(console: str, browser: object) -> None:
    page = log_in(browser, console, "admin", viewport={"width": 390, "height": 844})
    page.goto(f"{console}/lists/allow")  # type: ignore[attr-defined]
    number = page.get_by_label("Number or prefix (+1900*)")  # type: ignore[attr-defined]
    number.focus()
    page.keyboard.type("+15550900030")  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    assert page.evaluate("document.activeElement.id") == "allow-extension"  # type: ignore[attr-defined]
    page.keyboard.type("201")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]
    assert "added allow" in page.get_by_role("status").inner_text()  # type: ignore[attr-defined]
    for path in ("/lists/allow", "/calls", "/policies", "/dnd"):
        page.goto(f"{console}{path}")  # type: ignore[attr-defined]
        width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    shot(page, "dnd-phone")
