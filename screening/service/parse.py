"""What people type (CLI, console, API), checked before anything is opened: each function
takes the text and returns our own value, or raises InvalidInput naming the field and what
was expected. Below the doors, so the CLI and the web door give the same messages."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from screening.core.decision import WEEKDAYS, Action, IncomingCall, PolicyKind
from screening.core.errors import InvalidInput, InvalidSchedule
from screening.core.identity import UNVERIFIED, Status, Verification
from screening.core.numbers import EXTENSION, parse_entry
from screening.core.zones import is_zone_name
from screening.service import screener
from screening.store.lists import Cursor, NewDnd, NewEntry
from screening.store.policies import NameKind, NewName, NewPolicy

_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
# ASCII only: str.isdigit() takes "²" (which int() then refuses) and \d every script's digits.
_WHOLE = re.compile(r"[0-9]{1,19}")


def whole_number(raw: str, field: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`, written in ASCII digits (leading zeros or not)."""
    if not _WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidInput(field, f"expected a whole number from {low} to {high}, got {raw[:20]!r}")
    return int(raw)


def parse_extension(raw: str, field: str = "extension") -> str:
    if not EXTENSION.fullmatch(raw):
        raise InvalidInput(
            field, f"expected an extension like 201 (up to 32 characters), got {raw!r}"
        )
    return raw


def parse_code(raw: int | str) -> int:
    if str(raw) not in ("607", "608"):
        raise InvalidInput(
            "code",
            f"expected 607 (unwanted, spam) or 608 (rejected, policy), got {str(raw)[:40]!r}",
        )
    return int(raw)


