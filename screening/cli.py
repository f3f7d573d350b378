"""The `screening` command: thin wrappers that parse, call the library, and print."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Literal

import click
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from screening import admin, config, migrate
from screening.db import make_engine
from screening.errors import DatabaseError, ScreeningError

log = logging.getLogger("screening")


class Context:
    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self._config: config.Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> config.Config:
        if self._config is None:
            self._config = config.load()
        return self._config

    def engine(self, check_schema: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
            if check_schema:
                migrate.require_current(self._engine)
        return self._engine


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="screening")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Call screening for Asterisk: reject unwanted callers with SIP 607/608.

    Settings come from SCREENING_* environment variables (see README).
    """
    ctx.obj = Context(debug)


# -- db ---------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create or upgrade the database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create the tables, or bring them up to this version."""
    engine = ctx.engine(check_schema=False)
    before = migrate.current(engine)
    migrate.upgrade(engine)
    after = migrate.current(engine)
    where = make_url(ctx.config.database_url).render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Show the schema revision of the database."""
    engine = ctx.engine(check_schema=False)
    have, want = migrate.current(engine), migrate.head()
    state = "up to date" if have == want else f"behind: run `screening db upgrade` (to {want})"
    click.echo(f"{have or 'empty'} ({state})")


# -- block / allow ----------------------------------------------------------------------------

_NUMBER_HELP = "NUMBER is a phone number in any common format, or a prefix ending in * (+1900*)."


def _print_entry(entry: Any, created: bool) -> None:
    verb = "added" if created else "updated"
    click.echo(f"{verb} {entry.describe()}" + (f" -> {entry.sip_code}" if entry.sip_code else ""))


@cli.group()
def block() -> None:
    """Callers to reject (607 Unwanted by default)."""


@block.command("add", epilog=_NUMBER_HELP)
@click.argument("number")
@click.option("--for", "extension", metavar="EXT", help="Only for calls to this extension.")
@click.option(
    "--code",
    default="607",
    show_default=True,
    metavar="607|608",
    help="607: spam (RFC 8197); 608: refused by policy (RFC 8688).",
)
@click.option("--reason", help="Why; shown in the log and to other admins.")
@pass_ctx
def block_add(
    ctx: Context, number: str, extension: str | None, code: str, reason: str | None
) -> None:
    """Reject calls from NUMBER (or a prefix)."""
    admin.parse_code(code)  # validate before touching the database
    _add(ctx, "block", number, extension, code, reason)


@cli.group()
def allow() -> None:
    """Callers that always get through, even past blocks and do-not-disturb."""


@allow.command("add", epilog=_NUMBER_HELP)
@click.argument("number")
@click.option("--for", "extension", metavar="EXT", help="Only for calls to this extension.")
@click.option("--reason", help="Why; shown to other admins.")
@pass_ctx
def allow_add(ctx: Context, number: str, extension: str | None, reason: str | None) -> None:
    """Always let NUMBER (or a prefix) through."""
    _add(ctx, "allow", number, extension, None, reason)


def _add(
    ctx: Context,
    kind: Literal["block", "allow"],
    number: str,
    extension: str | None,
    code: str | None,
    reason: str | None,
) -> None:
    # Parse everything before opening the database, so bad input never needs a connection.
    from screening.numbers import parse_entry

    parse_entry(number, ctx.config.default_region)
    if extension is not None:
        admin.parse_extension(extension)
    admin.parse_reason(reason)
    entry, created = admin.add_entry(
        ctx.engine(),
        kind,
        number,
        ctx.config.default_region,
        extension=extension,
        code=code,
        reason=reason,
    )
    _print_entry(entry, created)


# -- dnd --------------------------------------------------------------------------------------


@cli.group()
def dnd() -> None:
    """Do-not-disturb schedules: callers get 608 Rejected inside the window."""


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
    """Add a do-not-disturb window for extension EXT."""
    admin.parse_extension(ext, "EXT")
    admin.parse_days(days)
    admin.parse_hhmm(start, "--from")
    admin.parse_hhmm(end, "--to")
    if tz:
        admin.parse_tz(tz)
    window = admin.add_dnd(ctx.engine(), ext, days, start, end, tz)
    click.echo(f"added {window.describe()}")


# -- serve ------------------------------------------------------------------------------------


@cli.command()
@pass_ctx
def serve(ctx: Context) -> None:
    """Run the ARI Stasis application (until SIGTERM or Ctrl-C)."""
    from screening.app import serve as run_app

    logging.basicConfig(
        level=logging.DEBUG if ctx.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "websockets", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = ctx.config
    engine = ctx.engine()
    log.info(
        "screening %s: database %s, region %s",
        __import__("screening").__version__,
        make_url(cfg.database_url).render_as_string(hide_password=True),
        cfg.default_region,
    )
    asyncio.run(run_app(cfg, engine))


# -- entry point ------------------------------------------------------------------------------


def _fail(message: str, code: int) -> None:
    click.echo(f"screening: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="screening", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        _fail(e.format_message() + hint, 2)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except ScreeningError as e:
        if debug:
            raise
        _fail(str(e), e.exit_code)
    except OperationalError as e:
        if debug:
            raise
        _fail(f"cannot use the database: {str(e.orig).strip().splitlines()[0]}", 1)
    except SQLAlchemyError as e:
        if debug:
            raise
        _fail(f"database error: {str(e).splitlines()[0]}", 1)


__all__ = ["DatabaseError", "cli", "main"]
