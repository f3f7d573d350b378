"""The `screening` command's entry point: the admin command groups (screening.admin), the two
call doors, `serve` (ARI) and `agi` (FastAGI), and the web console (`web`), which run until
SIGTERM or Ctrl-C; and `doctor`."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import replace

import click

from screening import __version__, config
from screening.admin import (
    calls,
    database,
    dnd,
    feeds,
    lists,
    policies,
    redress,
    settings,
    transfer,
    users,
)
from screening.admin.common import Context, pass_ctx
from screening.admin.errors import worded
from screening.config import Config, parse_listen
from screening.core.errors import ScreeningError
from screening.store.engine import database_failure

log = logging.getLogger("screening")


#: Fields a log record may carry (`extra=`) that JSON lines include: the call's identity.
CALL_FIELDS = (
    "channel",
    "caller",
    "caller_id",
    "extension",
    "outcome",
    "sip_code",
    "rule",
    "door",
    "ms",
    "digit",
)


class JsonLines(logging.Formatter):
    """One JSON object per line, for journald and log shippers: time, level, logger,
    message, the call fields when the line is about a call, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _logging(debug: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    for noisy in ("httpx", "httpcore", "websockets", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help=f"Settings file [default: SCREENING_CONFIG, else {config.DEFAULT_FILE} if present].",
)
@click.version_option(__version__, prog_name="screening")
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_file: str | None) -> None:
    """Call screening for Asterisk: reject unwanted callers with SIP 607/608.

    Settings come from a TOML file and SCREENING_* environment variables, which override
    it (`screening config show`; README "Configuration").
    """
    ctx.obj = Context(debug, config_file)
    ctx.call_on_close(ctx.obj.close)


for command in (
    settings.config_group,
    database.db,
    lists.block,
    lists.allow,
    dnd.dnd,
    policies.policy,
    calls.check,
    calls.log_,
    calls.stats,
    users.user,
    transfer.import_,
    transfer.export,
    redress.redress_group,
    feeds.feed,
):
    cli.add_command(command)


@cli.command()
@pass_ctx
def serve(ctx: Context) -> None:
    """Run the ARI Stasis application (until SIGTERM or Ctrl-C)."""
    from screening.asterisk.stasis import serve as run_door

    _logging(ctx.debug, ctx.config.log_format)
    engine = ctx.engine()
    log.info("screening %s: database %s, region %s", __version__, ctx.where(), ctx.region)
    asyncio.run(run_door(ctx.config, engine))


@cli.command()
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Where to listen [default: SCREENING_AGI_LISTEN, else 127.0.0.1:4573].",
)
@pass_ctx
def agi(ctx: Context, listen: str | None) -> None:
    """Run the FastAGI server (until SIGTERM or Ctrl-C).

    The dialplan reaches it with AGI(agi://127.0.0.1:4573/screen,${EXTEN}); see
    asterisk-conf/extensions.conf. FastAGI has no authentication: keep it on loopback.
    """
    from screening.asterisk.fastagi import serve as run_door

    config = _listening(ctx.config, listen, "agi")
    _logging(ctx.debug, config.log_format)
    engine = ctx.engine()
    log.info("screening %s: database %s, region %s", __version__, ctx.where(), ctx.region)
    asyncio.run(run_door(config, engine))


@cli.command()
@click.option("--listen", metavar="HOST:PORT", help="Where to listen [default: web.listen].")
@pass_ctx
def web(ctx: Context, listen: str | None) -> None:
    """Run the web console (until SIGTERM or Ctrl-C); 127.0.0.1:8089 by default."""
    from screening.web.serve import serve as run_web

    config = _listening(ctx.config, listen, "web")
    _logging(ctx.debug, config.log_format)
    asyncio.run(run_web(config, ctx.engine()))


def _listening(config: Config, listen: str | None, door: str) -> Config:
    """The settings with a door's address from --listen, when given."""
    if listen is None:
        return config
    host, port = parse_listen(listen, "--listen")
    if door == "agi":
        return replace(config, agi_host=host, agi_port=port)
    return replace(config, web_host=host, web_port=port)


@cli.command()
@click.option(
    "--asterisk",
    "asterisk_cmd",
    default="asterisk -rx",
    show_default=True,
    metavar="COMMAND",
    help="How to run an Asterisk CLI command here (e.g. 'docker exec pbx asterisk -rx').",
)
@click.option(
    "--allow-unscreened",
    metavar="TRUNK,...",
    default="",
    help="Trunks that are meant not to go through screening.",
)
@pass_ctx
def doctor(ctx: Context, asterisk_cmd: str, allow_unscreened: str) -> None:
    """Check this installation: database, ARI, the app, the dialplan, trunks, FastAGI,
    clock. Prints what fails and how to fix it; exits 0 only when every check passes."""
    from screening.asterisk.doctor import Asterisk, diagnose

    allowed = frozenset(t.strip() for t in allow_unscreened.split(",") if t.strip())
    checks = diagnose(
        ctx.config, lambda: ctx.engine(check_schema=False), Asterisk(asterisk_cmd), allowed
    )
    for check in checks:
        click.echo(f"[{' ok ' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            click.echo(f"       fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    click.echo(f"\n{len(checks) - failed} of {len(checks)} checks passed")
    if failed:
        sys.exit(1)


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
        _fail(worded(e), e.exit_code)
    except BrokenPipeError:
        sys.exit(1)  # `screening log | head`: the reader left; nothing to report
    except Exception as e:
        failure = database_failure(e)
        if failure is None or debug:
            raise
        _fail(failure, 1)
