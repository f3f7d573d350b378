"""The `screening` command: thin wrappers that parse, call the library, and print.

Human output by default (aligned tables, local times), `--json` for scripts. Errors are one
line naming the field; exit 2 for bad input, 1 for runtime failures.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO
from zoneinfo import ZoneInfo

import click

from screening import __version__, config
from screening.core import errors
from screening.core.decision import Decision
from screening.core.errors import InvalidInput, ScreeningError
from screening.service import accounts as accounts_service
from screening.service import calls as call_log
from screening.service import csvfile, lists, ops, parse, views
from screening.service.actor import CLI
from screening.store import migrate
from screening.store.accounts import Token
from screening.store.engine import Engine, make_engine
from screening.store.policies import NameKind

log = logging.getLogger("screening")


class Context:
    def __init__(self, debug: bool, config_file: str | None = None) -> None:
        self.debug = debug
        self.config_file = config_file
        self._loaded: config.Loaded | None = None
        self._engine: Engine | None = None

    @property
    def loaded(self) -> config.Loaded:
        if self._loaded is None:
            self._loaded = config.load_all(path=self.config_file)
        return self._loaded

    @property
    def config(self) -> config.Config:
        return self.loaded.config

    @property
    def region(self) -> str:
        return self.config.default_region

    def engine(self, check_schema: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
            if check_schema:
                migrate.require_current(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def where(self) -> str:
        return config.masked_url(self.config.database_url)


pass_ctx = click.make_pass_decorator(Context)


# -- output ---------------------------------------------------------------------------------


def _local(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(parse.local_zone())).strftime("%Y-%m-%d %H:%M")


#: The services name a field by its key (core.errors); an admin typed it as this flag or
#: argument. A command whose flag differs says so with _flags.
FLAGS = {
    "extension": "--for",
    "code": "--code",
    "reason": "--reason",
    "expires": "--expires",
    "action": "--action",
    "kind": "KIND",
    "pattern": "--name",
    "days": "--days",
    "from": "--from",
    "to": "--to",
    "tz": "--tz",
    "since": "--since",
    "until": "--until",
    "id": "ID",
    "name": "NAME",
    "role": "--role",
    "caller": "--caller",
    "decision": "--decision",
    "at": "--at",
    "attestation": "--attestation",
    "verification": "--verification",
}


def worded(e: ScreeningError) -> str:
    """An error as the admin reads it at the command line: fields named by their flags."""
    return errors.worded(e, FLAGS)


@contextmanager
def _flags(**flags: str) -> Iterator[None]:
    """The service names a field as its records do; the CLI as the admin typed it."""
    try:
        yield
    except InvalidInput as e:
        raise InvalidInput(flags.get(e.field, e.field), e.detail) from None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _table(headers: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> None:
    cells = [["-" if c is None else str(c) for c in r] for r in rows]
    if headers is not None:
        cells.insert(0, [str(h) for h in headers])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
name_option = click.option(
    "--name", metavar="PATTERN", help="A caller name instead of a number: '*SPAM*', 'Scam Likely'."
)
_NAME_HELP = (
    " With --name, the entry matches the caller's name (CALLERID(name)) instead, ignoring "
    "case; * and ? are wildcards. Anyone can send any name: an allow by name is weak."
)
for_option = click.option("--for", "extension", metavar="EXT", help="Only for this extension.")


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


@cli.group("config")
def config_group() -> None:
    """The settings in force."""


@config_group.command("reference")
def config_reference() -> None:
    """Print every setting: its key, variable, default and meaning (a Markdown table)."""
    click.echo(config.reference(), nl=False)


@config_group.command("show")
@json_option
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print every setting, its value (secrets hidden) and where it came from."""
    loaded = ctx.loaded
    rows = [
        (s.key, s.env, config.shown(s, loaded.values[s.key]), loaded.sources[s.key])
        for s in config.SETTINGS
    ]
    if as_json:
        _json(
            {
                "file": loaded.file,
                "settings": [
                    {"key": k, "variable": v, "value": value, "from": where}
                    for k, v, value, where in rows
                ],
            }
        )
        return
    click.echo(f"settings file: {loaded.file or '(none)'}")
    _table(["KEY", "VARIABLE", "VALUE", "FROM"], rows)


