"""/api/v1/policies: everyone reads those that apply to them; admins set and remove."""

from __future__ import annotations

from screening.service import ops, parse
from screening.service.views import PolicyView, policy_view
from screening.web.api.door import Answer, Ask, Body, Operation, Param, Text
from screening.web.api.params import EXTENSION


class PolicyBody(Body):
    action: str = "reject"  # reject, challenge or continue
    code: Text | None = None  # reject: 607 or 608
    extension: Text | None = None


POLICY = Param("policy", "path", required=True)


def list_policies(ask: Ask) -> Answer:
    found = ops.list_policies(ask.engine, ask.own(ask.extension()))
    return 200, [policy_view(p) for p in found]


def set_policy(ask: Ask) -> Answer:
    body = ask.sent(PolicyBody)
    new = parse.new_policy(
        ask.path["policy"],
        body.action,
        None if body.code is None else str(body.code),
        None if body.extension is None else str(body.extension),
        source="api",
    )
    saved, created = ops.set_policy(ask.engine, new, by=ask.actor)
    return (201 if created else 200), policy_view(saved)


def remove_policy(ask: Ask) -> Answer:
    kind = parse.parse_policy_kind(ask.path["policy"], "kind")
    removed = ops.remove_policy(ask.engine, kind, ask.extension(), by=ask.actor)
    return 200, policy_view(removed)


OPERATIONS = (
    Operation(
        "GET",
        "/policies",
        list_policies,
        "policies (a user's: those that apply to their extension)",
        list[PolicyView],
        params=(EXTENSION,),
    ),
    Operation(
        "PUT",
        "/policies/{policy}",
        set_policy,
        "set a policy (admins)",
        PolicyView,
        params=(POLICY,),
        body=PolicyBody,
        created=True,
        admin_only=True,
    ),
    Operation(
        "DELETE",
        "/policies/{policy}",
        remove_policy,
        "remove a policy (admins)",
        PolicyView,
        params=(POLICY, EXTENSION),
        errors=(400, 403, 404),
        admin_only=True,
    ),
)
