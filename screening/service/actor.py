"""Who asks the service: an admin, or the user of one extension. Each door makes one (the
CLI is an admin; a console session or an API token is its account) and the services check
it, so a door cannot forget to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from screening.core.errors import Forbidden
from screening.store import accounts
from screening.store.accounts import Account


@dataclass(frozen=True)
class Actor:
    name: str  # as the audit trail names them
    door: str  # "cli", "console" or "api": the audit trail says which
    extension: str | None = None  # a user's own; None for an admin
    admin: bool = True

    @classmethod
    def of(cls, account: Account, door: str) -> Actor:
        admin = account.role == "admin"
        return cls(account.name, door, None if admin else account.extension, admin)

    def scope(self, extension: str | None) -> str | None:
        """The extension a read covers: what an admin asked for (None: all), a user's own
        whatever they asked for; a user naming another one is refused."""
        if self.admin:
            return extension
        self.may(extension or self.extension)
        return self.extension

    def may(self, extension: str | None) -> None:
        """Refuse a user a record that is not their extension's (None: global, the admins')."""
        if self.admin:
            return
        if extension is None:
            raise Forbidden("global entries are the admins'")
        if extension != self.extension:
            raise Forbidden(f"extension {extension} is not yours")

    def admins_only(self, what: str) -> None:
        if not self.admin:
            raise Forbidden(f"{what} are the admins'")

    def action(self, what: str) -> str:
        """The audit trail's action: the API's are marked, as they always were."""
        return f"api {what}" if self.door == "api" else what


CLI = Actor("cli", "cli")


def audit(session: Session, by: Actor, what: str, detail: str, now: datetime) -> None:
    """The audit row of a change, in the change's own transaction: both or neither."""
    accounts.audit(session, by.name, by.action(what), detail[:500], now)
