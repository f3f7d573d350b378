"""The 30-day chart of the home and extension pages: stacked bars (allowed, 607 spam, 608
refused) in the console's zone, each day labelled, on a scale with round numbers. Only
geometry and words here; chart.html draws it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

from screening.store.calllog import Day

#: The drawing's units (its viewBox): a left margin for the scale, 20 per day.
LEFT = 36
SLOT = 20
BAR = 14
TOP = 8
HEIGHT = 150
BASE = TOP + HEIGHT
WIDTH = LEFT + 30 * SLOT + 4
#: A day with calls is never thinner than this, however busy the busiest day.
MIN_BAR = 1.5


@dataclass(frozen=True)
class Segment:
    series: str  # "allowed", "spam", "refused": the CSS class and the legend's entry
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    day: Day
    x: float
    label: str  # the day of the month
    month: str  # "Nov" under the first day and each 1st, else ""
    today: bool
    segments: list[Segment]
    title: str  # the tooltip: "Tue 1 Dec: 5 calls, 3 allowed, 1 spam (607), 1 refused (608)"


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, calls) of the scale's lines
    title: str
    desc: str
    width: int = WIDTH
    base: int = BASE


def _scale(busiest: int) -> int:
    """The scale's top: twice a round step (1, 2, 5, 10, 20, ...) that reaches the busiest
    day, so its middle line is a whole number too."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))
    while 2 * step < busiest:
        step = round(step * next(factors))
    return 2 * step


def _said(d: Day) -> str:
    return (
        f"{d.calls} call{'s' if d.calls != 1 else ''}: {d.allowed} allowed, "
        f"{d.spam} spam (607), {d.refused} refused (608)"
        + (f", {d.failed_open} failed open" if d.failed_open else "")
    )


def _day(d: date) -> str:
    return f"{d.strftime('%a')} {d.day} {d.strftime('%b')}"


def _segments(d: Day, top: int, x: float) -> list[Segment]:
    y = float(BASE)
    out = []
    for series, n in (("allowed", d.allowed), ("spam", d.spam), ("refused", d.refused)):
        if n:
            h = max(MIN_BAR, HEIGHT * n / top)
            y -= h
            out.append(Segment(series, round(y, 1), round(h, 1)))
    return out


def build(days: list[Day], zone: str) -> Chart:
    """The chart of `days` (oldest first, the last one today, in `zone`)."""
    top = _scale(max((d.calls for d in days), default=0))
    bars = []
    for i, d in enumerate(days):
        x = LEFT + i * SLOT + (SLOT - BAR) / 2
        month = d.day.strftime("%b") if i == 0 or d.day.day == 1 else ""
        today = i == len(days) - 1
        title = f"{'today, ' if today else ''}{_day(d.day)}: {_said(d)}"
        bars.append(Bar(d, x, str(d.day.day), month, today, _segments(d, top, x), title))
    ticks = [(round(BASE - HEIGHT * n / top, 1), n) for n in (0, top // 2, top)]
    total = Day(
        days[-1].day,
        sum(d.allowed for d in days),
        sum(d.spam for d in days),
        sum(d.refused for d in days),
        sum(d.failed_open for d in days),
    )
    span = f"{_day(days[0].day)} to today, {_day(days[-1].day)}"
    busiest = max(days, key=lambda d: d.calls)
    desc = f"{len(days)} days, {_said(total)}." + (
        f" The busiest day: {_day(busiest.day)}, {busiest.calls}." if busiest.calls else ""
    )
    return Chart(bars, ticks, f"Calls per day, {span} ({zone})", desc)
