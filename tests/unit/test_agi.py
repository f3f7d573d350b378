"""The FastAGI protocol and server against hostile and odd input (no Asterisk here: the
end-to-end suite has the real one). The server runs on loopback with a test peer."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.asterisk import agi
from screening.asterisk.fastagi import FastAgiServer, exposure_warning
from screening.config import Config, parse_listen
from screening.core.decision import Entry, Rules
from screening.core.errors import ConfigError
from screening.core.features import Outcome, Result
from screening.service.features import FeatureCodes
from screening.service.screener import Screener
from screening.store.calllog import CallRecord
from tests.dialplan_strings import call_text

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FACTS = call_text("201", "+15551234567", "Robo")
ENV = {
    "agi_network": "yes",
    "agi_network_script": f"screen?{FACTS}",
    "agi_request": f"agi://127.0.0.1:4573/screen?{FACTS}",
    "agi_channel": "PJSIP/trunk-00000001",
    "agi_uniqueid": "1764500000.1",
    "agi_callerid": "+15551234567",
    "agi_calleridname": "Robo",
    "agi_context": "screening-inbound-agi",
    "agi_extension": "201",
}
#: An older dialplan: the dialled number and the headers as arguments, no facts in the URL.
LEGACY = {
    **ENV,
    "agi_network_script": "screen",
    "agi_request": "agi://127.0.0.1:4573/screen",
    "agi_arg_1": "201",
}


def env_bytes(env: dict[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\n".encode() for k, v in env.items()) + b"\n"


# -- the protocol ---------------------------------------------------------------------------


def test_environment_lines_end_at_a_blank_line() -> None:
    assert agi.env_line(b"agi_callerid: +15551234567\n") == ("agi_callerid", "+15551234567")
    assert agi.env_line(b"agi_calleridname: \n") == ("agi_calleridname", "")
    assert agi.env_line(b"\n") is None
    assert agi.env_line(b"\r\n") is None


def test_network_script_keeps_the_query_and_arguments_come_in_order() -> None:
    req = agi.request(
        {**LEGACY, "agi_network_script": "screen?v=2&x=%20y", "agi_arg_2": "two", "agi_arg_4": "x"}
    )
    assert req.script == "screen"
    assert req.query == "v=2&x=%20y"  # as written: the facts are base64, never unquoted
    assert req.args == ("201", "two")  # agi_arg_4 follows a gap: not an argument


def test_lines_a_caller_id_slips_in_are_counted_and_never_obeyed() -> None:
    # pjsip URL-decodes the From user and res_agi writes it as it is: "%0A" is a new line.
    forged = "+15551234567\nagi_channel: forged\nagi_uniqueid: 1\nagi_context: screening-feature"
    block = env_bytes({**ENV, "agi_callerid": forged})
    req = agi.environment(block)
    assert req.tampered
    assert (req.channel, req.unique_id) == ("PJSIP/trunk-00000001", "1764500000.1")
    assert req.context == ""  # twice in the environment: not believed
    assert req.query == FACTS  # written before any far-end value
    assert not agi.environment(env_bytes(ENV)).tampered


def test_a_long_line_or_hundreds_of_lines_from_the_far_end_are_not_a_refusal() -> None:
    # Refusing would end the AGI and let the dialplan route the caller unscreened.
    long_name = agi.environment(env_bytes({**ENV, "agi_calleridname": "x" * 20_000}))
    assert long_name.tampered and long_name.query == FACTS
    many = agi.environment(env_bytes({**ENV, "agi_callerid": "1" + "\nx" * 300}))
    assert many.tampered and many.unique_id == "1764500000.1"
    with pytest.raises(agi.AgiProtocolError):
        agi.environment(b"\x16\x03\x01 not agi\n\n")  # a first line that is not AGI


@given(st.binary(max_size=300))
def test_any_environment_line_parses_or_is_refused(raw: bytes) -> None:
    try:
        parsed = agi.env_line(raw)
    except agi.AgiProtocolError:
        return
    assert parsed is None or parsed[0].startswith("agi_")


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=30))
def test_any_environment_gives_a_request(env: dict[str, str]) -> None:
    req = agi.request(env)
    assert isinstance(req.args, tuple) and isinstance(req.script, str)


@given(st.binary(max_size=2000))
def test_any_bytes_after_a_first_agi_line_give_a_request(rest: bytes) -> None:
    req = agi.environment(b"agi_network: yes\n" + rest)
    assert isinstance(req.query, str)


def test_commands_are_echoed_with_the_sessions_token() -> None:
    line = agi.echo_command(agi.set_expression("SCREENING_RESULT", "607"), "ab12")
    assert line == b"GET FULL VARIABLE ${SET(SCREENING_RESULT=607)}-ab12\n"
    assert agi.echoed("200 result=1 (607-ab12)", "ab12") == "607"
    # Anything else is not the answer: other tokens, other codes, a HANGUP.
    for line_ in ["200 result=1 (607-zz)", "200 result=1", "510 Invalid", "HANGUP", ""]:
        assert agi.echoed(line_, "ab12") is None


@given(st.text(max_size=60))
def test_only_plain_values_are_ever_set(value: str) -> None:
    # A value res_agi would split, or Asterisk would read as more than text, is refused.
    try:
        expression = agi.set_expression("SCREENING_RESULT", value)
    except ValueError:
        return
    assert not set(value) & set(' "\\${}()\t\r\n:;')
    assert expression == f"SET(SCREENING_RESULT={value})"


# -- the server, with a test peer in place of Asterisk --------------------------------------


class Log:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.rows.append(record)


async def _nothing() -> None:
    pass


BLOCKED = Rules(block=[Entry(3, "block", "+15551234567", False, None, 607, "robocaller")])


_COMMAND = re.compile(rb"GET FULL VARIABLE \$\{(.*)\}-([0-9a-f]+)\n")


class Harness:
    def __init__(self, rules: Rules = BLOCKED, runner: Any = None, most: int = 100) -> None:
        self.log = Log()
        screener = Screener(Config(), lambda *a: rules, self.log, clock=lambda: NOW)
        self.server = FastAgiServer(
            screener, FeatureCodes(runner, _nothing), max_connections=most, env_timeout=0.3
        )

    async def exchange(self, send: bytes, before: bytes = b"", answers: int = 5) -> list[str]:
        """Connect like Asterisk: send `send`, then answer up to `answers` commands as
        res_agi would (evaluating ${SET(N=V)} and DIALPLAN_EXISTS), each answer preceded by
        `before`. Returns what the server set, as "NAME=value"."""
        srv = await self.server.listen("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(send)
            sets: list[str] = []
            for _ in range(answers):
                line = await asyncio.wait_for(reader.readline(), 5)
                if not line:
                    break
                m = _COMMAND.fullmatch(line)
                assert m is not None, line
                expression, token = m.group(1).decode(), m.group(2)
                value = "1" if expression.startswith("DIALPLAN_EXISTS(") else ""
                if expression.startswith("SET("):
                    sets.append(expression[4:-1])
                    value = expression[4:-1].partition("=")[2]
                writer.write(before + b"200 result=1 (" + value.encode() + b"-" + token + b")\n")
            rest = await asyncio.wait_for(reader.read(), 5)  # the server closes
            assert rest == b""
            writer.close()
            await self.done()
        return sets

    async def done(self) -> None:
        """Wait for the server to finish its connections (it half-closes before it logs)."""
        for _ in range(500):
            if self.server.open_connections == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the server kept a connection open")


def test_a_blocked_caller_sets_607() -> None:
    h = Harness()
    assert asyncio.run(h.exchange(env_bytes(ENV))) == ["SCREENING_RESULT=607"]
    [row] = h.log.rows
    assert (row.decision, row.sip_code, row.door, row.channel_id) == (
        "rejected",
        607,
        "agi",
        "1764500000.1",
    )


def test_an_unknown_caller_continues() -> None:
    h = Harness(Rules())
    assert asyncio.run(h.exchange(env_bytes(ENV))) == ["SCREENING_RESULT=continue"]


def test_a_hangup_before_the_answer_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    asyncio.run(h.exchange(env_bytes(ENV), before=b"HANGUP\n"))
    assert h.log.rows[0].decision == "rejected"  # decided; the caller had gone
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_peer_that_never_answers_the_command_is_cut_off() -> None:
    h = Harness()

    async def scenario() -> None:
        srv = await h.server.listen("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(env_bytes(ENV))
            line = await reader.readline()
            assert line.startswith(b"GET FULL VARIABLE ${SET(SCREENING_RESULT=607)}-")
            # ... and answers, but not with the echo: the server waits for it within its
            # bound, gives up and closes.
            writer.write(b"200 result=1\n510 Invalid or unknown command\n")
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            await h.done()

    asyncio.run(scenario())
    assert h.log.rows[0].rule_kind == "error"  # the reject was not confirmed: failed open


@pytest.mark.parametrize(
    "send",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
        b"agi_network: yes\n" + b"agi_x: y\n" * 500,  # too many lines
        b"agi_network_script: " + b"x" * 20_000 + b"\n\n",  # past 8 KB
        b"agi_network: yes\n",  # never finished
        b"",  # silence
    ],
    ids=["tls", "too-many-lines", "long-line", "unfinished", "silent"],
)
def test_what_is_not_fastagi_is_closed_without_a_decision(send: bytes) -> None:
    h = Harness()
    assert asyncio.run(h.exchange(send, answers=0)) == []
    assert h.log.rows == []


def test_a_name_past_8_kb_does_not_get_a_blocked_caller_through() -> None:
    # The environment used to be refused, the AGI ended without a result, and the
    # dialplan routed the blocked caller on, unscreened.
    h = Harness()
    env = env_bytes({**ENV, "agi_calleridname": "x" * 70_000})
    assert asyncio.run(h.exchange(env)) == ["SCREENING_RESULT=607"]


def test_a_caller_id_with_newlines_does_not_get_a_blocked_caller_through() -> None:
    # "%0A" in the From user: lines that are not AGI, then 300 more. Both used to end the
    # AGI without a result (the caller rang, unscreened).
    h = Harness()
    for caller in ["+15551234567\nnot agi", "+15551234567" + "\nx" * 300]:
        env = env_bytes({**ENV, "agi_callerid": caller})
        assert asyncio.run(h.exchange(env)) == ["SCREENING_RESULT=607"]
    assert [r.decision for r in h.log.rows] == ["rejected", "rejected"]


def test_an_environment_a_caller_ends_early_cannot_answer_for_asterisk() -> None:
    # A blank line, a fake response and a fake HANGUP inside the caller ID: the rest of the
    # real environment follows. The decision comes from the URL, and the server reads its
    # answer only after the echo of its own random token.
    h = Harness(Rules(), most=10)
    caller = "x\n\n510 fake\nHANGUP\n200 result=1 (continue-0123abcd)"
    env = env_bytes({**ENV, "agi_callerid": caller})
    assert asyncio.run(h.exchange(env)) == ["SCREENING_RESULT=continue"]
    (row,) = h.log.rows
    assert (row.caller_raw, row.rule_kind) == ("+15551234567", None)


def test_an_older_dialplans_arguments_are_screened_without_carrier_trust(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    carrier = "PTxzaXA6MTt2ZXJzdGF0PVROLVZhbGlkYXRpb24tUGFzc2VkLUFAeD4="  # verstat Passed-A
    old = {**LEGACY, "agi_arg_2": "allowed", "agi_arg_3": "PQ==", "agi_arg_4": "PQ=="}
    old |= {"agi_arg_5": carrier}
    assert asyncio.run(h.exchange(env_bytes(old))) == ["SCREENING_RESULT=607"]
    (row,) = h.log.rows
    assert row.verification is None  # the old positional carrier header is not trusted
    assert "arguments of an older screening" in caplog.text


def test_connections_past_the_limit_are_closed_at_once_and_the_rest_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(most=2)

    async def scenario() -> list[bytes]:
        srv = await h.server.listen("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            extra = await asyncio.wait_for(reader.read(), 1)  # closed at once, unread
            writer.close()
            for _, w in idle:
                w.close()
            await h.done()
            return [extra]

    assert asyncio.run(scenario()) == [b""]
    assert "2 connections open already" in caplog.text
    # Once they are gone, calls are served again.
    assert asyncio.run(h.exchange(env_bytes(ENV))) == ["SCREENING_RESULT=607"]


def test_feature_requests_only_from_the_feature_context() -> None:
    ran: list[tuple[str, str]] = []

    def runner(name: str, ext: str, now: datetime) -> Result:
        ran.append((name, ext))
        return Result(Outcome.MARKED, "ok")

    env = {
        **ENV,
        "agi_network_script": "feature",
        "agi_context": "screening-feature",
        "agi_arg_1": "mark-spam",
        "agi_arg_2": "221",
    }
    h = Harness(runner=runner)
    assert asyncio.run(h.exchange(env_bytes(env))) == ["SCREENING_RESULT=marked"]
    assert ran == [("mark-spam", "221")]
    # The same request from the inbound context (an outside caller): refused, nothing runs.
    outside = {**env, "agi_context": "screening-inbound-agi"}
    assert asyncio.run(h.exchange(env_bytes(outside))) == ["SCREENING_RESULT=not-possible"]
    assert ran == [("mark-spam", "221")]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_warning(host: str) -> None:
    assert exposure_warning(host, 4573) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "pbx.example.com"])
def test_anything_else_is_warned_about(host: str) -> None:
    warning = exposure_warning(host, 4573)
    assert warning is not None and "no authentication" in warning and host in warning


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("127.0.0.1:4573", ("127.0.0.1", 4573)),
        ("4574", ("127.0.0.1", 4574)),
        ("[::1]:4573", ("::1", 4573)),
        (" 10.0.0.5:4573 ", ("10.0.0.5", 4573)),
    ],
)
def test_listen_addresses(raw: str, want: tuple[str, int]) -> None:
    assert parse_listen(raw) == want


@pytest.mark.parametrize("raw", ["", "host", "127.0.0.1:", ":4573", "127.0.0.1:99999", "a b:1"])
def test_bad_listen_addresses_name_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match="SCREENING_AGI_LISTEN: expected HOST:PORT"):
        parse_listen(raw)
