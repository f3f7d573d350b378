"""Time-zone names that mean the same zone on every machine: the PBXs that share one
database keep schedules and day summaries by zone name."""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

#: In the zone database but no zone: `localtime` is a link to this machine's /etc/localtime
#: (another zone on the next PBX), `Factory` means "not set", `posixrules` is a template.
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@functools.cache
def _names() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ZONES


def is_zone_name(name: str) -> bool:
    """An IANA zone name (Europe/Berlin, UTC), not a path, an odd spelling or a link."""
    return name == "UTC" or name in _names()
