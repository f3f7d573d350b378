"""CSV import and export. An import runs on a thread; its page refreshes itself until it
is done."""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from screening.core.errors import ScreeningError
from screening.service import csvfile
from screening.store.accounts import Account
from screening.web.console import Console, csrf_refused, said
from screening.web.pages.common import (
    admin_page,
    redirect,
)

log = logging.getLogger(__name__)

#: The largest CSV upload (a million-entry file is the CLI's job: `screening import`).
MAX_UPLOAD = 64 * 1024 * 1024
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


def _jobs(request: Request) -> dict[str, ImportJob]:
    jobs: dict[str, ImportJob] = request.app.state.import_jobs
    return jobs


@admin_page
async def transfer_page(request: Request, console: Console, who: Account) -> Response:
    return console.page(
        request, "transfer.html", user=who, error=request.query_params.get("error", "")[:300]
    )


@admin_page
async def export_csv(request: Request, console: Console, who: Account) -> Response:
    out = io.StringIO()
    counts = await asyncio.to_thread(csvfile.export, console.engine, out)
    detail = ", ".join(f"{n} {k}" for k, n in counts.items())
    await asyncio.to_thread(console.audit, who, "export", detail)
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
        return redirect("/transfer", error="file: choose a CSV file to import")
    if upload.size is not None and upload.size > MAX_UPLOAD:
        mb = MAX_UPLOAD // 2**20
        return redirect(
            "/transfer",
            error=f"file: expected at most {mb} MB; larger files: `screening import`",
        )
    raw = await upload.read()
    lines = await asyncio.to_thread(_lines, raw)  # up to 64 MB: not on the event loop
    if lines is None:
        return redirect("/transfer", error="file: expected UTF-8 text (a CSV file)")
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


def _lines(raw: bytes) -> list[str] | None:
    """The upload's CSV lines, or None when it is not UTF-8 text."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return csvfile.read_text(io.StringIO(text))
