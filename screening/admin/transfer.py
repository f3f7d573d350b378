"""`screening import` and `screening export`: rules to and from CSV (and FreePBX's
blacklist export)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from screening.admin.common import Context, pass_ctx
from screening.service import csvfile


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing when piped or in scripts."""
    if not sys.stderr.isatty() or total < 1:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


@click.command(
    "import",
    epilog=(
        "CSV columns (header row, any order): kind (block|allow|dnd|policy, default block), "
        "number, name (a caller-name pattern, for block and allow rows without a number), "
        "extension (empty: global), code (607|608), reason, source, expires "
        "(YYYY-MM-DD or ISO 8601 UTC), days, from, to, tz, policy (its KIND) and action "
        "(reject|challenge|continue) for policy rows. A file without that header is read "
        "as FreePBX's blacklist export: one number per line, optionally followed by a comma and "
        "a description."
    ),
)
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@pass_ctx
def import_(ctx: Context, file: TextIO) -> None:
    """Import rules from FILE (or - for standard input). All or nothing."""
    t0 = time.perf_counter()
    lines = csvfile.read_text(file)
    engine = ctx.engine()
    with _progress("importing", len(lines)) as tick:
        plan = csvfile.import_lines(engine, lines, ctx.region, progress=tick)
    name = getattr(file, "name", "-")
    name = "standard input" if name in ("-", "<stdin>") else name
    counts = [f"{len(plan.block)} block", f"{len(plan.allow)} allow", f"{len(plan.dnd)} dnd"]
    counts += [f"{len(plan.names)} name"] if plan.names else []
    counts += [f"{len(plan.policies)} policy"] if plan.policies else []
    click.echo(
        f"imported {', '.join(counts)} rows "
        f"from {name} ({plan.format} format) in {time.perf_counter() - t0:.1f}s"
    )


@click.command("export")
@click.option(
    "--kind",
    type=click.Choice(["block", "allow", "dnd", "policy"]),
    help="Only this kind [default: all four]; block and allow include their name entries.",
)
@click.argument("file", type=click.File("w", encoding="utf-8", atomic=True), default="-")
@pass_ctx
def export(ctx: Context, kind: str | None, file: TextIO) -> None:
    """Export rules as CSV to FILE (default: standard output), for `screening import`."""
    kinds: tuple[csvfile.Kind, ...] = (kind,) if kind else csvfile.KINDS  # type: ignore[assignment]
    counts = csvfile.export(ctx.engine(), file, kinds)
    if getattr(file, "name", "-") not in ("-", "<stdout>"):
        click.echo("exported " + ", ".join(f"{n} {k}" for k, n in counts.items()), err=True)