# -- db -------------------------------------------------------------------------------------


@cli.group()
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


# -- block / allow --------------------------------------------------------------------------

_NUMBER_HELP = (
    "NUMBER is a phone number in any common format, or a prefix ending in * (+1900*). "
    "Adding a number that is already listed for the same scope updates it."
)


def _list_group(kind: Literal["block", "allow"], doc: str) -> click.Group:
    group = click.Group(kind, help=doc)

    add_help = {
        "block": "Reject calls from NUMBER (or a prefix).",
        "allow": "Always let NUMBER (or a prefix) through, past blocks and do-not-disturb.",
    }[kind]

    @group.command("add", help=add_help, epilog=_NUMBER_HELP + _NAME_HELP)
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
        until = f", expires {_local(entry.expires_at)}" if entry.expires_at else ""
        click.echo(f"{'added' if created else 'updated'} {entry.describe()}{code_text}{until}")

    if kind == "block":
        add = click.option(
            "--code",
            default="607",
            show_default=True,
            metavar="607|608",
            help="607: the caller is spam (RFC 8197); 608: refused by policy (RFC 8688).",
        )(add)

    @group.command("list")
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
        entries, named = lists.all_entries(ctx.engine(), kind, extension)
        if as_json:
            _json([views.entry_json(e) for e in entries])
            return
        more = f"\n{named} name entries: `screening {kind} list --names`" if named else ""
        if not entries:
            scope = f" for extension {extension}" if extension else ""
            click.echo(f"no {kind} entries{scope}{more}")
            return
        headers = ["ID", "NUMBER", "NORMALISED", "SCOPE"]
        headers += ["CODE"] if kind == "block" else []
        headers += ["REASON", "SOURCE", "CREATED", "EXPIRES", "CALLS", "LAST CALL"]
        rows = []
        for e in entries:
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
                _local(e.created_at),
                _local(e.expires_at),
                e.hits,
                _local(e.last_hit),
            ]
            rows.append(row)
        _table(headers, rows)
        if more:
            click.echo(more)

    @group.command(
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

    return group


def _number_or_name(number: str | None, name: str | None) -> Literal["number", "name"]:
    if (number is None) == (name is None):
        raise InvalidInput("NUMBER", "give a number (or prefix) or --name PATTERN, not both")
    return "number" if number is not None else "name"


def _list_names(ctx: Context, kind: NameKind, extension: str | None, as_json: bool) -> None:
    entries = ops.list_names(ctx.engine(), kind, extension)
    if as_json:
        _json([asdict(e) for e in entries])
        return
    if not entries:
        click.echo(f"no {kind} name entries" + (f" for extension {extension}" if extension else ""))
        return
    headers = ["ID", "NAME", "SCOPE"] + (["CODE"] if kind == "block" else []) + ["REASON"]
    rows = [
        [e.id, e.pattern, e.extension or "global"]
        + ([e.sip_code] if kind == "block" else [])
        + [e.reason]
        for e in entries
    ]
    _table(headers, rows)


cli.add_command(_list_group("block", "Callers to reject (607 Unwanted by default)."))
cli.add_command(
    _list_group("allow", "Callers that always get through, even past blocks and do-not-disturb.")
)


# -- dnd ------------------------------------------------------------------------------------


@cli.group()
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
    windows, manual = lists.list_dnd(ctx.engine(), CLI, ext)
    if as_json:
        _json(
            {
                "schedules": [
                    {**views.window_json(w), "active_now": w.active_at(now)} for w in windows
                ],
                "manual": [
                    {
                        "id": m.id,
                        "extension": m.extension,
                        "until": _iso(m.until),
                        "active_now": m.active_at(now),
                    }
                    for m in manual
                ],
            }
        )
        return
    if not windows and not manual:
        click.echo("no do-not-disturb" + (f" for extension {ext}" if ext else ""))
        return
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
            f"manual, until {_local(m.until)}" if m.until else "manual, until off",
            "yes" if m.active_at(now) else "no",
        ]
        for m in manual
    ]
    _table(["ID", "EXT", "WHEN", "ACTIVE NOW"], rows)


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
    click.echo(f"DND on for {ext}" + (f" until {_local(manual.until)}" if manual.until else ""))


