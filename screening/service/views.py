"""What a user of one extension may learn about the rules that decided their calls.

A user sees every call to their extension, its outcome and code, and the kind of rule that
decided: a block or allow entry, reputation, a caller-name entry, which policy, DND, the
challenge's outcome. Never a rule's id, the number or pattern it matches, or its reason:
an admin's notes are the admin's, a pattern tells a spammer how to get round it, and a
reputation block is made of other extensions' reports. Their own entries, reasons and all,
are on their own page. Admins see everything (README "Security")."""

from __future__ import annotations

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
