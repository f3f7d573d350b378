"""/api/v1/calls, /check and /stats: the call log, "this was spam", what would happen to a
call now, and counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from screening.service import calls as call_log
from screening.service import ops, parse, views
from screening.service.views import CallPage, CheckView, SpamView, StatsView, TopCaller, call_view
from screening.web.api.door import Answer, Ask, Operation, Param
from screening.web.api.params import EXTENSION, LIMIT, CallId


def calls(ask: Ask) -> Answer:
    wanted = call_log.query_filter(ask.region, ask.query)
    page = call_log.list_calls(ask.engine, ask.actor, wanted, ask.limit())
    return 200, CallPage(calls=[call_view(r, ask.admin) for r in page.calls], next=page.next)


def spam(ask: Ask) -> Answer:
    call_id = parse.parse_id(ask.path["id"], maximum=parse.MAX_CALL_ID)
    undo = ask.query.get("undo") == "1"
    result = call_log.mark_spam(ask.engine, ask.actor, ask.door.reputation, call_id, undo=undo)
    return 200, SpamView(outcome=result.outcome.value, detail=result.detail)


def check(ask: Ask) -> Answer:
    asked = ask.query.get("extension")
    if asked is None and not ask.admin:
        asked = ask.who.extension  # a user's own, unless they name it
    extension = parse.parse_extension(asked or "", "extension")
    ask.own(extension)
    call = parse.incoming(ask.query.get("caller", ""), extension, ask.region)
    decision = ops.check(ask.engine, call, datetime.now(UTC))
    policy = decision.policy.value if decision.policy else None
    reason = (
        decision.reason if ask.admin else views.reason_for_user(decision.rule_kind, policy, None)
    )
    return 200, CheckView(
        caller=call.caller_raw,
        caller_normalised=call.caller,
        extension=extension,
        action=decision.action.value,
        sip_code=views.as_code(decision.sip_code),
        rule_kind=decision.rule_kind,
        rule_id=decision.rule_id if ask.admin else None,
        policy=policy,
        reason=reason,
    )


def stats(ask: Ask) -> Answer:
    since = parse.parse_since(ask.query.get("since", "7d"), datetime.now(UTC), field="since")
    st = call_log.stats(ask.engine, since, 10)
    return 200, StatsView(
        since=views.utc(st.since),
        calls=st.calls,
        allowed=st.allowed,
        rejected_607=st.rejected_607,
        rejected_608=st.rejected_608,
        failed_open=st.failed_open,
        challenges=st.challenges,
        top_callers=[TopCaller(caller=c, calls=n) for c, n in st.top_callers],
    )


Decision = Literal["allowed", "rejected", "abandoned"]

OPERATIONS = (
    Operation(
        "GET",
        "/calls",
        calls,
        "the call log, newest first, a page at a time",
        CallPage,
        params=(
            EXTENSION,
            Param("caller"),
            Param("decision", kind=Decision),
            Param("before", kind=CallId, description="the `next` of the previous page"),
            LIMIT,
        ),
    ),
    Operation(
        "POST",
        "/calls/{id}/spam",
        spam,
        "this call was spam (as *60); ?undo=1 takes it back",
        SpamView,
        params=(Param("id", "path", CallId, required=True), Param("undo", kind=Literal["1"])),
        errors=(400, 403, 404),
    ),
    Operation(
        "GET",
        "/check",
        check,
        "what would happen to a call from CALLER to EXTENSION now, and why",
        CheckView,
        params=(Param("caller", required=True), Param("extension", required=True)),
    ),
    Operation(
        "GET",
        "/stats",
        stats,
        "counts since a time (admins)",
        StatsView,
        params=(Param("since", description="1h, 7d, YYYY-MM-DD"),),
        admin_only=True,
    ),
)
