"""`screening block` and `screening allow`: the two lists, of numbers, prefixes and caller
names, global or for one extension. One set of commands serves both lists."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

import click

from screening.admin.common import (
    Context,
    for_option,
    json_option,
    local,
    pass_ctx,
    print_json,
    print_records,
    table,
)
from screening.core.errors import InvalidInput
from screening.service import lists as list_service
from screening.service import ops, parse, views
from screening.service.actor import CLI
from screening.store.lists import ListedEntry
from screening.store.policies import NameKind

Kind = Literal["block", "allow"]

name_option = click.option(
    "--name", metavar="PATTERN", help="A caller name instead of a number: '*SPAM*', 'Scam Likely'."
)
_NAME_HELP = (
    " With --name, the entry matches the caller's name (CALLERID(name)) instead, ignoring "
    "case; * and ? are wildcards. Anyone can send any name: an allow by name is weak."
)
_NUMBER_HELP = (
    "NUMBER is a phone number in any common format, or a prefix ending in * (+1900*). "
    "Adding a number that is already listed for the same scope updates it."
)
_ADD_HELP = {
    "block": "Reject calls from NUMBER (or a prefix).",
    "allow": "Always let NUMBER (or a prefix) through, past blocks and do-not-disturb.",
}


def _list_group(kind: Kind, doc: str) -> click.Group:
    group = click.Group(kind, help=doc)
    for command in (_add_command(kind), _list_command(kind), _remove_command(kind)):
        group.add_command(command)
    return group


def _add_command(kind: Kind) -> click.Command:
    @click.command("add", help=_ADD_HELP[kind], epilog=_NUMBER_HELP + _NAME_HELP)
    @click.argument("number", required=False)
    @name_option
    @for_option
    @click.option("--reason", help="Why; shown in the log and to other admins.")
    @click.option(
        "--expires",
        metavar="WHEN",
        help="Stop counting after 30d / 12h / 2w, or after a date YYYY-MM-DD (inclusive).",
    )
    @pass_ctx
    def add(
        ctx: Context,
        number: str | None,
        name: str | None,
        extension: str | None,
        reason: str | None,
        expires: str | None,
        code: str | None = None,
    ) -> None:
        # Checked before the database is opened: bad input needs no connection.
        now = datetime.now(UTC)
        if _number_or_name(number, name) == "name":
            assert name is not None
            if expires is not None:
                raise InvalidInput("--expires", "applies to numbers only, not to --name")
            new_name = parse.new_name(kind, name, extension=extension, code=code, reason=reason)
            named, created = ops.save_name(ctx.engine(), new_name, now, by=CLI)
            code_text = f" -> {named.sip_code}" if named.sip_code else ""
            click.echo(f"{'added' if created else 'updated'} {named.describe()}{code_text}")
            return
        assert number is not None
        new = parse.new_entry(
            kind,
            number,
            ctx.region,
            now,
            extension=extension,
            code=code,
            reason=reason,
            expires=expires,
        )
        entry, created = ops.save_entry(ctx.engine(), kind, new, now, by=CLI)
        code_text = f" -> {entry.sip_code}" if entry.sip_code else ""
        until = f", expires {local(entry.expires_at)}" if entry.expires_at else ""
        click.echo(f"{'added' if created else 'updated'} {entry.describe()}{code_text}{until}")

    if kind == "allow":
        return add
    # Only a block entry carries a SIP code.
    return click.option(
        "--code",
        default="607",
        show_default=True,
        metavar="607|608",
        help="607: the caller is spam (RFC 8197); 608: refused by policy (RFC 8688).",
    )(add)


def _list_command(kind: Kind) -> click.Command:
    @click.command("list")
    @for_option
    @click.option("--names", is_flag=True, help="List the caller-name entries instead.")
    @json_option
    @pass_ctx
    def list_(ctx: Context, extension: str | None, names: bool, as_json: bool) -> None:
        """List entries with how many calls each has decided, and when it last did."""
        if extension is not None:
            parse.parse_extension(extension)
        if names:
            _list_names(ctx, kind, extension, as_json)
            return
        entries, named = list_service.all_entries(ctx.engine(), kind, extension)
        if as_json:
            print_json([views.entry_json(e) for e in entries])
            return
        more = f"\n{named} name entries: `screening {kind} list --names`" if named else ""
        if not entries:
            scope = f" for extension {extension}" if extension else ""
            click.echo(f"no {kind} entries{scope}{more}")
            return
        headers = ["ID", "NUMBER", "NORMALISED", "SCOPE"]
        headers += ["CODE"] if kind == "block" else []
        headers += ["REASON", "SOURCE", "CREATED", "EXPIRES", "CALLS", "LAST CALL"]
        table(headers, [_entry_row(kind, e) for e in entries])
        if more:
            click.echo(more)

    return list_


def _entry_row(kind: Kind, e: ListedEntry) -> list[object]:
    row: list[object] = [
        e.id,
        e.entered,
        e.value + ("*" if e.is_prefix else ""),
        e.extension or "global",
    ]
    row += [e.sip_code] if kind == "block" else []
    row += [
        e.reason,
        e.source,
        local(e.created_at),
        local(e.expires_at),
        e.hits,
        local(e.last_hit),
    ]
    return row


def _remove_command(kind: Kind) -> click.Command:
    @click.command(
        "remove", epilog="Name the entry by its number (and --for), as #ID, or by --name."
    )
    @click.argument("target", metavar="NUMBER|#ID", required=False)
    @name_option
    @for_option
    @pass_ctx
    def remove(ctx: Context, target: str | None, name: str | None, extension: str | None) -> None:
        """Remove an entry."""
        if _number_or_name(target, name) == "name":
            assert name is not None
            pattern = parse.parse_name_pattern(name)
            ext = parse.parse_extension(extension) if extension is not None else None
            removed = ops.remove_name(ctx.engine(), kind, pattern, ext, by=CLI)
            click.echo(f"removed {removed.describe()}")
            return
        assert target is not None
        key = parse.entry_key(target, ctx.region, extension)  # before the database is opened
        entry = ops.remove_entry(ctx.engine(), kind, key, by=CLI)
        click.echo(f"removed {entry.describe()}")

    return remove


def _number_or_name(number: str | None, name: str | None) -> Literal["number", "name"]:
    if (number is None) == (name is None):
        raise InvalidInput("NUMBER", "give a number (or prefix) or --name PATTERN, not both")
    return "number" if number is not None else "name"


def _list_names(ctx: Context, kind: NameKind, extension: str | None, as_json: bool) -> None:
    block = kind == "block"
    print_records(
        ops.list_names(ctx.engine(), kind, extension),
        as_json,
        asdict,
        f"no {kind} name entries" + (f" for extension {extension}" if extension else ""),
        ["ID", "NAME", "SCOPE"] + (["CODE"] if block else []) + ["REASON"],
        lambda e: (
            [e.id, e.pattern, e.extension or "global"]
            + ([e.sip_code] if block else [])
            + [e.reason]
        ),
    )


block = _list_group("block", "Callers to reject (607 Unwanted by default).")
allow = _list_group(
    "allow", "Callers that always get through, even past blocks and do-not-disturb."
)
