"""`screening check`, `screening log` and `screening stats`: what would happen to a call,
the calls decided, and what they add up to."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from screening.admin.common import (
    Context,
    for_option,
    json_option,
    local,
    pass_ctx,
    print_json,
    table,
)
from screening.core.decision import Decision, IncomingCall
from screening.service import calls as call_log
from screening.service import ops, parse, views
from screening.service.actor import CLI
from screening.service.views import iso
from screening.store.calllog import LoggedCall


@click.command()
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
        print_json(_check_json(call, ext, when, decision))
        return
    who = call.caller or f"{caller!r} (no usable caller ID)"
    local_when = f"{when.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"
    click.echo(f"{who} calling {ext} at {local_when}: {_verdict(decision)}")
    click.echo(f"  decided by: {decision.reason}")


def _check_json(call: IncomingCall, ext: str, when: datetime, decision: Decision) -> object:
    return {
        "caller": call.caller_raw,
        "caller_normalised": call.caller,
        "extension": ext,
        "at": iso(when),
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


def _verdict(decision: Decision) -> str:
    names = {607: "607 Unwanted", 608: "608 Rejected"}
    return (
        f"rejected with {names.get(decision.sip_code or 0, decision.sip_code)}"
        if decision.rejected
        else "challenged: asked in early media to press a digit; the right one rings, "
        "anything else is refused"
        if decision.challenged
        else "allowed: the call goes on"
    )


def _decision_word(decision: Decision) -> str:
    if decision.challenged:
        return "challenged"
    return "rejected" if decision.rejected else "allowed"


@click.group("log", invoke_without_command=True)
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
        print_json([views.call_json(r) for r in rows])
        return
    if not rows:
        click.echo("no calls match")
        return
    table(
        ["TIME", "CALLER", "NAME", "EXT", "VERIFIED", "DECISION", "CODE", "WHY", "MS"],
        [_call_row(r) for r in rows],
    )


def _call_row(r: LoggedCall) -> list[object]:
    return [
        local(r.at),
        r.caller or f"({r.caller_raw[:20] or 'empty'})",
        (r.caller_name or "")[:20],
        r.extension,
        f"{r.verification or ''} {r.attestation or ''}".strip()[:24],
        r.decision + (f" ({r.challenge})" if r.challenge else ""),
        r.sip_code,
        r.reason[:60],
        f"{r.decision_us / 1000:.1f}",
    ]


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
    click.echo(f"deleted {removed} call-log rows from before {local(before)}")


@click.command()
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
        print_json({**asdict(s), "since": iso(s.since)})
        return
    click.echo(f"since {local(s.since)}")
    table(
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
            table([column, "CALLS"], rows)


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
