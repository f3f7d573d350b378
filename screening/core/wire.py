"""What the caller's network hears when a call is rejected: the status code, its Reason,
and where a wrongly blocked caller can seek redress. Pure: decision + settings -> wire.

- 607 Unwanted (RFC 8197) is the callee's own verdict: no redress by default.
- 608 Rejected (RFC 8688) is an intermediary's: it carries `Call-Info: <URL>;purpose=jwscard`,
  a signed jCard naming whom to contact, when the admin set one up.
- 603+ (ATIS-1000099, required of US terminating providers that block on analytics by the
  FCC's 47 CFR 64.1200(k)(9) since 25 March 2026): `603 Network Blocked` with a Reason whose
  text carries the redress contacts. Only in provider mode, only for analytics verdicts.
- Every one carries `Reason: Q.850;cause=21` (call rejected, the ISUP cause the FCC pairs
  with them), where Asterisk alone sends cause=0, which is no cause at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from screening.core.decision import Decision, PolicyKind

#: Q.850 cause 21, "call rejected" (RFC 6432 carries Q.850 causes in SIP responses), as
#: Asterisk writes it once screening's module has set the cause.
REJECTED_REASON = "Q.850;cause=21"
#: RFC 8606's locations: where in the path the call was blocked.
LOCATIONS = ("LN", "TN", "RLN", "LPN", "RPN")
#: The rule kinds that are analytics, not a person's or an admin's own list: in provider
#: mode these answer 603+. A person's own block stays 607; contacts-only is the callee's
#: own allow list; DND is the callee being busy.
ANALYTICS = frozenset({"reputation", "policy", "feed"})
#: The rule kinds a rejection can have (core.decision, and the screener's not-an-extension),
#: which `redress.on` may name.
REDRESS_KINDS = (
    "block",
    "name-block",
    "reputation",
    "feed",
    "policy",
    "dnd",
    "manual-dnd",
    "not-an-extension",
)


@dataclass(frozen=True)
class Settings:
    """The `sip.*` and `redress.*` settings the wire needs (config.py checks each)."""

    provider_mode: bool = False
    location: str = "RLN"
    #: Where a wrongly blocked caller can turn: any of them may be "".
    name: str = ""
    organisation: str = ""
    phone: str = ""  # E.164
    email: str = ""
    url: str = ""  # https
    #: The public https URL of the signed jCard (what `screening web` serves).
    jcard_url: str = ""
    #: Which rejections carry the jCard's Call-Info: codes ("607", "608") and rule kinds
    #: ("policy", "dnd", ...: REDRESS_KINDS); a rejection listed either way carries it.
    redress_on: frozenset[str] = field(default_factory=lambda: frozenset({"608"}))

    @property
    def has_contact(self) -> bool:
        return bool(self.phone or self.email or self.url)


@dataclass(frozen=True)
class Wire:
    """One rejection as sent: the code and the headers screening adds."""

    code: int
    phrase: str
    reason: str
    call_info: str | None = None  # "<URL>;purpose=jwscard"

    @property
    def carries_redress(self) -> bool:
        return self.call_info is not None or self.code == 603

    def describe(self, verdict: int | None) -> str:
        """For the call's log line: the code, and what else the network hears."""
        if self.code == 603:
            return f"603 Network Blocked (603+ for a {verdict} verdict)"
        return f"{self.code} with redress" if self.call_info else str(self.code)


PHRASES = {607: "Unwanted", 608: "Rejected", 603: "Network Blocked"}


def is_analytics(decision: Decision) -> bool:
    if decision.rule_kind == "policy":
        return decision.policy is not PolicyKind.CONTACTS_ONLY
    return decision.rule_kind in ANALYTICS


def blocked_reason(settings: Settings) -> str:
    """603+'s Reason (ATIS-1000099 as Telnyx, Twilio and FreeSWITCH show it): the contacts
    inside the quoted text, `;`-separated, then the RFC 8606 location."""
    parts = ["v=analytics1"]
    for key, value in (("url", settings.url), ("tel", settings.phone), ("email", settings.email)):
        if value:
            parts.append(f"{key}={value}")
    return f'SIP;cause=603;text="{";".join(parts)}";location={settings.location}'


def wire(decision: Decision, settings: Settings) -> Wire:
    """How a rejection goes out. The decision's own code (607/608) unless provider mode
    makes an analytics verdict 603+; the jCard on the codes the admin chose."""
    if settings.provider_mode and settings.has_contact and is_analytics(decision):
        return Wire(603, PHRASES[603], blocked_reason(settings))
    code = decision.sip_code if decision.sip_code in (607, 608) else 608
    listed = str(code) in settings.redress_on or decision.rule_kind in settings.redress_on
    if settings.jcard_url and listed:
        info = f"<{settings.jcard_url}>;purpose=jwscard"
        return Wire(code, PHRASES[code], REJECTED_REASON, info)
    return Wire(code, PHRASES[code], REJECTED_REASON)
