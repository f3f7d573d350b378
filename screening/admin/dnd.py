"""`screening dnd`: do-not-disturb, by weekly schedule or switched on and off by hand, for
one extension at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from screening.admin.common import Context, json_option, local, pass_ctx, print_json, table
from screening.core.decision import DndWindow, ManualDnd
from screening.service import lists as list_service
from screening.service import ops, parse, views
from screening.service.actor import CLI
from screening.service.views import iso


@click.group()
def dnd() -> None:
    """Do-not-disturb: callers get 608 Rejected (allowed callers still get through)."""


@dnd.command("add")
@click.argument("ext")
@click.option("--days", required=True, help="mon,tue,... or ranges like mon-fri, or all.")
@click.option("--from", "start", required=True, metavar="HH:MM", help="Window start.")
@click.option(
    "--to",
    "end",
    required=True,
    metavar="HH:MM",
    help="Window end; earlier than --from crosses midnight; equal means all day.",
)
@click.option(
    "--tz", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin [default: this host's]."
)
@pass_ctx
def dnd_add(ctx: Context, ext: str, days: str, start: str, end: str, tz: str | None) -> None:
    """Add a weekly do-not-disturb window for extension EXT."""
    new = parse.new_dnd(ext, days, start, end, tz)  # before the database is opened
    window = ops.save_dnd(ctx.engine(), new, by=CLI)
    click.echo(f"added {window.describe()}")


@dnd.command("list")
@click.argument("ext", required=False)
@json_option
@pass_ctx
def dnd_list(ctx: Context, ext: str | None, as_json: bool) -> None:
    """List DND schedules and manual DND, for all extensions or for EXT."""
    if ext is not None:
        parse.parse_extension(ext, "EXT")
    now = datetime.now(UTC)
    windows, manual = list_service.list_dnd(ctx.engine(), CLI, ext)
    if as_json:
        print_json(_dnd_json(windows, manual, now))
        return
    if not windows and not manual:
        click.echo("no do-not-disturb" + (f" for extension {ext}" if ext else ""))
        return
    table(["ID", "EXT", "WHEN", "ACTIVE NOW"], _dnd_rows(windows, manual, now))


def _dnd_json(windows: list[DndWindow], manual: list[ManualDnd], now: datetime) -> object:
    return {
        "schedules": [{**views.window_json(w), "active_now": w.active_at(now)} for w in windows],
        "manual": [
            {
                "id": m.id,
                "extension": m.extension,
                "until": iso(m.until),
                "active_now": m.active_at(now),
            }
            for m in manual
        ],
    }


def _dnd_rows(
    windows: list[DndWindow], manual: list[ManualDnd], now: datetime
) -> list[list[object]]:
    rows: list[list[object]] = [
        [
            w.id,
            w.extension,
            w.describe().split(f"extension {w.extension} ", 1)[1],
            "yes" if w.active_at(now) else "no",
        ]
        for w in windows
    ]
    rows += [
        [
            "-",
            m.extension,
            f"manual, until {local(m.until)}" if m.until else "manual, until off",
            "yes" if m.active_at(now) else "no",
        ]
        for m in manual
    ]
    return rows


@dnd.command("remove")
@click.argument("schedule_id", metavar="ID")
@pass_ctx
def dnd_remove(ctx: Context, schedule_id: str) -> None:
    """Remove the DND schedule with this ID (see `screening dnd list`)."""
    ops.remove_dnd(ctx.engine(), schedule_id, by=CLI)
    click.echo(f"removed DND schedule {schedule_id.lstrip('#')}")


@dnd.command("on")
@click.argument("ext")
@click.option(
    "--until",
    metavar="WHEN",
    help="Switch off by itself at HH:MM (next), after 2h, or at YYYY-MM-DD HH:MM.",
)
@pass_ctx
def dnd_on(ctx: Context, ext: str, until: str | None) -> None:
    """Turn DND on for EXT now, until `screening dnd off EXT` (or --until)."""
    ext = parse.parse_extension(ext, "EXT")
    now = datetime.now(UTC)
    end = parse.parse_until(until, now) if until else None
    manual = ops.dnd_on(ctx.engine(), ext, end, now=now, by=CLI)
    click.echo(f"DND on for {ext}" + (f" until {local(manual.until)}" if manual.until else ""))


@dnd.command("off")
@click.argument("ext")
@pass_ctx
def dnd_off(ctx: Context, ext: str) -> None:
    """Turn manual DND off for EXT (schedules stay)."""
    was_on = ops.dnd_off(ctx.engine(), parse.parse_extension(ext, "EXT"), by=CLI)
    click.echo(f"DND off for {ext}" + ("" if was_on else " (it was not on)"))
