"""Feature codes dialled from the phones, as names and outcomes (pure: no I/O).

The outcome names are extensions of [screening-feature-result] in the dialplan, which
answers and plays the matching prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FEATURE_SOURCE = "feature code"  # source of the entries feature codes write
FEATURES = ("mark-spam", "undo-spam", "dnd-on", "dnd-off")


class Outcome(StrEnum):
    MARKED = "marked"
    UNMARKED = "unmarked"
    DND_ON = "dnd-on"
    DND_OFF = "dnd-off"
    NOT_POSSIBLE = "not-possible"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str  # for the log line


@dataclass(frozen=True)
class Reputation:
    reports: int = 3  # distinct extensions ...
    days: int = 30  # ... within this many days
