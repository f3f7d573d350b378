"""Errors written for the admin who reads them: each names the field and what was expected.

A field is named by its key, as the JSON and the forms call it (`extension`, `number`,
`code`, `reason`, `expires`, `action`, `kind`, `pattern`, `days`, `from`, `to`, `tz`,
`since`, `until`, `id`, `name`, `role`, `caller`, `decision`, ...); each door words it its
own way: the CLI by its flag (`--for`), the console by its label, the API as it is."""

from __future__ import annotations

from collections.abc import Mapping


class ScreeningError(Exception):
    """Base of every error this package raises on purpose."""

    #: Process exit code when this error reaches the CLI: 2 = bad input, 1 = runtime failure.
    exit_code = 1


#: The longest message an error carries: what was expected comes first, and a value it
#: echoes (quoted, its control characters escaped) is cut, so that a 15 KB field sent to
#: the API or the console is not sent back, logged or shown whole.
MAX_DETAIL = 300


class InvalidInput(ScreeningError):
    """The admin gave a value we cannot use; nothing was written."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        if len(message) > MAX_DETAIL:
            message = message[: MAX_DETAIL - 1] + "…"
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class InvalidNumber(InvalidInput):
    pass


class InvalidSchedule(InvalidInput):
    pass


class ConfigError(InvalidInput):
    pass


class NotFound(ScreeningError):
    """The entry or schedule the admin named does not exist."""


class Forbidden(ScreeningError):
    """Not this user's to see or change: another extension's, or the admins'."""


class DatabaseError(ScreeningError):
    """The database is unreachable, or its schema is not what this version expects."""


def worded(e: ScreeningError, names: Mapping[str, str]) -> str:
    """The error with its field named as a door names it (`names`: key -> the door's word)."""
    if isinstance(e, InvalidInput):
        return f"{names.get(e.field, e.field)}: {e.detail}"
    return str(e)
