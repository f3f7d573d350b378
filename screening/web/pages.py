"""The console's admin pages, and the list and DND forms users have for their extension:
small route functions over the service layer (the CLI's checks, messages and operations);
templates hold no logic. Every change is a POST with the session's CSRF token, is audited,
and answers with a redirect (so a reload never repeats it) or the form again with the error.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from screening.core.decision import PolicyKind
from screening.core.errors import Forbidden, InvalidInput, NotFound, ScreeningError
from screening.service import calls as call_log
from screening.service import csvfile, lists, ops, parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, csrf_refused, said

log = logging.getLogger(__name__)

Page = Callable[[Request], Awaitable[Response]]
#: The largest CSV upload (a million-entry file is the CLI's job: `screening import`).
MAX_UPLOAD = 64 * 1024 * 1024
PER_PAGE = 50
#: Import jobs whose pages are kept (each is a few counters).
MAX_JOBS = 20


@dataclass
class ImportJob:
    """One CSV import running on a thread; its page refreshes itself until it is done."""

    lines: int
    done: int = 0
    result: str = ""
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return bool(self.result or self.error)


def routes() -> list[Route]:
    """The pages' routes; each handler finds the console on request.app.state."""
    return [
        Route("/lists/{kind}", list_page, methods=["GET"]),
        Route("/lists/{kind}", list_add, methods=["POST"]),
        Route("/lists/{kind}/{id}/remove", list_remove, methods=["POST"]),
        Route("/calls", calls_page, methods=["GET"]),
        Route("/names/{kind}", names_page, methods=["GET"]),
        Route("/names/{kind}", name_change, methods=["POST"]),
        Route("/names/{kind}/remove", name_change, methods=["POST"]),
        Route("/policies", policies_page, methods=["GET"]),
        Route("/policies", policy_set, methods=["POST"]),
        Route("/policies/remove", policy_remove, methods=["POST"]),
        Route("/dnd", dnd_page, methods=["GET"]),
        Route("/dnd", dnd_add, methods=["POST"]),
        Route("/dnd/{id}/remove", dnd_remove, methods=["POST"]),
        Route("/dnd/manual/{ext}", dnd_manual, methods=["POST"]),
        Route("/transfer", transfer_page, methods=["GET"]),
        Route("/transfer/export.csv", export_csv, methods=["GET"]),
        Route("/transfer", import_csv, methods=["POST"]),
        Route("/transfer/{job}", import_progress, methods=["GET"]),
        Route("/users", users_page, methods=["GET"]),
        Route("/users", user_add, methods=["POST"]),
        Route("/users/remove", user_remove, methods=["POST"]),
        Route("/users/tokens/{id}/revoke", token_revoke, methods=["POST"]),
        Route("/audit", audit_page, methods=["GET"]),
    ]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _jobs(request: Request) -> dict[str, ImportJob]:
    jobs: dict[str, ImportJob] = request.app.state.import_jobs
    return jobs


def admin_page(
    handler: Callable[[Request, Console, Account], Awaitable[Response]],
) -> Page:
    """A page for admins only: the handler gets the console and the admin; anyone else
    is refused (to the login page, or 403)."""

    async def page(request: Request) -> Response:
        console = _console(request)
        who, refused = console.admin(request)
        if refused is not None:
            return refused
        assert who is not None
        return await handler(request, console, who)

    return page


def admin_form(
    handler: Callable[[Request, Console, Account, dict[str, str]], Awaitable[Response]],
) -> Page:
    """An admin's form: the handler gets the console, the admin and the posted form, its
    CSRF token checked; anyone else is refused."""

    async def page(request: Request) -> Response:
        console = _console(request)
        asked = await console.admin_form(request)
        if isinstance(asked, Response):
            return asked
        return await handler(request, console, *asked)

    return page


def _redirect(path: str, **params: str) -> Response:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, 303)


# -- block and allow lists ---------------------------------------------------------------


@admin_page
async def list_page(request: Request, console: Console, who: Account) -> Response:
    kind = _kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    q = request.query_params
    error = q.get("error", "")[:300]
    actor = Actor.of(who, "console")

    def load() -> lists.EntryPage:
        return lists.page_entries(
            console.engine,
            actor,
            kind,
            scope=q.get("extension", "").strip() or None,
            number=q.get("number", ""),
            after=q.get("after"),
            limit=PER_PAGE,
        )

    try:
        page = await asyncio.to_thread(load)
    except InvalidInput as e:
        page, error = lists.EntryPage([], None), said(e)
    next_url = None
    if page.next is not None:
        next_url = "?" + urlencode(
            {
                "number": q.get("number", ""),
                "extension": q.get("extension", ""),
                "after": parse.encode_cursor(page.next),
            }
        )
    return console.page(
        request,
        "lists.html",
        400 if error else 200,
        user=who,
        kind=kind,
        entries=page.entries,
        next_url=next_url,
        search=q.get("number", ""),
        scope=q.get("extension", ""),
        message=q.get("done", "")[:300],
        error=error,
    )