def parse_days(raw: str) -> frozenset[int]:
    """`mon,tue`, ranges like `mon-fri` or `fri-mon`, `all`, `weekdays`, `weekends`."""
    text = raw.strip().lower()
    aliases = {"all": "mon-sun", "weekdays": "mon-fri", "weekends": "sat-sun"}
    days: set[int] = set()
    for part in aliases.get(text, text).split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
            raise InvalidSchedule(
                "days",
                f"expected days like mon,tue or mon-fri or all; {part!r} is not a day",
            )
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_hhmm(raw: str, field: str) -> time:
    m = _HHMM.fullmatch(raw.strip())
    if not m:
        raise InvalidSchedule(
            field, f"expected a time of day HH:MM from 00:00 to 23:59, got {raw!r}"
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_tz(raw: str) -> str:
    # ZoneInfo also accepts file paths and odd spellings; only IANA names are portable
    # between the PBXs that share one database.
    if not is_zone_name(raw):
        raise InvalidSchedule(
            "tz",
            f"expected an IANA time zone like Europe/Berlin or America/New_York, got {raw!r}",
        )
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule("tz", f"time zone {raw!r} has no data on this system") from None
    return raw


def local_zone() -> str:
    """The PBX's own zone, the default an admin expects for `--tz`; UTC if it has none."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = str(Path("/etc/localtime").resolve())
            name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
        except OSError:
            name = ""
    return name if is_zone_name(name) else "UTC"


def parse_reason(raw: str | None) -> str | None:
    if raw is None:
        return None
    # Printable only: no newline, DEL, line separator or bidi override to disturb a
    # table, a log line or how the console shows the text beside it.
    if len(raw) > 255 or not raw.isprintable():
        raise InvalidInput("reason", "expected one line of at most 255 printable characters")
    return raw.strip() or None


def new_entry(
    kind: Literal["block", "allow"],
    number: str,
    region: str,
    now: datetime,
    *,
    extension: str | None = None,
    code: int | str | None = None,
    reason: str | None = None,
    source: str = "cli",
    expires: str | None = None,
    zone: str | None = None,
) -> NewEntry:
    """Check every field of a list entry (no I/O); raises InvalidInput naming the field.
    A date or time in `expires` is in `zone` (None: this host's)."""
    value, is_prefix = parse_entry(number, region)
    return NewEntry(
        entered=number.strip()[:64],
        value=value,
        is_prefix=is_prefix,
        extension=parse_extension(extension) if extension is not None else None,
        reason=parse_reason(reason),
        source=source,
        expires_at=parse_expires(expires, now, zone) if expires else None,
        sip_code=parse_code(code if code is not None else 607) if kind == "block" else None,
    )


def new_dnd(extension: str, days: str, start: str, end: str, tz: str | None = None) -> NewDnd:
    """Check every field of a DND window (no I/O); raises InvalidInput naming the field."""
    return NewDnd(
        extension=parse_extension(extension, "extension"),
        days=parse_days(days),
        start=parse_hhmm(start, "from"),
        end=parse_hhmm(end, "to"),
        tz=parse_tz(tz) if tz else local_zone(),
    )


# -- times ----------------------------------------------------------------------------------

_DURATION = re.compile(r"([0-9]{1,6})\s*(m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WHEN_HELP = "a duration like 30d, 12h, 2w, a date YYYY-MM-DD, or YYYY-MM-DD HH:MM"


#: Later than any expiry anyone means, and early enough that every zone can show it (an
#: instant in 9999 east of UTC is past what datetime holds).
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _duration(raw: str) -> timedelta | None:
    m = _DURATION.fullmatch(raw.strip())
    if not m:
        return None
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(raw: str, field: str) -> timedelta:
    """A length of time like 30m, 12h, 1d or 2w (not zero)."""
    delta = _duration(raw)
    if delta is None or not delta:
        raise InvalidInput(field, f"expected a duration like 12h, 1d, 2w or 90d, got {raw[:40]!r}")
    return delta


def _exists(when: datetime) -> bool:
    """Whether a local time is on the clock: not in the hour a DST change skips."""
    back = when.astimezone(UTC).astimezone(when.tzinfo)
    return back.replace(tzinfo=None) == when.replace(tzinfo=None)


def _date_or_datetime(raw: str, zone: str) -> tuple[datetime, bool] | None:
    """(aware instant, was it a bare date) for YYYY-MM-DD, YYYY-MM-DD HH:MM or ISO 8601."""
    text = raw.strip()
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(zone)), True
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed, False


def _in_range(when: datetime, raw: str, field: str, exact: bool = True) -> datetime:
    """`when` in UTC; a local time the clocks skip (`exact`: one typed, not a midnight we
    made), or one past LATEST, is refused."""
    try:
        if exact and not _exists(when):
            raise InvalidInput(
                field, f"{raw[:40]!r} is not on the clock in {when.tzinfo} (a DST change skips it)"
            )
        utc = when.astimezone(UTC)
    except OverflowError:
        utc = LATEST
    if utc >= LATEST:
        raise InvalidInput(
            field, f"expected a time before the year {LATEST.year}, got {raw[:40]!r}"
        )
    return utc


def _later(now: datetime, delta: timedelta, raw: str, field: str) -> datetime:
    try:
        when = now + delta
    except OverflowError:
        when = LATEST
    return _in_range(when, raw, field)


def parse_expires(
    raw: str, now: datetime, zone: str | None = None, field: str = "expires"
) -> datetime:
    """When an entry stops counting. A bare date means through that date (local)."""
    delta = _duration(raw)
    if delta is not None:
        return _later(now, delta, raw, field)
    parsed = _date_or_datetime(raw, zone or local_zone())
    if parsed is None:
        raise InvalidInput(field, f"expected {_WHEN_HELP}, got {raw!r}")
    when, bare_date = parsed
    if bare_date:  # the next day's midnight, on the wall clock (a day may be 23 or 25 h)
        try:
            when = (when + timedelta(days=1)).replace(hour=0)
        except OverflowError:
            when = LATEST
    utc = _in_range(when, raw, field, exact=not bare_date)
    if utc <= now:
        raise InvalidInput(field, f"{raw!r} is in the past")
    return utc


def parse_when_at(raw: str, zone: str) -> datetime:
    """`check --at`: a date and time (or a date: its midnight) in the given zone."""
    parsed = _date_or_datetime(raw, zone)
    if parsed is None:
        raise InvalidInput("at", f'expected "YYYY-MM-DD HH:MM", got {raw!r}')
    return parsed[0].astimezone(UTC)


def parse_since(raw: str, now: datetime, zone: str | None = None, field: str = "since") -> datetime:
    delta = _duration(raw)
    if delta is not None:
        return now - delta
    parsed = _date_or_datetime(raw, zone or local_zone())
    if parsed is None:
        raise InvalidInput(field, f"expected {_WHEN_HELP}, got {raw!r}")
    return parsed[0].astimezone(UTC)


def parse_until(raw: str, now: datetime, zone: str | None = None) -> datetime:
    """--until for manual DND: a duration, a time of day (the next one), or a date and time."""
    tz = ZoneInfo(zone or local_zone())
    if _HHMM.fullmatch(raw.strip()):
        t = parse_hhmm(raw, "until")
        local = now.astimezone(tz)
        # The next such time on the clock, compared as instants: local times of one zone
        # compare by the wall clock, which in the hour a DST change repeats puts "02:20"
        # before "02:10" (its second 02:20 is fold 1).
        tomorrow = local.date() + timedelta(days=1)
        for day, fold in ((local.date(), 0), (local.date(), 1), (tomorrow, 0)):
            when = datetime.combine(day, t.replace(fold=fold), tzinfo=tz)
            if when.astimezone(UTC) > now:
                break
        return _in_range(when, raw, "until")
    try:
        return parse_expires(raw, now, zone, field="until")
    except InvalidInput as e:
        if "in the past" in e.detail:
            raise
        raise InvalidInput("until", f"expected a time HH:MM, {_WHEN_HELP}, got {raw!r}") from None


def parse_number_prefix(raw: str, field: str = "number") -> str:
    """A number search: the start of a normalised number. `+1555`, `1555` and `555-12`
    all search E.164 numbers from their start; empty searches everything."""
    text = "".join(c for c in raw if c in "0123456789+")[:32]
    if not text:
        if raw.strip():
            raise InvalidInput(field, f"expected digits to search for, got {raw[:40]!r}")
        return ""
    return text if text.startswith("+") else "+" + text


#: Rule and schedule ids are 32-bit columns; call-log ids 64-bit. A number past the column
#: must be refused here: PostgreSQL answers it with an error, not with "no such row".
MAX_ID = 2**31 - 1
MAX_CALL_ID = 2**63 - 1


def parse_id(raw: str, field: str = "id", maximum: int = MAX_ID) -> int:
    """The id of a row, as a URL gives it."""
    return whole_number(raw, field, 0, maximum)


def encode_cursor(cursor: Cursor) -> str:
    """Where the next page of entries starts, as an opaque URL-safe token."""
    raw = json.dumps([cursor[0], cursor[1], cursor[2]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(raw: str | None, field: str = "after") -> Cursor | None:
    """The token encode_cursor gave (None or "" for the first page)."""
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        value, is_prefix, scope = data
        if isinstance(value, str) and isinstance(is_prefix, bool) and isinstance(scope, str):
            return value[:32], is_prefix, scope[:32]
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidInput(field, "expected what the previous page gave for the next one")


# -- naming an entry -------------------------------------------------------------------------


def parse_entry_id(raw: str) -> int | None:
    """`#12` or `id:12` names an entry by id; anything else is a number."""
    m = re.fullmatch(r"(?:#|id:)(.*)", raw.strip())
    return whole_number(m.group(1), "id", 0, MAX_ID) if m else None


@dataclass(frozen=True)
class EntryKey:
    """Which entry to remove: by id, or by number (or prefix) and scope. `target` is what
    the admin typed, for messages."""

    target: str
    entry_id: int | None
    value: str
    is_prefix: bool
    extension: str | None


def entry_key(target: str, region: str, extension: str | None = None) -> EntryKey:
    """Validate an entry's name (`NUMBER` and `--for`, or `#ID`) without touching the
    database."""
    entry_id = parse_entry_id(target)
    value, is_prefix = ("", False) if entry_id is not None else parse_entry(target, region)
    ext = parse_extension(extension) if extension is not None else None
    return EntryKey(target, entry_id, value, is_prefix, ext)


def incoming(
    caller: str,
    extension: str,
    region: str,
    *,
    name: str = "",
    anonymous: bool = False,
    verification: str | None = None,
    attestation: str | None = None,
) -> IncomingCall:
    """A call as the app would see it, from what an admin typed; checked, no I/O.
    `anonymous` is a call with presentation prohibited; `verification` is success, failed
    or none, as STIR/SHAKEN would have found it."""
    if attestation is not None and attestation.upper() not in ("A", "B", "C"):
        raise InvalidInput("attestation", f"expected A, B or C, got {attestation!r}")
    status = {"success": Status.PASSED, "failed": Status.FAILED, "none": Status.NONE}
    if verification is not None and verification.lower() not in status:
        raise InvalidInput(
            "verification", f"expected success, failed or none, got {verification!r}"
        )
    if attestation is not None and verification is None:
        verification = "success"
    checked = UNVERIFIED
    if verification is not None and verification.lower() != "none":
        result = "success" if verification.lower() == "success" else "signature_validation"
        letter = attestation.upper() if attestation else None
        checked = Verification(status[verification.lower()], letter, result, "identity")
    return screener.incoming(
        caller,
        parse_extension(extension, "extension"),
        region,
        name=name,
        presentation="prohib" if anonymous else "",
        verification=checked,
    )


# -- policies and caller names ---------------------------------------------------------------

_KINDS = ", ".join(k.value for k in PolicyKind)
#: Longest name pattern: a caller name is at most 128 characters, most patterns are short.
MAX_PATTERN = 64


def parse_policy_kind(raw: str, field: str = "kind") -> PolicyKind:
    for kind in PolicyKind:
        if raw.strip().lower() == kind.value.lower():
            return kind
    raise InvalidInput(field, f"expected one of {_KINDS}; got {raw!r}")


def new_policy(
    kind: str,
    action: str,
    code: str | int | None,
    extension: str | None = None,
    source: str = "cli",
) -> NewPolicy:
    """Check every field of a policy (no I/O); raises InvalidInput naming the field."""
    what = parse_policy_kind(kind)
    if action.strip().lower() not in ("reject", "challenge", "continue"):
        raise InvalidInput("action", f"expected reject, challenge or continue, got {action!r}")
    act = Action(action.strip().lower())
    if act is not Action.REJECT and code is not None and str(code) != "":
        # A refused challenge's code is one setting for all (challenge.code).
        raise InvalidInput("code", "only a rejecting policy has a SIP code")
    # 608 by default: a policy's verdict is the system's, not the callee's (RFC 8688).
    sip_code = None
    if act is Action.REJECT:
        sip_code = parse_code(608 if code is None or code == "" else code)
    ext = parse_extension(extension) if extension is not None else None
    return NewPolicy(what, ext, act, sip_code, source)


def parse_name_pattern(raw: str, field: str = "pattern") -> str:
    """A caller-name glob (`*SPAM*`, `Scam Likely`), kept in lower case: matching ignores
    case."""
    text = " ".join(raw.split())
    if not text or not text.strip("*?"):
        raise InvalidInput(field, f"expected a name or a pattern like '*SPAM*', got {raw!r}")
    if len(text) > MAX_PATTERN or not text.isprintable():
        raise InvalidInput(field, f"expected one line of at most {MAX_PATTERN} characters")
    return text.lower()


def new_name(
    kind: NameKind,
    pattern: str,
    *,
    extension: str | None = None,
    code: int | str | None = None,
    reason: str | None = None,
    source: str = "cli",
) -> NewName:
    return NewName(
        kind,
        parse_name_pattern(pattern),
        parse_extension(extension) if extension is not None else None,
        parse_code(code if code is not None else 607) if kind == "block" else None,
        parse_reason(reason),
        source,
    )


# -- console accounts ------------------------------------------------------------------------

_USER = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def new_user(name: str, role: str, extension: str | None) -> tuple[str, str, str | None]:
    """(name, role, extension) for `screening user add`, checked; a user (not an admin)
    needs the extension whose calls they see."""
    if not _USER.fullmatch(name):
        raise InvalidInput("name", f"expected 1-64 letters, digits, . _ @ or -, got {name!r}")
    if role not in ("admin", "user"):
        raise InvalidInput("role", f"expected admin or user, got {role!r}")
    if role == "user" and extension is None:
        raise InvalidInput("extension", "a user needs the extension whose calls they see")
    if role == "admin" and extension is not None:
        raise InvalidInput("extension", "an admin sees every extension; leave it out")
    return name, role, parse_extension(extension, "extension") if extension else None
