"""`screening feed`: subscribed spam feeds (the FTC's complaint numbers, a list of numbers, or
another screening's export) whose numbers are rejected once reported often enough."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from screening.admin.common import Context, json_option, local, pass_ctx, print_json, table
from screening.admin.errors import flags
from screening.core.feeds import FORMATS
from screening.service import feeds as feed_service
from screening.service.actor import CLI

_EPILOG = (
    "Formats: ftc-dnc is the FTC's daily Do Not Call complaint file (each complaint row is one "
    "report; a URL with {date} fetches that day's file, and a day without one is normal); "
    "numbers is one number per line, # starts a comment; csv is `screening export` output "
    "(its block rows' numbers). A number takes effect once it has --min-reports reports, and "
    "drops out when no update has seen it for --keep. Allow entries always win, and an "
    "admin's block entry beats a feed."
)


@click.group("feed")
def feed() -> None:
    """Subscribed spam feeds: numbers others report, rejected after enough reports."""


@feed.command("add", epilog=_EPILOG)
@click.argument("name")
@click.argument("url")
@click.option(
    "--format", "fmt", required=True, metavar="|".join(FORMATS), help="How the file is written."
)
@click.option("--every", default="1d", show_default=True, help="How often `update --due` fetches.")
@click.option(
    "--keep", default="90d", show_default=True, help="Drop a number not seen for this long."
)
@click.option(
    "--min-reports",
    default="1",
    show_default=True,
    metavar="N",
    help="Reports a number needs before it is rejected.",
)
@click.option(
    "--code",
    default="607",
    show_default=True,
    metavar="607|608",
    help="607: the caller is spam (RFC 8197); 608: refused by policy (RFC 8688).",
)
@click.option(
    "--action",
    default="reject",
    show_default=True,
    metavar="reject|challenge",
    help="Reject the caller, or ask them to press a digit (see `screening policy`).",
)
@click.option("--for", "extension", metavar="EXT", help="Only for this extension [default: all].")
@click.option(
    "--relax",
    is_flag=True,
    help="Allow http:// and hosts that are not public (a feed on the LAN, tests).",
)
@pass_ctx
def add(
    ctx: Context,
    name: str,
    url: str,
    fmt: str,
    every: str,
    keep: str,
    min_reports: str,
    code: str,
    action: str,
    extension: str | None,
    relax: bool,
) -> None:
    """Subscribe to the feed at URL as NAME (fetched by `feed update`)."""
    with flags(
        url="URL", format="--format", every="--every", keep="--keep", min_reports="--min-reports"
    ):
        new = feed_service.new_feed(
            name,
            url,
            fmt,
            every=every,
            keep=keep,
            min_reports=min_reports,
            code=code,
            action=action,
            extension=extension,
            relaxed=relax,
        )
    added = feed_service.add_feed(ctx.engine(), new, datetime.now(UTC), by=CLI)
    click.echo(
        f"added feed {added.name} ({added.format}, {added.url}); "
        f"fetch it now with `screening feed update {added.name}`"
    )


@feed.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """List the feeds: when each was last checked and updated, and its numbers in force."""
    found = feed_service.list_feeds(ctx.engine())
    if as_json:
        print_json([f.to_json() for f in found])
        return
    if not found:
        click.echo("no feeds (add one: `screening feed add NAME URL --format ...`)")
        return
    rows = [
        [
            f.name,
            f.format,
            f.extension or "global",
            f.sip_code if f.action == "reject" else "challenge",
            f.numbers_in_force,
            local(f.last_checked_at),
            local(f.last_updated_at),
            "error" if f.last_error else "ok",
        ]
        for f in found
    ]
    table(["NAME", "FORMAT", "SCOPE", "CODE", "IN FORCE", "CHECKED", "UPDATED", "STATE"], rows)


@feed.command("show")
@click.argument("name")
@json_option
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one feed: its settings, its last update and its last error."""
    f = feed_service.show_feed(ctx.engine(), name)
    if as_json:
        print_json(f.to_json())
        return
    data = f.to_json()
    for key in ("last_checked_at", "last_updated_at"):
        value = getattr(f, key)
        data[key] = local(value) if value else None
    table(None, [[k.replace("_", " ") + ":", "-" if v is None else v] for k, v in data.items()])


@feed.command("update", epilog="Exits 1 when an update failed; the feed then stays as it was.")
@click.argument("names", metavar="[NAME]...", nargs=-1)
@click.option("--due", is_flag=True, help="Every feed whose --every has passed (the timer's).")
@json_option
@pass_ctx
def update(ctx: Context, names: tuple[str, ...], due: bool, as_json: bool) -> None:
    """Fetch feeds now (conditional requests: an unchanged file is not read again)."""
    if due == bool(names):
        raise click.UsageError("give NAME... or --due, not both")
    engine, now = ctx.engine(), datetime.now(UTC)
    if due:
        results = feed_service.update_due(engine, now, ctx.region)
    else:
        results = []
        for name in names:
            with _progress(name) as tick:
                results.append(
                    feed_service.update_feed(engine, name, now, ctx.region, progress=tick)
                )
    if as_json:
        print_json([r.to_json() for r in results])
    else:
        for r in results:
            click.echo(_summary(r))
    if any(r.status == "failed" for r in results):
        sys.exit(1)


def _summary(r: feed_service.UpdateResult) -> str:
    if r.status == "failed":
        return f"feed {r.name}: update failed, nothing changed: {r.error}"
    if r.status == "not-modified":
        return f"feed {r.name}: not modified since the last update; {r.in_force} numbers in force"
    if r.status == "no-file":
        return f"feed {r.name}: no file published for today; {r.in_force} numbers in force"
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(r.skipped.items()))
    return (
        f"feed {r.name}: {r.rows} rows, {r.reports} reports"
        + (f" (skipped: {skipped})" if skipped else "")
        + f"; {r.numbers} numbers, {r.in_force} in force, {r.dropped} dropped"
    )


@contextmanager
def _progress(name: str) -> Iterator[feed_service.Progress | None]:
    """A progress bar of the bytes received, when standard output is a terminal."""
    if not sys.stdout.isatty():
        yield None
        return
    bar: list[object] = []

    def tick(length: int | None, received: int) -> None:
        if not bar:
            made = click.progressbar(length=length or 0, label=f"feed {name}", show_pos=True)
            made.__enter__()
            bar.append(made)
        if received:
            bar[0].update(received)  # type: ignore[attr-defined]

    try:
        yield tick
    finally:
        if bar:
            bar[0].__exit__(None, None, None)  # type: ignore[attr-defined]


@feed.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Unsubscribe from a feed; its numbers stop counting at once."""
    gone = feed_service.remove_feed(ctx.engine(), name, datetime.now(UTC), by=CLI)
    click.echo(f"removed feed {gone.name} and its {gone.numbers_in_force} numbers in force")
