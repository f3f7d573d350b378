"""The ARI door's paths out: every one ends with the call continued or rejected."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from screening.asterisk.ari import AriClient, StasisStart, parse_stasis_start
from screening.asterisk.dialplan import REJECT_CONTEXT
from screening.asterisk.stasis import ScreeningApp
from screening.config import Config
from screening.core import features
from screening.core.decision import Entry, Rules
from screening.service.features import FeatureCodes, FeatureRunner
from screening.service.screener import Screener
from screening.store.calllog import CallRecord
from tests.dialplan_strings import call_text

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class RecordingAri:
    def __init__(self, fail_reject: bool = False) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.fail_reject = fail_reject

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str | None = None
    ) -> bool:
        if context is not None and self.fail_reject:
            raise RuntimeError("HTTP 500")
        self.calls.append((channel_id, context, extension))
        return True


class RecordingLog:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.rows.append(record)

    async def flush(self) -> None:
        pass


def start(caller: str = "5551234567", args: tuple[str, ...] | None = None) -> StasisStart:
    args = ("call", call_text("201", caller)) if args is None else args
    return StasisStart("chan-1", "PJSIP/trunk-1", caller, "", "201", args)


def make_app(
    lookup: Any, ari: RecordingAri, log: RecordingLog, timeout: float = 0.3
) -> ScreeningApp:
    return build(ari, lookup, log, Config(decision_timeout=timeout))


async def _flushed() -> None:
    pass


def build(
    ari: RecordingAri,
    lookup: Any,
    log: RecordingLog,
    config: Config | None = None,
    runner: FeatureRunner | None = None,
) -> ScreeningApp:
    """The ARI door with a real screener and feature service around test doubles."""
    screener = Screener(config or Config(), lookup, log, clock=lambda: NOW)
    feature_codes = FeatureCodes(runner, _flushed, clock=lambda: NOW)
    return ScreeningApp(cast(AriClient, ari), screener, feature_codes)


BLOCKED = Rules(block=[Entry(3, "block", "+15551234567", False, None, 608, "robocaller")])


def test_blocked_call_continues_into_the_reject_context_at_its_code() -> None:
    ari, log = RecordingAri(), RecordingLog()
    asyncio.run(make_app(lambda *a: BLOCKED, ari, log).screen(start()))
    assert ari.calls == [("chan-1", REJECT_CONTEXT, "608")]
    row = log.rows[0]
    assert (row.decision, row.sip_code, row.rule_kind, row.rule_id) == ("rejected", 608, "block", 3)
    assert (row.caller_raw, row.caller, row.extension) == ("5551234567", "+15551234567", "201")


def test_lookup_receives_normalised_caller_and_stasis_argument() -> None:
    seen: list[tuple[Any, ...]] = []

    def lookup(*args: Any) -> Rules:
        seen.append(args)
        return Rules()

    ari, log = RecordingAri(), RecordingLog()
    asyncio.run(make_app(lookup, ari, log).screen(start(args=("call", call_text("305")))))
    assert seen == [("+15551234567", "305", NOW)]
    assert ari.calls == [("chan-1", None, None)]


def test_database_error_continues_the_call_unscreened(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: Any) -> Rules:
        raise ConnectionError("database is down")

    ari, log = RecordingAri(), RecordingLog()
    asyncio.run(make_app(broken, ari, log).screen(start()))
    assert ari.calls == [("chan-1", None, None)]
    assert log.rows[0].decision == "allowed" and log.rows[0].rule_kind == "error"
    assert "database is down" in caplog.text


def test_slow_lookup_is_cut_off_and_the_call_continued() -> None:
    def slow(*_: Any) -> Rules:
        time.sleep(1.0)
        return BLOCKED

    ari, log = RecordingAri(), RecordingLog()
    asyncio.run(make_app(slow, ari, log, timeout=0.1).screen(start()))
    assert ari.calls == [("chan-1", None, None)]
    assert "timed out" in log.rows[0].reason
    assert log.rows[0].decision_us < 900_000


def test_failed_reject_falls_back_to_continue() -> None:
    ari, log = RecordingAri(fail_reject=True), RecordingLog()
    asyncio.run(make_app(lambda *a: BLOCKED, ari, log).screen(start()))
    assert ari.calls == [("chan-1", None, None)]
    assert log.rows[0].decision == "allowed"


@pytest.mark.parametrize(
    "caller", ["", "anonymous", "x" * 5000, "\udcff", "'; DROP TABLE call_log"]
)
def test_hostile_caller_ids_are_decided(caller: str) -> None:
    ari, log = RecordingAri(), RecordingLog()
    asyncio.run(make_app(lambda *a: BLOCKED, ari, log).screen(start(caller)))
    assert ari.calls == [("chan-1", None, None)]
    assert log.rows[0].caller is None


def test_stasis_start_parsing_tolerates_missing_fields() -> None:
    parsed = parse_stasis_start({"type": "StasisStart", "channel": {"id": "c1"}})
    assert parsed == StasisStart("c1", "", "", "", "", ())
    assert parse_stasis_start({"type": "StasisEnd"}) is None


def feature_start(
    context: str = "screening-feature", args: tuple[str, ...] = ("feature", "mark-spam", "201")
) -> StasisStart:
    return StasisStart("chan-9", "PJSIP/201-1", "201", "", "s", args, context)


def feature_app(ari: RecordingAri, runner: Any) -> ScreeningApp:
    return build(ari, lambda *a: Rules(), RecordingLog(), runner=runner)


def test_feature_outcome_decides_where_the_call_continues() -> None:
    seen: list[tuple[str, str]] = []

    def runner(name: str, ext: str, now: datetime) -> features.Result:
        seen.append((name, ext))
        return features.Result(features.Outcome.MARKED, "ok")

    ari = RecordingAri()
    app = feature_app(ari, runner)
    asyncio.run(app.feature(feature_start()))
    assert seen == [("mark-spam", "201")]
    assert ari.calls == [("chan-9", "screening-feature-result", "marked")]


@pytest.mark.parametrize(
    "start",
    [feature_start(context="screening-inbound"), feature_start(args=("feature", "mark-spam"))],
)
def test_feature_requests_from_elsewhere_are_refused(start: StasisStart) -> None:
    def runner(*_: Any) -> Any:
        raise AssertionError("must not run")

    ari = RecordingAri()
    app = feature_app(ari, runner)
    asyncio.run(app.feature(start))
    assert ari.calls == [("chan-9", "screening-feature-result", "not-possible")]


def test_feature_failure_still_ends_the_call_with_a_prompt() -> None:
    def broken(*_: Any) -> Any:
        raise ConnectionError("database is down")

    ari = RecordingAri()
    app = feature_app(ari, broken)
    asyncio.run(app.feature(feature_start()))
    assert ari.calls == [("chan-9", "screening-feature-result", "not-possible")]


def test_one_warning_per_outage_and_one_when_it_recovers(caplog: pytest.LogCaptureFixture) -> None:
    state = {"down": True}

    def flaky(*_: Any) -> Rules:
        if state["down"]:
            raise ConnectionError("database is down")
        return Rules()

    ari, log = RecordingAri(), RecordingLog()
    app = make_app(flaky, ari, log)

    async def calls(n: int) -> None:
        for _ in range(n):
            await app.screen(start())

    caplog.set_level("WARNING")
    asyncio.run(calls(5))
    state["down"] = False
    asyncio.run(calls(3))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "calls pass unscreened" in warnings[0] and "work again" in warnings[1]
    assert len(ari.calls) == 8  # every call was continued


def test_a_channel_announced_twice_is_decided_once() -> None:
    ari, log = RecordingAri(), RecordingLog()
    app = make_app(lambda *a: BLOCKED, ari, log)
    event = {
        "type": "StasisStart",
        "args": ["201"],
        "channel": {"id": "chan-1", "caller": {"number": "5551234567"}},
    }

    async def scenario() -> None:
        async def events() -> Any:
            yield event
            yield event  # e.g. the recovery scan at connect raced with the StasisStart

        await app._read(events())
        await asyncio.gather(*app._calls)
        await app._read(events())  # and once more after it was decided
        await asyncio.gather(*app._calls)

    asyncio.run(scenario())
    assert ari.calls == [("chan-1", REJECT_CONTEXT, "608")]
    assert len(log.rows) == 1