@dnd.command("off")
@click.argument("ext")
@pass_ctx
def dnd_off(ctx: Context, ext: str) -> None:
    """Turn manual DND off for EXT (schedules stay)."""
    was_on = ops.dnd_off(ctx.engine(), parse.parse_extension(ext, "EXT"), by=CLI)
    click.echo(f"DND off for {ext}" + ("" if was_on else " (it was not on)"))


# -- policy ---------------------------------------------------------------------------------

_POLICY_HELP = (
    "KIND: anonymous (withheld or unusable caller ID, or presentation prohibited); invalid "
    "(not a possible number); failed-verification (STIR/SHAKEN or your carrier says the "
    "number is false); unverified (nobody vouches for the number); attestation-below-A / "
    "attestation-below-B (verified, but attested only B or C / only C); contacts-only (only "
    "callers on the allow list ring). Policies are checked after allow and block entries and "
    "before do-not-disturb; an extension's policy replaces the global one of its kind. "
    "ACTION challenge asks the caller, in early media before anything rings, to press a "
    "digit it names: right digit rings, anything else is refused (challenge.code, 608)."
)


@cli.group()
def policy() -> None:
    """Reject or challenge calls by who is calling: withheld, invalid, unverified, spoofed,
    strangers."""


@policy.command("set", epilog=_POLICY_HELP)
@click.argument("kind")
@for_option
@click.option(
    "--action",
    default="reject",
    show_default=True,
    metavar="reject|challenge|continue",
    help="challenge: ask for a digit first; continue switches a global policy off for --for EXT.",
)
@click.option(
    "--code",
    metavar="607|608",
    help="608 (default): refused by policy (RFC 8688); 607: the caller is spam (RFC 8197).",
)
@pass_ctx
def policy_set(
    ctx: Context, kind: str, extension: str | None, action: str, code: str | None
) -> None:
    """Set the policy KIND, globally or for one extension."""
    new = parse.new_policy(kind, action, code, extension)  # before the database is opened
    saved, created = ops.set_policy(ctx.engine(), new, by=CLI)
    what = f"reject with {saved.sip_code}" if saved.sip_code else saved.action.value
    click.echo(f"{'set' if created else 'updated'} {saved.describe()}: {what}")


@policy.command("list")
@for_option
@json_option
@pass_ctx
def policy_list(ctx: Context, extension: str | None, as_json: bool) -> None:
    """List policies: global ones and every extension's (or the ones that apply to --for)."""
    if extension is not None:
        parse.parse_extension(extension)
    found = ops.list_policies(ctx.engine(), extension)
    if as_json:
        _json(
            [
                {
                    "id": p.id,
                    "kind": p.kind.value,
                    "extension": p.extension,
                    "action": p.action.value,
                    "sip_code": p.sip_code,
                }
                for p in found
            ]
        )
        return
    if not found:
        click.echo("no policies" + (f" for extension {extension}" if extension else ""))
        return
    _table(
        ["ID", "KIND", "SCOPE", "ACTION", "CODE"],
        [[p.id, p.kind, p.extension or "global", p.action, p.sip_code] for p in found],
    )


@policy.command("remove")
@click.argument("kind")
@for_option
@pass_ctx
def policy_remove(ctx: Context, kind: str, extension: str | None) -> None:
    """Remove the policy KIND (global, or the one of --for EXT)."""
    what = parse.parse_policy_kind(kind)
    ext = parse.parse_extension(extension) if extension is not None else None
    removed = ops.remove_policy(ctx.engine(), what, ext, by=CLI)
    click.echo(f"removed {removed.describe()}")


# -- check, log, stats ----------------------------------------------------------------------


