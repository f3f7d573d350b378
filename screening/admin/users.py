"""`screening user`: web console accounts (admins, and each extension's user), their
passwords and their API tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from screening.admin.common import Context, json_option, local, pass_ctx, print_records
from screening.admin.errors import flags
from screening.core.errors import InvalidInput
from screening.service import accounts as accounts_service
from screening.service import parse
from screening.service.views import iso
from screening.store.accounts import Token


@click.group()
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
    with flags(extension="--extension"):
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
    print_records(
        accounts_service.Accounts(ctx.engine()).all(),
        as_json,
        lambda a: {
            "name": a.name,
            "role": a.role,
            "extension": a.extension,
            "created_at": iso(a.created_at),
            "locked_until": iso(a.locked_until),
        },
        "no users; add the first admin with `screening user add NAME --role admin`",
        ["NAME", "ROLE", "EXTENSION", "CREATED", "LOCKED UNTIL"],
        lambda a: [a.name, a.role, a.extension, local(a.created_at), local(a.locked_until)],
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
    with flags(extension="--extension"):
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
@click.option("--list", "list_tokens", is_flag=True, help="List API tokens (all, or NAME's).")
@click.option("--revoke", metavar="ID", help="Revoke the token with this id (from --list).")
@json_option
@pass_ctx
def user_token(
    ctx: Context,
    name: str | None,
    expires: str,
    list_tokens: bool,
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
    if list_tokens:
        _tokens(service.tokens(name), as_json)
        return
    if name is None:
        raise InvalidInput("NAME", "expected the user to make a token for (or --list, --revoke)")
    until = None if expires == "never" else parse.parse_expires(expires, now)
    token, token_id = service.new_token(name, now, until)
    click.echo(token)
    when = f"expires {local(until)}" if until else "never expires"
    click.echo(f"token #{token_id} for {name}, {when}; shown once", err=True)


def _tokens(found: list[Token], as_json: bool) -> None:
    print_records(
        found,
        as_json,
        lambda t: {
            "id": t.id,
            "user": t.user,
            "created_at": iso(t.created_at),
            "last_used_at": iso(t.last_used_at),
            "expires_at": iso(t.expires_at),
        },
        "no API tokens",
        ["ID", "USER", "CREATED", "LAST USED", "EXPIRES"],
        lambda t: [
            f"#{t.id}",
            t.user,
            local(t.created_at),
            local(t.last_used_at),
            local(t.expires_at),
        ],
    )
