"""The FastAGI protocol and server against hostile and odd input (no Asterisk here: the
end-to-end suite has the real one). The server runs on loopback with a test peer."""

from __future__ import annotations

import asyncio
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

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ENV = {
    "agi_network": "yes",
    "agi_network_script": "screen",
    "agi_request": "agi://127.0.0.1:4573/screen",
    "agi_channel": "PJSIP/trunk-00000001",
    "agi_uniqueid": "1764500000.1",
    "agi_callerid": "+15551234567",
    "agi_calleridname": "Robo",
    "agi_context": "screening-inbound-agi",
    "agi_extension": "201",
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
        {**ENV, "agi_network_script": "screen?door=b&x=%20y", "agi_arg_2": "two", "agi_arg_4": "x"}
    )
    assert req.script == "screen"
    assert req.query == {"door": "b", "x": " y"}
    assert req.args == ("201", "two")  # agi_arg_4 follows a gap: not an argument


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


@pytest.mark.parametrize(
    ("line", "code", "result", "data"),
    [
        (b"200 result=1\n", 200, 1, None),
        (b"200 result=1 (value with spaces)\n", 200, 1, "value with spaces"),
        (b"200 result=-1\n", 200, -1, None),
        (b"510 Invalid or unknown command\n", 510, None, None),
        (b"511 Command Not Permitted on a dead channel or intercept routine\n", 511, None, None),
    ],
)
def test_responses(line: bytes, code: int, result: int | None, data: str | None) -> None:
    got_code, more, text = agi.response_line(line)
    assert (got_code, more) == (code, False)
    answer = agi.response(got_code, [text])
    assert (answer.code, answer.result, answer.data) == (code, result, data)


def test_a_520_usage_answer_continues_to_its_last_line() -> None:
    assert agi.response_line(b"520-Invalid command syntax.  Proper usage follows:\n")[1]
    assert not agi.response_line(b"520 End of proper usage.\n")[1]


@given(st.binary(max_size=200))
def test_any_response_line_parses_or_is_refused(raw: bytes) -> None:
    try:
        code, _, text = agi.response_line(raw)
    except agi.AgiProtocolError:
        return
    assert 0 <= code <= 999
    agi.response(code, [text])


@given(st.text(max_size=100))
def test_set_variable_is_one_line_whatever_the_value(value: str) -> None:
    line = agi.set_variable("SCREENING_RESULT", value.replace("\n", ""))
    assert line.count(b"\n") == 1 and line.startswith(b'SET VARIABLE SCREENING_RESULT "')


# -- the server, with a test peer in place of Asterisk --------------------------------------


class Log:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.rows.append(record)


async def _nothing() -> None:
    pass


BLOCKED = Rules(block=[Entry(3, "block", "+15551234567", False, None, 607, "robocaller")])


class Harness:
    def __init__(self, rules: Rules = BLOCKED, runner: Any = None, most: int = 100) -> None:
        self.log = Log()
        screener = Screener(Config(), lambda *a: rules, self.log, clock=lambda: NOW)
        self.server = FastAgiServer(
            screener, FeatureCodes(runner, _nothing), max_connections=most, env_timeout=0.3
        )

    async def exchange(self, send: bytes, answers: list[bytes]) -> list[bytes]:
        """Connect like Asterisk: send `send`, then answer each command with the next of
        `answers`. Returns the commands the server wrote."""
        srv = await self.server.listen("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(send)
            commands = []
            for answer in answers:
                line = await asyncio.wait_for(reader.readline(), 5)
                if not line:
                    break
                commands.append(line)
                writer.write(answer)
            rest = await asyncio.wait_for(reader.read(), 5)  # the server closes
            assert rest == b""
            writer.close()
            await self.done()
        return commands

    async def done(self) -> None:
        """Wait for the server to finish its connections (it half-closes before it logs)."""
        for _ in range(500):
            if self.server.open_connections == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the server kept a connection open")


def test_a_blocked_caller_sets_607() -> None:
    h = Harness()
    sent = asyncio.run(h.exchange(env_bytes(ENV), [b"200 result=1\n"]))
    assert sent == [b'SET VARIABLE SCREENING_RESULT "607"\n']
    [row] = h.log.rows
    assert (row.decision, row.sip_code, row.door, row.channel_id) == (
        "rejected",
        607,
        "agi",
        "1764500000.1",
    )


def test_an_unknown_caller_continues() -> None:
    h = Harness(Rules())
    sent = asyncio.run(h.exchange(env_bytes(ENV), [b"200 result=1\n"]))
    assert sent == [b'SET VARIABLE SCREENING_RESULT "continue"\n']


def test_hangup_lines_are_skipped_and_a_dead_channel_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    answer = b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
    asyncio.run(h.exchange(env_bytes(ENV), [answer]))
    assert h.log.rows[0].decision == "rejected"  # decided; the caller had gone
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_520_usage_answer_is_read_whole_and_the_reject_counts_as_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    answer = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: ...\n"
        b"520 End of proper usage.\n"
    )
    asyncio.run(h.exchange(env_bytes(ENV), [answer]))
    [row] = h.log.rows
    assert row.decision == "allowed" and row.rule_kind == "error"
    assert "reject failed (520 Invalid command syntax." in row.reason
    assert "End of proper usage" in caplog.text  # the whole answer was read


def test_a_peer_that_never_answers_the_command_is_cut_off() -> None:
    h = Harness()

    async def scenario() -> None:
        srv = await h.server.listen("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(env_bytes(ENV))
            assert (await reader.readline()).startswith(b"SET VARIABLE")
            # ... and never answer: the server gives up within its bound and closes.
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
    assert asyncio.run(h.exchange(send, [])) == []
    assert h.log.rows == []


def test_a_line_past_8_kb_inside_the_environment_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    env = env_bytes({**ENV, "agi_calleridname": "x" * 9000})
    assert asyncio.run(h.exchange(env, [])) == []
    assert h.log.rows == []
    assert "a line longer than 8192 bytes" in caplog.text


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
    assert asyncio.run(h.exchange(env_bytes(ENV), [b"200 result=1\n"])) == [
        b'SET VARIABLE SCREENING_RESULT "607"\n'
    ]


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
    assert asyncio.run(h.exchange(env_bytes(env), [b"200 result=1\n"])) == [
        b'SET VARIABLE SCREENING_RESULT "marked"\n'
    ]
    assert ran == [("mark-spam", "221")]
    # The same request from the inbound context (an outside caller): refused, nothing runs.
    outside = {**env, "agi_context": "screening-inbound-agi"}
    assert asyncio.run(h.exchange(env_bytes(outside), [b"200 result=1\n"])) == [
        b'SET VARIABLE SCREENING_RESULT "not-possible"\n'
    ]
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