async def list_add(request: Request) -> Response:
    console = _console(request)
    kind = _kind(request.path_params["kind"])
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    extension = form.get("extension", "").strip() or None
    who, refused = console.extension(request, extension) if extension else console.admin(request)
    if refused is not None or kind is None:
        return refused or PlainTextResponse("no such list", 404)
    assert who is not None
    target = _back(form, f"/lists/{kind}")
    try:
        entry, created = await asyncio.to_thread(
            ops.add_entry,
            console.engine,
            kind,
            form.get("number", ""),
            console.region,
            extension=extension,
            code=form.get("code") or None,
            reason=form.get("reason") or None,
            source="console",
            expires=form.get("expires") or None,
            zone=console.zone,
            by=Actor.of(who, "console"),
        )
    except InvalidInput as e:
        return _redirect(target, error=said(e))
    return _redirect(target, done=f"{'added' if created else 'updated'} {entry.describe()}")


async def list_remove(request: Request) -> Response:
    console = _console(request)
    kind = _kind(request.path_params["kind"])
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    try:
        entry_id = parse.parse_id(str(request.path_params["id"]))
    except InvalidInput:
        kind = None
    if kind is None:
        return PlainTextResponse("no such entry", 404)
    who = console.account(request)
    if who is None:
        return RedirectResponse("/login", 303)
    actor = Actor.of(who, "console")
    try:
        removed = await asyncio.to_thread(lists.remove_entry, console.engine, actor, kind, entry_id)
    except NotFound:
        return PlainTextResponse("no such entry", 404)
    except Forbidden as e:
        return console.forbidden(request, who, e)
    return _redirect(_back(form, f"/lists/{kind}"), done=f"removed {removed.describe()}")


# -- the call log ------------------------------------------------------------------------


@admin_page
async def calls_page(request: Request, console: Console, who: Account) -> Response:
    q = request.query_params
    error = ""
    actor = Actor.of(who, "console")

    def load() -> call_log.CallPage:
        wanted = call_log.query_filter(console.region, q)
        return call_log.list_calls(console.engine, actor, wanted, PER_PAGE)

    try:
        page = await asyncio.to_thread(load)
    except InvalidInput as e:
        page, error = call_log.CallPage([], None), said(e)
    rows = page.calls
    next_url = None
    if page.next is not None:
        params = {k: q.get(k, "") for k in ("extension", "caller", "decision")}
        next_url = "?" + urlencode({**params, "before": str(page.next)})
    return console.page(
        request,
        "calls.html",
        400 if error else 200,
        user=who,
        calls=rows,
        next_url=next_url,
        filters={k: q.get(k, "") for k in ("extension", "caller", "decision")},
        message=q.get("done", "")[:300],
        error=error or q.get("error", "")[:300],
    )


# -- policies ----------------------------------------------------------------------------


@admin_page
async def policies_page(request: Request, console: Console, who: Account) -> Response:
    found = await asyncio.to_thread(ops.list_policies, console.engine, None)
    return console.page(
        request,
        "policies.html",
        user=who,
        policies=found,
        kinds=[k.value for k in PolicyKind],
        notes=console.notes(request),
    )


