"""What a user of one extension may learn about the rules that decided their calls.

A user sees every call to their extension, its outcome and code, and the kind of rule that
decided: a block or allow entry, reputation, a caller-name entry, which policy, DND, the
challenge's outcome. Never a rule's id, the number or pattern it matches, or its reason:
an admin's notes are the admin's, a pattern tells a spammer how to get round it, and a
reputation block is made of other extensions' reports. Their own entries, reasons and all,
are on their own page. Admins see everything (docs/security.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from screening.core.decision import DndWindow, Entry, NameEntry, Policy
from screening.store.calllog import LoggedCall
from screening.store.lists import ListedEntry

_KINDS = {
    "allow": "an allow entry",
    "block": "a block entry",
    "reputation": "reputation: several extensions reported this caller",
    "name-allow": "a caller-name allow entry",
    "name-block": "a caller-name block entry",
    "dnd": "a do-not-disturb schedule",
    "manual-dnd": "do-not-disturb",
    "error": "screening could not decide; the call went on unscreened",
    "not-an-extension": "the dialled number is not an extension",
}


def reason_for_user(rule_kind: str | None, policy: str | None, challenge: str | None) -> str:
    """A call's explanation as its extension's user sees it."""
    if rule_kind == "policy":
        why = f"the {policy} policy" if policy else "a policy"
    else:
        why = _KINDS.get(rule_kind or "", "no rule matched")
    return f"{why}; challenge {challenge}" if challenge else why


# -- one JSON view per record: the CLI's --json, the API and the console's data ----------------


def iso(at: datetime | None) -> str | None:
    """UTC, RFC 3339, with a Z."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def entry_json(e: Entry | ListedEntry) -> dict[str, Any]:
    """A block or allow entry; listed, with how often it decided a call."""
    out: dict[str, Any] = {
        "id": e.id,
        "kind": e.kind,
        "number": e.value + ("*" if e.is_prefix else ""),
        "extension": e.extension,
        "code": e.sip_code,
        "reason": e.reason,
        "source": e.source,
        "expires": iso(e.expires_at),
    }
    if isinstance(e, ListedEntry):
        out |= {
            "entered": e.entered,
            "created": iso(e.created_at),
            "calls": e.hits,
            "last_call": iso(e.last_hit),
        }
    return out


def name_json(n: NameEntry) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "pattern": n.pattern,
        "extension": n.extension,
        "code": n.sip_code,
        "reason": n.reason,
    }


def policy_json(p: Policy) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind.value,
        "extension": p.extension,
        "action": p.action.value,
        "code": p.sip_code,
    }


def window_json(w: DndWindow) -> dict[str, Any]:
    return {
        "id": w.id,
        "extension": w.extension,
        "description": w.describe(),
        "days": sorted(w.days),
        "from": f"{w.start:%H:%M}",
        "to": f"{w.end:%H:%M}",
        "tz": w.tz,
    }


def call_json(r: LoggedCall, admin: bool = True) -> dict[str, Any]:
    """One call; for a user, the rule that decided told by its kind only (reason_for_user)."""
    reason = r.reason if admin else reason_for_user(r.rule_kind, r.policy, r.challenge)
    return {
        "id": r.id,
        "at": iso(r.at),
        "channel_id": r.channel_id,
        "caller": r.caller,
        "caller_raw": r.caller_raw,
        "caller_name": r.caller_name,
        "extension": r.extension,
        "decision": r.decision,
        "code": r.sip_code,
        "rule_kind": r.rule_kind,
        "rule_id": r.rule_id if admin else None,
        "reason": reason,
        "policy": r.policy,
        "verification": r.verification,
        "attestation": r.attestation,
        "challenge": r.challenge,
        "door": r.door,
        "decision_ms": r.decision_us / 1000,
    }
