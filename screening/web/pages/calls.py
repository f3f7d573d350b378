"""The call log, newest first, filtered as the CLI and the API filter it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from screening.core.errors import InvalidInput
from screening.service import calls as call_log
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, said
from screening.web.pages.common import (
    PER_PAGE,
    admin_page,
)


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