@cli.command()
@click.argument("caller")
@click.argument("ext")
@click.option("--at", metavar='"YYYY-MM-DD HH:MM"', help="Decide as of this time [default: now].")
@click.option("--tz", metavar="ZONE", help="Zone of --at [default: this host's].")
@click.option("--name", default="", metavar="NAME", help="The caller's name (CALLERID(name)).")
@click.option("--anonymous", is_flag=True, help="The caller withheld the number (prohibited).")
@click.option(
    "--verification",
    metavar="success|failed|none",
    help="What STIR/SHAKEN found [default: none, or success with --attestation].",
)
@click.option("--attestation", metavar="A|B|C", help="The verified call's attestation.")
@json_option
@pass_ctx
def check(
    ctx: Context,
    caller: str,
    ext: str,
    at: str | None,
    tz: str | None,
    name: str,
    anonymous: bool,
    verification: str | None,
    attestation: str | None,
    as_json: bool,
) -> None:
    """Explain what would happen to a call from CALLER to EXT, and which rule decides it.

    Uses the same rules and decision core as the running app.
    """
    call = parse.incoming(
        caller,
        ext,
        ctx.region,
        name=name,
        anonymous=anonymous,
        verification=verification,
        attestation=attestation,
    )
    zone = parse.parse_tz(tz) if tz else parse.local_zone()
    when = parse.parse_when_at(at, zone) if at else datetime.now(UTC)
    decision = ops.check(ctx.engine(), call, when)
    if as_json:
        _json(
            {
                "caller": call.caller_raw,
                "caller_normalised": call.caller,
                "extension": ext,
                "at": _iso(when),
                "action": decision.action.value,
                "decision": _decision_word(decision),
                "sip_code": decision.sip_code,
                "rule_kind": decision.rule_kind,
                "rule_id": decision.rule_id,
                "policy": decision.policy.value if decision.policy else None,
                "reason": decision.reason,
                "caller_name": call.name,
                "withheld": call.withheld,
                "verification": call.verification.status.value,
                "attestation": call.verification.attestation,
            }
        )
        return
    names = {607: "607 Unwanted", 608: "608 Rejected"}
    verdict = (
        f"rejected with {names.get(decision.sip_code or 0, decision.sip_code)}"
        if decision.rejected
        else "challenged: asked in early media to press a digit; the right one rings, "
        "anything else is refused"
        if decision.challenged
        else "allowed: the call goes on"
    )
    who = call.caller or f"{caller!r} (no usable caller ID)"
    click.echo(
        f"{who} calling {ext} at {when.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}: {verdict}"
    )
    click.echo(f"  decided by: {decision.reason}")


def _decision_word(decision: Decision) -> str:
    if decision.challenged:
        return "challenged"
    return "rejected" if decision.rejected else "allowed"


@cli.group("log", invoke_without_command=True)
@click.option("--since", metavar="WHEN", help="1h, 7d, 2025-01-01, or YYYY-MM-DD HH:MM.")
@for_option
@click.option("--caller", metavar="NUMBER", help="Only calls from this number (any format).")
@click.option(
    "--decision", type=click.Choice(["rejected", "allowed", "abandoned"]), help="Only these."
)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@json_option
@click.pass_context
def log_(
    click_ctx: click.Context,
    since: str | None,
    extension: str | None,
    caller: str | None,
    decision: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show decided calls, newest first."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    wanted = call_log.call_filter(
        ctx.region, extension=extension, caller=caller, decision=decision, since=since
    )
    rows = call_log.list_calls(ctx.engine(), CLI, wanted, limit).calls
    if as_json:
        _json([views.call_json(r) for r in rows])
        return
    if not rows:
        click.echo("no calls match")
        return
    _table(
        ["TIME", "CALLER", "NAME", "EXT", "VERIFIED", "DECISION", "CODE", "WHY", "MS"],
        [
            [
                _local(r.at),
                r.caller or f"({r.caller_raw[:20] or 'empty'})",
                (r.caller_name or "")[:20],
                r.extension,
                f"{r.verification or ''} {r.attestation or ''}".strip()[:24],
                r.decision + (f" ({r.challenge})" if r.challenge else ""),
                r.sip_code,
                r.reason[:60],
                f"{r.decision_us / 1000:.1f}",
            ]
            for r in rows
        ],
    )


