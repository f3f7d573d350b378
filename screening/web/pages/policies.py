"""Policies: global or for one extension."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from screening.core.decision import PolicyKind
from screening.core.errors import InvalidInput, NotFound
from screening.service import ops, parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, said
from screening.web.pages.common import (
    admin_form,
    admin_page,
    redirect,
)


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
        return redirect("/policies", error=said(e))
    return redirect("/policies", done=f"{'set' if created else 'updated'} {saved.describe()}")


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
        return redirect("/policies", error=said(e))
    return redirect("/policies", done=f"removed {removed.describe()}")
