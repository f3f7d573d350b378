"""Errors as the admin reads them at the command line: a field is named by the flag or
argument the admin typed, not by its key in the services (core.errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from screening.core import errors
from screening.core.errors import InvalidInput, ScreeningError

#: The services name a field by its key (core.errors); an admin typed it as this flag or
#: argument. A command whose flag differs says so with `flags`.
FLAGS = {
    "extension": "--for",
    "code": "--code",
    "reason": "--reason",
    "expires": "--expires",
    "action": "--action",
    "kind": "KIND",
    "pattern": "--name",
    "days": "--days",
    "from": "--from",
    "to": "--to",
    "tz": "--tz",
    "since": "--since",
    "until": "--until",
    "id": "ID",
    "name": "NAME",
    "role": "--role",
    "caller": "--caller",
    "decision": "--decision",
    "at": "--at",
    "attestation": "--attestation",
    "verification": "--verification",
}


def worded(e: ScreeningError) -> str:
    """An error as the admin reads it at the command line: fields named by their flags."""
    return errors.worded(e, FLAGS)


@contextmanager
def flags(**renamed: str) -> Iterator[None]:
    """The service names a field as its records do; the CLI as the admin typed it."""
    try:
        yield
    except InvalidInput as e:
        raise InvalidInput(renamed.get(e.field, e.field), e.detail) from None