@log_.command("purge")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Delete calls older than this: 90d, 12w, or a date YYYY-MM-DD.",
)
@pass_ctx
def log_purge(ctx: Context, older_than: str) -> None:
    """Delete old call-log rows (retention). Rules are not touched."""
    before = parse.parse_since(older_than, datetime.now(UTC), field="--older-than")
    removed = call_log.purge(ctx.engine(), before)
    click.echo(f"deleted {removed} call-log rows from before {_local(before)}")


@cli.command()
@click.option(
    "--since",
    metavar="WHEN",
    default="7d",
    show_default=True,
    help="1h, 7d, 2025-01-01, or YYYY-MM-DD HH:MM.",
)
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True)
@json_option
@pass_ctx
def stats(ctx: Context, since: str, top: int, as_json: bool) -> None:
    """Calls screened, rejected by 607 and 608, top blocked callers and names, top rules,
    rejections per policy, and verification results."""
    since_at = parse.parse_since(since, datetime.now(UTC))
    s = call_log.stats(ctx.engine(), since_at, top)
    if as_json:
        _json({**asdict(s), "since": _iso(s.since)})
        return
    click.echo(f"since {_local(s.since)}")
    _table(
        None,
        [
            ["calls screened", s.calls],
            ["allowed", s.allowed],
            ["rejected 607", s.rejected_607],
            ["rejected 608", s.rejected_608],
            ["by reputation", s.rejected_by_reputation],
            ["failed open", s.failed_open],
        ],
    )
    if s.challenges:
        click.echo(f"\n{_challenged(s.challenges)}")
    sections = [
        ("top rejected callers", "CALLER", s.top_callers),
        ("top rules", "RULE", s.top_rules),
        ("top rejected caller names", "NAME", s.top_names),
        ("rejected by policy", "POLICY", s.by_policy),
        ("verification (STIR/SHAKEN or carrier)", "RESULT", s.by_verification),
    ]
    for title, column, rows in sections:
        if rows:
            click.echo(f"\n{title}")
            _table([column, "CALLS"], rows)


def _challenged(counts: dict[str, int]) -> str:
    """challenged 120: 31 passed, 84 refused (80 timed out, 4 wrong digit), 5 hung up"""
    refused = counts.get("timed-out", 0) + counts.get("wrong-digit", 0)
    detail = f"{counts.get('timed-out', 0)} timed out, {counts.get('wrong-digit', 0)} wrong digit"
    parts = [
        f"{counts.get('passed', 0)} passed",
        f"{refused} refused ({detail})",
        f"{counts.get('abandoned', 0)} hung up",
    ]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed (rang unscreened)")
    return f"challenged {sum(counts.values())}: " + ", ".join(parts)


# -- user -----------------------------------------------------------------------------------


@cli.group()
def user() -> None:
    """Web console accounts: admins, and each extension's user."""


def _password(password_file: str | None, prompt: str = "Password") -> str:
    """From the file's first line, else asked twice on the terminal: never from argv."""
    if password_file is not None:
        try:
            lines = Path(password_file).read_text().splitlines()
        except OSError as e:
            raise InvalidInput("--password-file", f"cannot read it: {e.strerror}") from None
        return lines[0] if lines else ""
    text: str = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
    return text


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "user"]), required=True)
@click.option("--extension", metavar="EXT", help="The extension a user sees (users only).")
@click.option("--password-file", metavar="FILE", help="Read the password from FILE.")
@pass_ctx
def user_add(
    ctx: Context, name: str, role: str, extension: str | None, password_file: str | None
) -> None:
    """Create an account. The password is asked for (or read from --password-file)."""
    with _flags(extension="--extension"):
        name, role, extension = parse.new_user(name, role, extension)
    password = accounts_service.check_password(_password(password_file), "password")
    made = accounts_service.Accounts(ctx.engine()).add(
        name, role, extension, password, datetime.now(UTC)
    )
    scope = f" for extension {made.extension}" if made.extension else ""
    click.echo(f"added {made.role} {made.name}{scope}")


