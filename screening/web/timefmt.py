"""Times as the console shows them: in the admin's zone (web.timezone) with the zone's
abbreviation, inside <time datetime="...Z">, so the instant itself is in the page too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from markupsafe import Markup, escape

#: A date and time; the filter takes others ("%H:%M:%S" where the day is today).
MINUTE = "%Y-%m-%d %H:%M"


def local(value: datetime, zone: str, fmt: str = MINUTE) -> Markup:
    """`value` (UTC) in `zone`, "2026-12-01 17:30 CET", marked up with the UTC instant."""
    if value.tzinfo is None:  # the store hands out aware UTC; a naive one is UTC too
        value = value.replace(tzinfo=UTC)
    instant = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        here = value.astimezone(ZoneInfo(zone))
    except (OverflowError, ValueError):  # near the year 9999, east of UTC: show UTC
        here = value.astimezone(UTC)
    return Markup('<time datetime="{}">{} {}</time>').format(
        instant, here.strftime(fmt), here.strftime("%Z")
    )


def zone_label(zone: str, now: datetime | None = None) -> str:
    """The zone as a page names it: "Europe/Berlin (CET, UTC+01:00)", or "UTC"."""
    if zone == "UTC":
        return zone
    here = (now or datetime.now(UTC)).astimezone(ZoneInfo(zone))
    offset = here.strftime("%z")
    return f"{zone} ({here.strftime('%Z')}, UTC{offset[:3]}:{offset[3:]})"


@pass_context
def local_filter(context: Any, value: datetime | None, fmt: str = MINUTE) -> Markup:
    """`{{ at|local }}`: in the page's zone (Console.page puts it in every context)."""
    if value is None:
        return Markup("")
    return local(value, str(context["zone"]), fmt)


def register(env: Any) -> None:
    env.filters["local"] = local_filter
    env.globals["zone_label"] = lambda zone: escape(zone_label(zone))
