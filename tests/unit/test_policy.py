"""The decision core, rule by rule, with no fixtures: (call, rules, now) -> decision."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.core.decision import Action, DndWindow, Entry, IncomingCall, ManualDnd, Rules, decide

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
CALLER = "+15551234567"


def call(caller: str | None = CALLER, ext: str = "201") -> IncomingCall:
    return IncomingCall(caller_raw=caller or "anonymous", caller=caller, extension=ext)


def block(
    value: str = CALLER,
    *,
    id: int = 1,
    prefix: bool = False,
    ext: str | None = None,
    code: int = 607,
    expires: datetime | None = None,
) -> Entry:
    return Entry(id, "block", value, prefix, ext, code, None, expires)


def allow(
    value: str = CALLER,
    *,
    id: int = 100,
    prefix: bool = False,
    ext: str | None = None,
    expires: datetime | None = None,
) -> Entry:
    return Entry(id, "allow", value, prefix, ext, None, None, expires)


def dnd(
    start: str, end: str, days: str = "0123456", tz: str = "UTC", ext: str = "201"
) -> DndWindow:
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    return DndWindow(7, ext, frozenset(int(d) for d in days), time(h1, m1), time(h2, m2), tz)


def test_unknown_caller_is_continued() -> None:
    d = decide(call(), Rules(), NOW)
    assert (d.action, d.sip_code, d.rule_kind) == (Action.CONTINUE, None, None)


def test_blocked_caller_is_rejected_with_607_by_default() -> None:
    d = decide(call(), Rules(block=[block()]), NOW)
    assert (d.action, d.sip_code, d.rule_kind, d.rule_id) == (Action.REJECT, 607, "block", 1)
    assert CALLER in d.reason


def test_block_carries_its_own_code() -> None:
    assert decide(call(), Rules(block=[block(code=608)]), NOW).sip_code == 608


def test_allow_beats_block() -> None:
    d = decide(call(), Rules(allow=[allow()], block=[block()]), NOW)
    assert (d.action, d.rule_kind) == (Action.CONTINUE, "allow")


def test_global_allow_beats_extension_block() -> None:
    d = decide(call(), Rules(allow=[allow()], block=[block(ext="201")]), NOW)
    assert d.action is Action.CONTINUE


def test_extension_allow_is_chosen_before_global_allow() -> None:
    d = decide(call(), Rules(allow=[allow(id=1), allow(id=2, ext="201")]), NOW)
    assert d.rule_id == 2


def test_extension_block_applies_only_to_that_extension() -> None:
    rules = Rules(block=[block(ext="201")])
    assert decide(call(ext="201"), rules, NOW).action is Action.REJECT
    assert decide(call(ext="202"), rules, NOW).action is Action.CONTINUE


def test_extension_block_is_chosen_before_global_block() -> None:
    rules = Rules(
        block=[block(id=1, code=607), block(id=2, ext="201", prefix=True, value="+1", code=608)]
    )
    d = decide(call(), rules, NOW)
    assert (d.rule_id, d.sip_code) == (2, 608)


def test_exact_number_beats_prefix() -> None:
    rules = Rules(block=[block("+1555", id=1, prefix=True, code=608), block(id=2, code=607)])
    assert decide(call(), rules, NOW).rule_id == 2


def test_longest_prefix_wins() -> None:
    rules = Rules(
        block=[
            block("+1", id=1, prefix=True),
            block("+1555123", id=2, prefix=True, code=608),
            block("+1555", id=3, prefix=True),
        ]
    )
    d = decide(call(), rules, NOW)
    assert (d.rule_id, d.sip_code) == (2, 608)


def test_prefix_does_not_match_other_numbers() -> None:
    rules = Rules(block=[block("+1900", prefix=True)])
    assert decide(call(), rules, NOW).action is Action.CONTINUE
    assert decide(call("+19005550000"), rules, NOW).action is Action.REJECT


def test_exact_entry_does_not_match_longer_number() -> None:
    rules = Rules(block=[block("+1555123456")])
    assert decide(call(), rules, NOW).action is Action.CONTINUE


def test_expired_entries_do_not_count() -> None:
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(days=1)
    assert decide(call(), Rules(block=[block(expires=past)]), NOW).action is Action.CONTINUE
    assert decide(call(), Rules(block=[block(expires=future)]), NOW).action is Action.REJECT
    # An expired allow no longer shields the caller from a block.
    rules = Rules(allow=[allow(expires=past)], block=[block()])
    assert decide(call(), rules, NOW).action is Action.REJECT


def test_expiry_is_exclusive_at_the_instant() -> None:
    assert decide(call(), Rules(block=[block(expires=NOW)]), NOW).action is Action.CONTINUE


def test_dnd_rejects_with_608() -> None:
    d = decide(call(), Rules(dnd=[dnd("11:00", "13:00")]), NOW)
    assert (d.action, d.sip_code, d.rule_kind) == (Action.REJECT, 608, "dnd")


def test_dnd_outside_window_continues() -> None:
    assert decide(call(), Rules(dnd=[dnd("13:00", "14:00")]), NOW).action is Action.CONTINUE


def test_dnd_end_is_exclusive_start_inclusive() -> None:
    assert decide(call(), Rules(dnd=[dnd("12:00", "13:00")]), NOW).action is Action.REJECT
    assert decide(call(), Rules(dnd=[dnd("11:00", "12:00")]), NOW).action is Action.CONTINUE


def test_allowed_caller_bypasses_dnd() -> None:
    d = decide(call(), Rules(allow=[allow()], dnd=[dnd("11:00", "13:00")]), NOW)
    assert d.action is Action.CONTINUE


def test_block_code_wins_over_dnd() -> None:
    d = decide(call(), Rules(block=[block()], dnd=[dnd("11:00", "13:00")]), NOW)
    assert (d.sip_code, d.rule_kind) == (607, "block")


def test_dnd_of_another_extension_does_not_apply() -> None:
    assert (
        decide(call(), Rules(dnd=[dnd("11:00", "13:00", ext="202")]), NOW).action is Action.CONTINUE
    )


def test_dnd_only_on_its_days() -> None:
    # NOW is a Tuesday (weekday 1).
    assert decide(call(), Rules(dnd=[dnd("11:00", "13:00", days="1")]), NOW).rejected
    assert not decide(call(), Rules(dnd=[dnd("11:00", "13:00", days="02345")]), NOW).rejected


def test_dnd_is_read_in_the_schedule_time_zone() -> None:
    # 12:00 UTC is 13:00 in Berlin (CET, winter) and 07:00 in New York (EST).
    assert decide(call(), Rules(dnd=[dnd("12:30", "14:00", tz="Europe/Berlin")]), NOW).rejected
    assert not decide(call(), Rules(dnd=[dnd("12:30", "14:00", tz="UTC")]), NOW).rejected
    assert decide(call(), Rules(dnd=[dnd("06:00", "08:00", tz="America/New_York")]), NOW).rejected


def test_dnd_local_day_not_utc_day() -> None:
    # Tuesday 02:00 UTC is still Monday 21:00 in New York: a Monday-only window applies.
    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert decide(
        call(), Rules(dnd=[dnd("20:00", "22:00", days="0", tz="America/New_York")]), at
    ).rejected


def test_dnd_follows_daylight_saving_time() -> None:
    window = Rules(dnd=[dnd("09:00", "10:00", tz="Europe/Berlin")])
    summer = datetime(2026, 7, 1, 7, 30, tzinfo=UTC)  # 09:30 CEST
    winter = datetime(2026, 1, 7, 7, 30, tzinfo=UTC)  # 08:30 CET
    assert decide(call(), window, summer).rejected
    assert not decide(call(), window, winter).rejected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2026, 11, 23, 21, 59, tzinfo=UTC), False),  # Monday before start
        (datetime(2026, 11, 23, 22, 0, tzinfo=UTC), True),  # Monday start
        (datetime(2026, 11, 23, 23, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 24, 0, 0, tzinfo=UTC), True),  # Tuesday, after midnight
        (datetime(2026, 11, 24, 6, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 24, 7, 0, tzinfo=UTC), False),  # end is exclusive
        (datetime(2026, 11, 24, 22, 30, tzinfo=UTC), False),  # Tuesday night: not a listed day
        (datetime(2026, 11, 23, 3, 0, tzinfo=UTC), False),  # Monday early: Sunday not listed
    ],
)
def test_window_across_midnight_belongs_to_the_day_it_starts(
    when: datetime, expected: bool
) -> None:
    rules = Rules(dnd=[dnd("22:00", "07:00", days="0")])  # Monday 22:00 -> Tuesday 07:00
    assert decide(call(), rules, when).rejected is expected


def test_equal_start_and_end_is_the_whole_day() -> None:
    rules = Rules(dnd=[dnd("00:00", "00:00", days="1")])
    assert decide(call(), rules, NOW.replace(hour=0)).rejected
    assert decide(call(), rules, NOW.replace(hour=23, minute=59)).rejected
    assert not decide(call(), rules, NOW + timedelta(days=1)).rejected


def test_no_caller_id_ignores_lists_but_not_dnd() -> None:
    anonymous = call(None)
    everything = Rules(block=[block("+", prefix=True)], allow=[allow("+", prefix=True)])
    d = decide(anonymous, everything, NOW)
    assert d.action is Action.CONTINUE and "no usable caller ID" in d.reason
    assert decide(anonymous, Rules(dnd=[dnd("11:00", "13:00")]), NOW).sip_code == 608


numbers = st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True)


@given(
    caller=st.one_of(st.none(), numbers),
    entries=st.lists(
        st.tuples(
            numbers,
            st.booleans(),
            st.sampled_from([None, "201", "202"]),
            st.sampled_from([607, 608]),
            st.booleans(),
        ),
        max_size=8,
    ),
)
def test_decide_is_total_and_consistent(
    caller: str | None, entries: list[tuple[str, bool, str | None, int, bool]]
) -> None:
    blocks = [
        block(v, id=i, prefix=p, ext=e, code=c)
        for i, (v, p, e, c, a) in enumerate(entries)
        if not a
    ]
    allows = [allow(v, id=i, prefix=p, ext=e) for i, (v, p, e, c, a) in enumerate(entries) if a]
    d = decide(call(caller), Rules(allow=allows, block=blocks), NOW)
    assert d.action in (Action.CONTINUE, Action.REJECT)
    if d.rejected:
        assert d.sip_code in (607, 608) and d.rule_kind == "block"
        assert caller is not None
        assert not any(a.matches(caller) and a.extension in (None, "201") for a in allows)
    elif caller is not None and any(
        b.matches(caller) and b.extension in (None, "201") for b in blocks
    ):
        assert d.rule_kind == "allow"


def test_manual_dnd_rejects_with_608_until_it_ends() -> None:
    rules = Rules(manual_dnd=[ManualDnd(4, "201", until=NOW + timedelta(minutes=5))])
    d = decide(call(), rules, NOW)
    assert (d.sip_code, d.rule_kind, d.rule_id) == (608, "manual-dnd", 4)
    assert not decide(call(), rules, NOW + timedelta(minutes=5)).rejected
    assert not decide(call(ext="202"), rules, NOW).rejected


def test_manual_dnd_without_end_holds_and_allow_still_bypasses_it() -> None:
    rules = Rules(manual_dnd=[ManualDnd(4, "201")], allow=[allow()])
    assert decide(call("+15550000000"), rules, NOW + timedelta(days=400)).rejected
    assert not decide(call(), rules, NOW).rejected