@user.command("list")
@json_option
@pass_ctx
def user_list(ctx: Context, as_json: bool) -> None:
    """List accounts (never their passwords)."""
    found = accounts_service.Accounts(ctx.engine()).all()
    if as_json:
        _json(
            [
                {
                    "name": a.name,
                    "role": a.role,
                    "extension": a.extension,
                    "created_at": _iso(a.created_at),
                    "locked_until": _iso(a.locked_until),
                }
                for a in found
            ]
        )
        return
    if not found:
        click.echo("no users; add the first admin with `screening user add NAME --role admin`")
        return
    _table(
        ["NAME", "ROLE", "EXTENSION", "CREATED", "LOCKED UNTIL"],
        [
            [a.name, a.role, a.extension, _local(a.created_at), _local(a.locked_until)]
            for a in found
        ],
    )


@user.command("remove")
@click.argument("name")
@pass_ctx
def user_remove(ctx: Context, name: str) -> None:
    """Remove an account and its API tokens."""
    accounts_service.Accounts(ctx.engine()).remove(name, datetime.now(UTC))
    click.echo(f"removed user {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-file", metavar="FILE", help="Read the new password from FILE.")
@pass_ctx
def user_passwd(ctx: Context, name: str, password_file: str | None) -> None:
    """Set a new password (and lift a lock-out)."""
    password = accounts_service.check_password(_password(password_file, "New password"))
    accounts_service.Accounts(ctx.engine()).passwd(name, password, datetime.now(UTC))
    click.echo(f"password set for {name}")


@user.command("role")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "user"]), required=True)
@click.option("--extension", metavar="EXT", help="The extension a user sees (users only).")
@pass_ctx
def user_role(ctx: Context, name: str, role: str, extension: str | None) -> None:
    """Make NAME an admin, or the user of one extension. Their sessions end."""
    with _flags(extension="--extension"):
        name, role, extension = parse.new_user(name, role, extension)
    accounts_service.Accounts(ctx.engine()).set_role(name, role, extension, datetime.now(UTC))
    scope = f" for extension {extension}" if extension else ""
    click.echo(f"{name} is now {role}{scope}; their console sessions ended")


@user.command("token")
@click.argument("name", required=False)
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    metavar="WHEN",
    help="When the new token stops working: 30d, 2027-06-30, ... or never.",
)
@click.option("--list", "listing", is_flag=True, help="List API tokens (all, or NAME's).")
@click.option("--revoke", metavar="ID", help="Revoke the token with this id (from --list).")
@json_option
@pass_ctx
def user_token(
    ctx: Context,
    name: str | None,
    expires: str,
    listing: bool,
    revoke: str | None,
    as_json: bool,
) -> None:
    """Print a new API token for NAME (Authorization: Bearer TOKEN), shown once; or list
    tokens, or revoke one."""
    service = accounts_service.Accounts(ctx.engine())
    now = datetime.now(UTC)
    if revoke is not None:
        gone = service.revoke_token(
            parse.whole_number(revoke.lstrip("#"), "--revoke", 0, parse.MAX_ID), now
        )
        click.echo(f"revoked token #{gone.id} of {gone.user}")
        return
    if listing:
        _tokens(service.tokens(name), as_json)
        return
    if name is None:
        raise InvalidInput("NAME", "expected the user to make a token for (or --list, --revoke)")
    until = None if expires == "never" else parse.parse_expires(expires, now)
    token, token_id = service.new_token(name, now, until)
    click.echo(token)
    when = f"expires {_local(until)}" if until else "never expires"
    click.echo(f"token #{token_id} for {name}, {when}; shown once", err=True)


def _tokens(found: list[Token], as_json: bool) -> None:
    if as_json:
        _json(
            [
                {
                    "id": t.id,
                    "user": t.user,
                    "created_at": _iso(t.created_at),
                    "last_used_at": _iso(t.last_used_at),
                    "expires_at": _iso(t.expires_at),
                }
                for t in found
            ]
        )
        return
    if not found:
        click.echo("no API tokens")
        return
    _table(
        ["ID", "USER", "CREATED", "LAST USED", "EXPIRES"],
        [
            [f"#{t.id}", t.user, _local(t.created_at), _local(t.last_used_at), _local(t.expires_at)]
            for t in found
        ],
    )


# -- import / export ------------------------------------------------------------------------


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing when piped or in scripts."""
    if not sys.stderr.isatty() or total < 1:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


@cli.command(
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


@cli.command("export")
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
