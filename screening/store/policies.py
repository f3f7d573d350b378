"""Policy and caller-name entry edits: one at a time (CLI) or in bulk (import)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from screening.core.decision import Action, NameEntry, Policy, PolicyKind
from screening.store.models import GLOBAL
from screening.store.models import NameEntry as NameRow
from screening.store.models import Policy as PolicyRow

NameKind = Literal["block", "allow"]


@dataclass(frozen=True)
class NewPolicy:
    kind: PolicyKind
    extension: str | None
    action: Action
    sip_code: int | None  # reject only
    source: str = "cli"


@dataclass(frozen=True)
class NewName:
    kind: NameKind
    pattern: str  # lower case, checked (service.parse.parse_name_pattern)
    extension: str | None
    sip_code: int | None  # blocks only
    reason: str | None
    source: str = "cli"


def _policy(row: PolicyRow) -> Policy:
    return Policy(row.id, PolicyKind(row.kind), Action(row.action), row.sip_code, row.scope or None)


def _name(row: NameRow) -> NameEntry:
    kind: NameKind = "block" if row.kind == "block" else "allow"
    return NameEntry(row.id, kind, row.pattern, row.scope or None, row.sip_code, row.reason)


def set_policy(session: Session, new: NewPolicy, now: datetime) -> tuple[Policy, bool]:
    """Create or replace the policy of this kind for this scope; (policy, created)."""
    scope = new.extension or GLOBAL
    row = session.scalar(
        select(PolicyRow).where(PolicyRow.kind == new.kind.value, PolicyRow.scope == scope)
    )
    created = row is None
    if row is None:
        row = PolicyRow(kind=new.kind.value, scope=scope, created_at=now)
        session.add(row)
    row.action = new.action.value
    row.sip_code = new.sip_code
    row.source = new.source
    session.flush()
    return _policy(row), created


def list_policies(session: Session, extension: str | None = None) -> list[Policy]:
    """Global policies and every extension's, or only the ones that apply to `extension`."""
    query = select(PolicyRow).order_by(PolicyRow.scope, PolicyRow.kind)
    if extension is not None:
        query = query.where(PolicyRow.scope.in_([GLOBAL, extension]))
    order = list(PolicyKind)
    policies = [_policy(r) for r in session.scalars(query)]
    return sorted(policies, key=lambda p: (p.extension or "", order.index(p.kind)))


def any_challenge(session: Session) -> bool:
    """Whether any policy challenges its callers."""
    found = session.scalar(
        select(PolicyRow.id).where(PolicyRow.action == Action.CHALLENGE.value).limit(1)
    )
    return found is not None


def remove_policy(session: Session, kind: PolicyKind, extension: str | None) -> Policy | None:
    scope = extension or GLOBAL
    row = session.scalar(
        select(PolicyRow).where(PolicyRow.kind == kind.value, PolicyRow.scope == scope)
    )
    if row is None:
        return None
    policy = _policy(row)
    session.delete(row)
    return policy


def upsert_name(session: Session, new: NewName, now: datetime) -> tuple[NameEntry, bool]:
    scope = new.extension or GLOBAL
    row = session.scalar(
        select(NameRow).where(
            NameRow.kind == new.kind, NameRow.pattern == new.pattern, NameRow.scope == scope
        )
    )
    created = row is None
    if row is None:
        row = NameRow(kind=new.kind, pattern=new.pattern, scope=scope, created_at=now)
        session.add(row)
    row.sip_code = new.sip_code
    row.reason = new.reason
    row.source = new.source
    session.flush()
    return _name(row), created


def bulk_upsert(
    session: Session, policies: Sequence[NewPolicy], names: Sequence[NewName], now: datetime
) -> None:
    """For import: a handful of rows, one statement each, in the caller's transaction."""
    for policy in policies:
        set_policy(session, policy, now)
    for name in names:
        upsert_name(session, name, now)


def list_names(
    session: Session, kind: NameKind | None = None, extension: str | None = None
) -> list[NameEntry]:
    query = select(NameRow).order_by(NameRow.id)
    if kind is not None:
        query = query.where(NameRow.kind == kind)
    if extension is not None:
        query = query.where(NameRow.scope == extension)
    return [_name(r) for r in session.scalars(query)]


def remove_name(
    session: Session, kind: NameKind, pattern: str, extension: str | None
) -> NameEntry | None:
    row = session.scalar(
        select(NameRow).where(
            NameRow.kind == kind,
            NameRow.pattern == pattern,
            NameRow.scope == (extension or GLOBAL),
        )
    )
    if row is None:
        return None
    entry = _name(row)
    session.delete(row)
    return entry
