"""`screening db`: create, upgrade and inspect the schema; back up a SQLite database."""

from __future__ import annotations

import click

from screening.admin.common import Context, pass_ctx
from screening.service import ops
from screening.store import migrate


@click.group()
def db() -> None:
    """Create, upgrade and inspect the database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create the tables, or bring them up to this version."""
    engine = ctx.engine(check_schema=False)
    before = migrate.current(engine)
    migrate.upgrade(engine)
    after = migrate.current(engine)
    if before == after:
        click.echo(f"{ctx.where()}: already at revision {after}")
    else:
        click.echo(f"{ctx.where()}: upgraded from {before or 'empty'} to {after}")
    narrow = migrate.narrow_tables(engine)
    if narrow:
        click.echo(
            f"warning: tables {', '.join(narrow)} are not utf8mb4: rows with emoji in a caller "
            "name are written with the emoji replaced. To keep them, run (off-peak: each "
            f"copies its table): {migrate.widen_sql(narrow)}",
            err=True,
        )


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Show the schema revision of the database."""
    engine = ctx.engine(check_schema=False)
    have, want = migrate.current(engine), migrate.head()
    state = "up to date" if have == want else f"behind: run `screening db upgrade` (to {want})"
    click.echo(f"{have or 'empty'} ({state})")


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def db_backup(ctx: Context, file: str) -> None:
    """Copy a SQLite database to FILE while it is in use (a consistent snapshot).

    For PostgreSQL or MariaDB use pg_dump or mariadb-dump.
    """
    engine = ctx.engine()
    written = ops.backup_sqlite(engine, file)
    click.echo(f"backed up {ctx.where()} to {file} ({written / 1e6:.1f} MB)")


@db.command("history")
@pass_ctx
def db_history(ctx: Context) -> None:
    """List the schema revisions, oldest first, marking the database's."""
    have = migrate.current(ctx.engine(check_schema=False))
    for rev, message in migrate.history():
        click.echo(f"{'*' if rev == have else ' '} {rev}  {message}")
