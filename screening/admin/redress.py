"""`screening redress`: what a caller's network gets when a rejection names whom to contact
(the signed jCard of RFC 8688, 603+'s Reason), and what stands in its way."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from screening import config
from screening.admin.common import Context, json_option, pass_ctx, print_json, table
from screening.core.errors import ScreeningError
from screening.service import redress
from screening.service.redress import Report

#: The settings that shape what the network hears.
PREFIXES = ("redress.", "sip.")


@click.group("redress")
def redress_group() -> None:
    """Whom a wrongly blocked caller can contact (RFC 8688 jCard, 603+)."""


@redress_group.command("show")
@json_option
@pass_ctx
def redress_show(ctx: Context, as_json: bool) -> None:
    """Print what a caller's network gets: the settings, the Call-Info header and the codes
    that carry it, the jCard, its JWS header, 603+'s Reason, and every problem. Exits 1
    when redress.jcard_url is set but a caller's network could not verify the jCard."""
    loaded = ctx.loaded
    shown = {
        s.key: (config.shown(s, loaded.values[s.key]), loaded.sources[s.key])
        for s in config.SETTINGS
        if s.key.startswith(PREFIXES)
    }
    found = redress.report(ctx.config, time.time())
    if as_json:
        print_json({"settings": {k: v for k, (v, _) in shown.items()}, **found.to_json()})
    else:
        table(["KEY", "VALUE", "FROM"], [(k, v or '""', where) for k, (v, where) in shown.items()])
        _print(found)
    if not found.usable:
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        raise ScreeningError(f"the redress jCard is not usable: {found.problems[0]}{more}")


def _print(found: Report) -> None:
    click.echo()
    for code in ("607", "608"):
        carried = found.call_info if found.call_info and code in found.carried_on else None
        click.echo(f"{code}: {'Call-Info: ' + carried if carried else 'no Call-Info'}")
    kinds = [item for item in found.carried_on if not item.isdigit()]
    if found.call_info and kinds:
        click.echo(f"and any rejection by {', '.join(kinds)}: Call-Info: {found.call_info}")
    sent = "sent" if found.provider_mode else "not sent: sip.provider_mode is off"
    click.echo(f"603+ Reason ({sent}): {found.reason_603}")
    if found.certificate:
        cert = found.certificate
        click.echo(f"certificate: {cert['subject']}, valid until {cert['not_after']}")
    click.echo("\njCard:")
    click.echo(_jcard_text(found.jcard))
    click.echo("\nJWS header:")
    click.echo(json.dumps(found.header, indent=2, ensure_ascii=False))
    if found.jws:
        click.echo(f"\nJWS (signed now, as /redress/jcard serves it):\n{found.jws}")
    click.echo()
    if not found.problems:
        click.echo("problems: none" if found.configured else "redress: not set up")
    for problem in found.problems:
        click.echo(f"problem: {problem}")


def _jcard_text(card: list[Any]) -> str:
    """The jCard as JSON with one property a line: easier to read than one value a line."""
    name, props = card
    lines = ",\n".join(f"  {json.dumps(p, ensure_ascii=False)}" for p in props)
    return f"[{json.dumps(name)}, [\n{lines}\n]]"
