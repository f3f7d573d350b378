"""`screening policy`: reject or challenge calls by who is calling (withheld, invalid,
unverified, spoofed, strangers), globally or for one extension."""

from __future__ import annotations

import click

from screening.admin.common import Context, for_option, json_option, pass_ctx, print_records
from screening.service import ops, parse
from screening.service.actor import CLI

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


@click.group()
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
    print_records(
        ops.list_policies(ctx.engine(), extension),
        as_json,
        lambda p: {
            "id": p.id,
            "kind": p.kind.value,
            "extension": p.extension,
            "action": p.action.value,
            "sip_code": p.sip_code,
        },
        "no policies" + (f" for extension {extension}" if extension else ""),
        ["ID", "KIND", "SCOPE", "ACTION", "CODE"],
        lambda p: [p.id, p.kind, p.extension or "global", p.action, p.sip_code],
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