@admin_form
async def policy_set(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    try:
        new = parse.new_policy(
            form.get("kind", ""),
            form.get("action", "reject"),
            form.get("code") or None,
            form.get("extension", "").strip() or None,
            source="console",
        )
        saved, created = await asyncio.to_thread(
            ops.set_policy, console.engine, new, by=Actor.of(who, "console")
        )
    except InvalidInput as e:
        return _redirect("/policies", error=said(e))
    return _redirect("/policies", done=f"{'set' if created else 'updated'} {saved.describe()}")


@admin_form
async def policy_remove(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    try:
        kind = parse.parse_policy_kind(form.get("kind", ""), "kind")
        ext = form.get("extension", "").strip() or None
        removed = await asyncio.to_thread(
            ops.remove_policy, console.engine, kind, ext, by=Actor.of(who, "console")
        )
    except (InvalidInput, NotFound) as e:
        return _redirect("/policies", error=said(e))
    return _redirect("/policies", done=f"removed {removed.describe()}")


# -- do-not-disturb ----------------------------------------------------------------------


@admin_page
async def dnd_page(request: Request, console: Console, who: Account) -> Response:
    wanted = request.query_params.get("extension", "").strip()
    notes = console.notes(request)
    try:
        extension = parse.parse_extension(wanted, "extension") if wanted else None
    except InvalidInput as e:
        extension, notes = None, {**notes, "error": said(e)}
    actor = Actor.of(who, "console")
    windows, manual = await asyncio.to_thread(lists.list_dnd, console.engine, actor, extension)
    return console.page(
        request,
        "dnd.html",
        user=who,
        windows=windows,
        manual=manual,
        wanted=wanted,
        notes=notes,
    )


# -- caller-name entries -----------------------------------------------------------------


@admin_page
async def names_page(request: Request, console: Console, who: Account) -> Response:
    kind = _kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    found = await asyncio.to_thread(ops.list_names, console.engine, kind, None)
    return console.page(
        request, "names.html", user=who, kind=kind, names=found, notes=console.notes(request)
    )


@admin_form
async def name_change(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    """Add (POST /names/KIND) or remove (POST /names/KIND/remove) a name entry."""
    kind = _kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    extension = form.get("extension", "").strip() or None
    try:
        if request.url.path.endswith("/remove"):
            entry = await asyncio.to_thread(
                ops.remove_name,
                console.engine,
                kind,
                form.get("pattern", ""),
                extension,
                by=Actor.of(who, "console"),
            )
            verb = "removed"
        else:
            new = parse.new_name(
                kind,
                form.get("pattern", ""),
                extension=extension,
                code=form.get("code") or None,
                reason=form.get("reason") or None,
                source="console",
            )
            entry, created = await asyncio.to_thread(
                ops.save_name, console.engine, new, by=Actor.of(who, "console")
            )
            verb = "added" if created else "updated"
    except (InvalidInput, NotFound) as e:
        return _redirect(f"/names/{kind}", error=said(e))
    return _redirect(f"/names/{kind}", done=f"{verb} {entry.describe()}")


async def dnd_add(request: Request) -> Response:
    console = _console(request)
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    extension = form.get("extension", "").strip()
    who, refused = console.extension(request, extension)
    if refused is not None:
        return refused
    assert who is not None
    target = _back(form, "/dnd")
    try:
        window = await asyncio.to_thread(
            ops.add_dnd,
            console.engine,
            extension,
            form.get("days", ""),
            form.get("from", ""),
            form.get("to", ""),
            form.get("tz") or console.zone,
            by=Actor.of(who, "console"),
        )
    except InvalidInput as e:
        return _redirect(target, error=said(e))
    return _redirect(target, done=f"added {window.describe()}")


async def dnd_remove(request: Request) -> Response:
    console = _console(request)
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    raw = str(request.path_params["id"])
    try:
        found_id = parse.parse_id(raw)
    except InvalidInput:
        return PlainTextResponse("no such schedule", 404)
    who = console.account(request)
    if who is None:
        return RedirectResponse("/login", 303)
    actor = Actor.of(who, "console")
    try:
        removed = await asyncio.to_thread(lists.remove_dnd, console.engine, actor, found_id)
    except NotFound:
        return PlainTextResponse("no such schedule", 404)
    except Forbidden as e:
        return console.forbidden(request, who, e)
    return _redirect(_back(form, "/dnd"), done=f"removed {removed.describe()}")


async def dnd_manual(request: Request) -> Response:
    """Manual DND on or off for one extension (what *78 / *79 do)."""
    console = _console(request)
    extension = str(request.path_params["ext"])
    asked = await console.extension_form(request, extension)
    if isinstance(asked, Response):
        return asked
    who, form = asked
    target = _back(form, "/dnd")
    try:
        ext = parse.parse_extension(extension, "extension")
        if form.get("on") == "1":
            now = datetime.now(UTC)
            raw = form.get("until", "").strip()
            until = parse.parse_until(raw, now, console.zone) if raw else None
            rule = await asyncio.to_thread(
                ops.dnd_on, console.engine, ext, until, "console", now, by=Actor.of(who, "console")
            )
            detail = rule.describe()
            return _redirect(target, done=f"do-not-disturb on: {detail}")
        await asyncio.to_thread(ops.dnd_off, console.engine, ext, by=Actor.of(who, "console"))
    except InvalidInput as e:
        return _redirect(target, error=said(e))
    return _redirect(target, done=f"do-not-disturb off for extension {ext}")


# -- import and export -------------------------------------------------------------------


@admin_page
async def transfer_page(request: Request, console: Console, who: Account) -> Response:
    return console.page(
        request, "transfer.html", user=who, error=request.query_params.get("error", "")[:300]
    )


@admin_page
async def export_csv(request: Request, console: Console, who: Account) -> Response:
    out = io.StringIO()
    counts = await asyncio.to_thread(csvfile.export, console.engine, out)
    console.audit(who, "export", ", ".join(f"{n} {k}" for k, n in counts.items()))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="screening-{stamp}.csv"'},
    )


@admin_page
async def import_csv(request: Request, console: Console, who: Account) -> Response:
    # The token rides in the form's URL, so that it is checked before a byte of the file
    # is read (the form's hidden field still carries it, for older pages).
    sent, expected = request.query_params.get("csrf", ""), request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        return csrf_refused()
    form = await request.form(max_part_size=MAX_UPLOAD)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return _redirect("/transfer", error="file: choose a CSV file to import")
    if upload.size is not None and upload.size > MAX_UPLOAD:
        mb = MAX_UPLOAD // 2**20
        return _redirect(
            "/transfer",
            error=f"file: expected at most {mb} MB; larger files: `screening import`",
        )
    raw = await upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _redirect("/transfer", error="file: expected UTF-8 text (a CSV file)")
    lines = csvfile.read_text(io.StringIO(text))
    job_id = secrets.token_urlsafe(12)
    job = ImportJob(len(lines))
    _jobs(request)[job_id] = job
    while len(_jobs(request)) > MAX_JOBS:  # the oldest finished ones go first
        oldest = next((k for k, j in _jobs(request).items() if j.finished), None)
        if oldest is None:
            break
        del _jobs(request)[oldest]

    def run() -> None:
        def tick(n: int) -> None:
            job.done += n

        try:
            plan = csvfile.import_lines(console.engine, lines, console.region, progress=tick)
        except ScreeningError as e:
            job.error = said(e)
            return
        except Exception as e:  # the page must say it failed, not spin forever
            log.exception("console import failed")
            job.error = f"the import failed ({type(e).__name__}); nothing was written"
            return
        counts = (
            f"{len(plan.block)} block, {len(plan.allow)} allow, {len(plan.dnd)} dnd, "
            f"{len(plan.names)} name, {len(plan.policies)} policy rows"
        )
        console.audit(who, "import", f"{upload.filename}: {counts}")
        job.result = f"imported {counts} ({plan.format} format)"

    threading.Thread(target=run, name="console-import", daemon=True).start()
    return RedirectResponse(f"/transfer/{job_id}", 303)


@admin_page
async def import_progress(request: Request, console: Console, who: Account) -> Response:
    job = _jobs(request).get(str(request.path_params["job"]))
    if job is None:
        return PlainTextResponse("no such import (the console restarted?)", 404)
    return console.page(request, "import.html", user=who, job=job)


# -- accounts and the audit trail ----------------------------------------------------------


@admin_page
async def users_page(request: Request, console: Console, who: Account) -> Response:
    return console.page(
        request,
        "users.html",
        user=who,
        users=await asyncio.to_thread(console.accounts.all),
        tokens=await asyncio.to_thread(console.accounts.tokens),
        notes=console.notes(request),
    )


@admin_form
async def token_revoke(
    request: Request, console: Console, who: Account, _form: dict[str, str]
) -> Response:
    try:
        token_id = parse.parse_id(str(request.path_params["id"]))
        gone = await asyncio.to_thread(
            console.accounts.revoke_token, token_id, datetime.now(UTC), who.name
        )
    except (InvalidInput, NotFound):
        return PlainTextResponse("no such token", 404)
    return _redirect("/users", done=f"revoked token #{gone.id} of {gone.user}")


@admin_form
async def user_add(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    try:
        name, role, extension = parse.new_user(
            form.get("name", ""), form.get("role", ""), form.get("extension", "") or None
        )
        now = datetime.now(UTC)
        await asyncio.to_thread(
            console.accounts.add,
            name,
            role,
            extension,
            form.get("password", ""),
            now,
            who.name,
        )
    except InvalidInput as e:
        return _redirect("/users", error=said(e))
    return _redirect("/users", done=f"added {role} {name}")


@admin_form
async def user_remove(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    name = form.get("name", "")
    if name == who.name:
        return _redirect("/users", error="name: you cannot remove yourself")
    try:
        await asyncio.to_thread(console.accounts.remove, name, datetime.now(UTC), who.name)
    except NotFound as e:
        return _redirect("/users", error=said(e))
    return _redirect("/users", done=f"removed {name}")


@admin_page
async def audit_page(request: Request, console: Console, who: Account) -> Response:
    trail = await asyncio.to_thread(console.accounts.trail, 200)
    return console.page(request, "audit.html", user=who, trail=trail)


def _kind(raw: object) -> Literal["block", "allow"] | None:
    return "block" if raw == "block" else "allow" if raw == "allow" else None


def _back(form: dict[str, str], default: str) -> str:
    """Where a form returns to: a path on this site only."""
    target = form.get("back", "")
    return target if target.startswith("/") and not target.startswith("//") else default
