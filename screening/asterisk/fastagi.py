"""The FastAGI door: `AGI(agi://127.0.0.1:4573/screen,${EXTEN})` -> Call -> the screener ->
`SET VARIABLE SCREENING_RESULT`, which the dialplan routes on. Feature codes arrive as
`agi://.../feature,NAME,EXT` from [screening-feature].

FastAGI has no authentication, and anything can connect: every read is bounded in size and
time, a connection that is not FastAGI is closed with a log line, and no connection outlives
its bounds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from screening.asterisk import agi
from screening.asterisk.dialplan import (
    CHALLENGE_RESULT,
    CHALLENGE_RUN_CONTEXT,
    CHALLENGE_VARIABLE,
    FEATURE_CONTEXT,
    OLD_DIALPLAN,
    RESULT_VARIABLE,
    ChallengeDialplan,
    Malformed,
    Throttled,
    challenge_answer,
    challenge_value,
    decoded,
    fields,
    legacy_answer,
    read_call,
    rejection,
)
from screening.config import Config
from screening.core.challenge import Settings as ChallengeSettings
from screening.core.decision import Decision
from screening.core.errors import ScreeningError
from screening.core.features import Result
from screening.core.wire import Settings as WireSettings
from screening.service.features import FeatureCodes
from screening.service.runtime import connection_cap, running, stop_on_signals
from screening.service.screener import Act, Call, Screener, failed_open
from screening.store.engine import Engine

log = logging.getLogger(__name__)

#: Asterisk writes the whole environment the moment it connects; a peer that has not
#: finished it by then is not Asterisk.
ENV_TIMEOUT = 1.0
#: Longest wait for the answer to one command.
COMMAND_TIMEOUT = 2.0
#: The most skipped of an environment's rest before the first response: several times
#: what Asterisk can write (its SIP packets are at most 64 KB).
MAX_SKIP = 1024 * 1024
#: Connections open at once; more are closed at once (each costs a descriptor).
MAX_CONNECTIONS = 2048
#: What the variable says when the call goes on.
CONTINUE = "continue"


class _Closed(Exception):
    """The connection ended, or the peer broke the protocol; the reason is the message."""


class AgiSession:
    """One FastAGI connection: the environment, then commands and their responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.hung_up = False  # Asterisk said HANGUP (believed only after the first echo)
        self._token = secrets.token_hex(12)
        self._synced = False  # past the first echo of the token

    async def environment(self) -> agi.AgiRequest:
        """The environment in at most three reads (one per line cost an event-loop turn
        each): the first line alone, so that a peer that is not Asterisk is refused at once;
        the second, which may be the blank line; then the rest up to the blank line."""
        first = await self._line()
        if agi.env_line(first) is None:
            return agi.environment(b"")
        second = await self._line()
        if not second.strip(b"\r\n"):
            return agi.environment(first)
        try:
            rest = await self._reader.readuntil(b"\n\n")
        except asyncio.IncompleteReadError as e:
            raise _Closed(_closed_by_peer(e)) from None
        except asyncio.LimitOverrunError:
            # More than Asterisk writes for an honest call (a caller's name of many KB):
            # read what came first, which holds the header and the facts in the URL; the
            # rest is skipped before the first response.
            rest = await self._reader.read(agi.MAX_ENV_BYTES)
            return agi.environment(first + second + rest, cut=True)
        return agi.environment(first + second + rest)

    async def evaluate(self, expression: str, last: bool = False) -> str:
        """The value of a dialplan expression, as Asterisk evaluates it for this channel (a
        ${SET(...)} in it sets a variable). With `last`, the connection is half-closed at
        once: Asterisk ends the AGI as soon as it has run the command, without waiting for
        us to read the answer and close.

        The answer is the one line that echoes this session's random token: a caller ID
        with newlines can end the environment early and put fake responses (or a fake
        HANGUP) after it, and all of that comes before the first echo, unread."""
        self._writer.write(agi.echo_command(expression, self._token))
        if last and self._writer.can_write_eof():
            self._writer.write_eof()
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await self._writer.drain()
            return await self._echo()

    async def _echo(self) -> str:
        skipped = 0
        while skipped <= MAX_SKIP:
            try:
                raw = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                raise _Closed(_closed_by_peer(e)) from None
            except asyncio.LimitOverrunError:
                skipped += len(await self._reader.read(agi.MAX_ENV_BYTES))
                continue
            line = agi.text(raw)
            value = agi.echoed(line, self._token)
            if value is not None:
                self._synced = True
                return value
            if self._synced:
                if line == agi.HANGUP:
                    self.hung_up = True
                    continue
                raise agi.AgiProtocolError(f"not the answer to our command: {line[:80]!r}")
            skipped += len(raw)  # the environment's rest: a caller's lines, never read
        raise agi.AgiProtocolError(f"no answer to our command within {MAX_SKIP} bytes")

    async def _line(self) -> bytes:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            raise _Closed(_closed_by_peer(e)) from None
        except asyncio.LimitOverrunError:
            raise _Closed(f"a line longer than {agi.MAX_LINE} bytes") from None
        if len(raw) > agi.MAX_LINE:
            raise _Closed(f"a line longer than {agi.MAX_LINE} bytes")
        return raw

    def close(self) -> None:
        # Everything we wrote was drained already: closing needs no wait.
        self._writer.close()


def _closed_by_peer(e: asyncio.IncompleteReadError) -> str:
    if not e.partial:
        return "the peer closed the connection"
    return f"the peer closed the connection mid-line ({len(e.partial)} bytes)"


@dataclass
class _Throttle:
    """At most `per_second` warnings a second; the rest are counted and summed up."""

    per_second: int = 10
    _window: float = 0.0
    _sent: int = 0
    _held: int = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            if self._held:
                log.warning("... and %d more such lines in the last second", self._held)
            self._window, self._sent, self._held = now, 0, 0
        if self._sent < self.per_second:
            self._sent += 1
            log.warning(message, *args)
        else:
            self._held += 1


class FastAgiServer:
    """Serves `screen` and `feature` requests; every connection is closed when its request
    is answered, or when it breaks a bound."""

    def __init__(
        self,
        screener: Screener,
        features: FeatureCodes,
        max_connections: int = MAX_CONNECTIONS,
        env_timeout: float = ENV_TIMEOUT,
        challenge: ChallengeSettings | None = None,
        wire: WireSettings | None = None,
    ) -> None:
        self._screener = screener
        self._features = features
        self._challenge = challenge or ChallengeSettings()
        self._wire = wire or WireSettings()
        self._dialplan = ChallengeDialplan()
        self._old_dialplan = Throttled()
        self._max = max_connections
        self._env_timeout = env_timeout
        self._open: set[asyncio.Task[None]] = set()
        self._throttle = _Throttle()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def listen(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(
            self.handle, host, port, limit=agi.MAX_ENV_BYTES, backlog=1024, reuse_address=True
        )

    async def run(
        self,
        host: str,
        port: int,
        stop: asyncio.Event,
        listening: Callable[[str], None] = lambda status: None,
    ) -> None:
        """Listen until `stop` (calling `listening` once it does); then finish the requests
        in hand."""
        try:
            server = await self.listen(host, port)
        except OSError as e:
            raise ScreeningError(
                f"FastAGI cannot listen on {host}:{port}: {e.strerror or e} "
                "(see --listen and SCREENING_AGI_LISTEN)"
            ) from None
        if (warning := exposure_warning(host, port)) is not None:
            log.warning("%s", warning)
        log.info("FastAGI listening on %s:%d", host, port)
        listening(f"FastAGI on {host}:{port}")
        async with server:
            await stop.wait()
            server.close()
            if self._open:
                await asyncio.wait(self._open, timeout=self._env_timeout + 2 * COMMAND_TIMEOUT)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        session = AgiSession(reader, writer)
        task = asyncio.current_task()
        if len(self._open) >= self._max:
            self._throttle.warn(
                "closing FastAGI connection from %s: %d connections open already", peer, self._max
            )
            session.close()
            return
        assert task is not None
        self._open.add(task)
        try:
            try:
                async with asyncio.timeout(self._env_timeout):
                    request = await session.environment()
            except TimeoutError:
                self._throttle.warn(
                    "closing FastAGI connection from %s: no complete AGI environment within %gs",
                    peer,
                    self._env_timeout,
                )
                return
            await self._serve(session, request, peer)
        except (agi.AgiProtocolError, _Closed) as e:
            self._throttle.warn("closing FastAGI connection from %s: %s", peer, e)
        except Exception:
            log.exception("FastAGI connection from %s failed; closing it", peer)
        finally:
            self._open.discard(task)
            session.close()

    async def _serve(self, session: AgiSession, request: agi.AgiRequest, peer: str) -> None:
        if request.script == "screen":
            await self.screen(session, request)
        elif request.script == "feature":
            await self.feature(session, request)
        elif request.script in ("challenge", "challenge-abandoned"):
            # A context repeated in the environment reads as "" (a caller's newline made
            # it unclear): then only the pending challenge itself vouches for the report,
            # as it always must (Screener.answered).
            if request.context not in (CHALLENGE_RUN_CONTEXT, ""):
                self._throttle.warn(
                    "closing FastAGI connection from %s: challenge report from context %r",
                    peer,
                    request.context[:64],
                )
            elif request.script == "challenge":
                await self.challenge(session, request)
            else:
                self._screener.abandoned(request.unique_id or request.channel)
        else:
            # The dialplan finds the variable unset and routes the call on (fail open).
            self._throttle.warn(
                "closing FastAGI connection from %s: unknown script %r (expected screen, "
                "feature or challenge)",
                peer,
                request.script[:64],
            )

    async def screen(self, session: AgiSession, request: agi.AgiRequest) -> None:
        call = self._call(request)
        decision = await self._screener.screen(call, self._act(session, call.id))
        if decision.challenged and session.hung_up:
            self._screener.abandoned(call.id)  # gone before the prompt began

    def _call(self, request: agi.AgiRequest) -> Call:
        """The call, from the facts in the AGI URL (written before anything a caller
        controls); from the environment and arguments only for an older dialplan."""
        v2 = request.query if request.query.startswith("v=2&") else None
        facts = read_call(v2, request.args, request.extension)
        if facts.legacy is None:
            caller, name = facts.caller, facts.name
        else:
            self._old_dialplan.error(OLD_DIALPLAN, facts.legacy)
            # res_agi writes "unknown" when the caller sent no name.
            caller = request.caller_id
            name = "" if request.caller_name == "unknown" else request.caller_name
        return Call(
            request.unique_id or request.channel,
            caller,
            facts.dialled,
            "agi",
            name=name,
            presentation=facts.presentation,
            identity=facts.identity,
            date=facts.date,
            carrier=facts.carrier,
        )

    async def challenge(self, session: AgiSession, request: agi.AgiRequest) -> None:
        """The dialplan's report after the challenge; the screener decides."""
        if request.query.startswith("v=2&"):
            dialled, answer = challenge_answer(request.query)
        else:
            dialled, answer = legacy_answer(request.args)
        call = Call(request.unique_id or request.channel, "", dialled, "agi")
        await self._screener.answered(call, answer, self._act(session, call.id))

    def _act(self, session: AgiSession, call_id: str) -> Act:
        async def act(decision: Decision) -> Decision:
            if decision.challenged and decision.digit is not None:
                if not self._dialplan.found and not self._dialplan.answer(
                    await self._evaluate(session, ChallengeDialplan.EXPRESSION)
                ):
                    await self._set_result(session, CONTINUE, call_id)
                    return failed_open("no challenge in the dialplan")
                value = challenge_value(decision.digit, self._challenge)
                why = await self._set(session, CHALLENGE_VARIABLE, value, call_id)
                if why is None:
                    why = await self._set_result(session, CHALLENGE_RESULT, call_id)
                if why is None:
                    return decision
                # Whatever the dialplan got, it routes the call on: not challenged.
                return failed_open(f"challenge failed ({why})")
            value = (
                await self._rejection(session, decision, call_id) if decision.rejected else CONTINUE
            )
            why = await self._set_result(session, value, call_id)
            if why is not None and decision.rejected:
                # The variable may be unset: the dialplan then routes the call on.
                return failed_open(f"reject failed ({why})")
            return decision

        return act

    async def feature(self, session: AgiSession, request: agi.AgiRequest) -> None:
        """A feature code from a phone; the extension comes from our own dialplan, in the
        AGI URL (an older dialplan passes it as an argument)."""
        name, who, problem = _feature_request(request)
        result: Result
        if request.context != FEATURE_CONTEXT:
            why = f"refused: feature request from context {request.context!r}"
            result = self._features.refused(name, who, why)
        elif problem is not None:
            result = self._features.refused(name, who, problem)
        else:
            result = await self._features.request(name, who)
        await self._set_result(session, result.outcome.value, request.unique_id)

    async def _evaluate(self, session: AgiSession, expression: str) -> str | None:
        """A dialplan function's value; None when it cannot be read."""
        try:
            return await session.evaluate(expression)
        except (TimeoutError, agi.AgiProtocolError, _Closed, OSError):
            return None

    async def _rejection(self, session: AgiSession, decision: Decision, call_id: str) -> str:
        """The reject extension to set as the result; with redress, its header value is set
        first, and if that fails the call is rejected without it."""
        plan = rejection(decision, self._wire)
        if plan.more is not None:
            why = await self._set(session, *plan.more, call_id)
            if why is not None:
                log.warning("call %s: rejected with its code alone: %s", call_id, why)
        return plan.extension

    async def _set_result(self, session: AgiSession, value: str, call_id: str) -> str | None:
        """Set the result variable, the last command; None when Asterisk took it (or the
        caller is already gone), else why not."""
        return await self._set(session, RESULT_VARIABLE, value, call_id, last=True)

    async def _set(
        self, session: AgiSession, name: str, value: str, call_id: str, last: bool = False
    ) -> str | None:
        try:
            got = await session.evaluate(agi.set_expression(name, value), last=last)
        except TimeoutError:
            why = f"no answer within {COMMAND_TIMEOUT:g}s"
        except (agi.AgiProtocolError, _Closed, OSError, ValueError) as e:
            why = str(e)
        else:
            if got == value:
                return None
            why = f"Asterisk set {got[:40]!r}"
        if session.hung_up:
            return None  # the caller hung up: nothing is waiting for the answer
        log.error("could not set %s on %s: %s", name, call_id, why)
        return why


def _feature_request(request: agi.AgiRequest) -> tuple[str, str, str | None]:
    """(feature, extension, why it cannot be served or None)."""
    if request.query.startswith("v=2&"):
        try:
            f = fields(request.query)
        except Malformed as e:
            return "?", "?", f"the request cannot be read ({e})"
        return f.get("feature", "?")[:32], decoded(f.get("ext", ""))[:32], None
    name = request.args[0] if request.args else "?"
    who = request.args[1] if len(request.args) > 1 else "?"
    if len(request.args) != 2:
        return name, who, "expected 2 arguments: feature, extension"
    return name, who, None


def exposure_warning(host: str, port: int) -> str | None:
    """What to tell the admin when the server listens beyond loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return (
        f"FastAGI is listening on {host}:{port}, not loopback: FastAGI has no authentication, "
        "so anyone who can reach this port can ask for decisions and run feature codes"
    )


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def serve(config: Config, engine: Engine) -> None:
    """Run the FastAGI server until SIGTERM/SIGINT; then finish the requests in hand and
    write the call log."""
    stop = stop_on_signals()
    async with running(config, engine) as service:
        server = FastAgiServer(
            service.screener,
            service.features,
            max_connections=connection_cap(MAX_CONNECTIONS, service.open_files),
            challenge=config.challenge,
            wire=config.wire,
        )
        service.metrics.fastagi_connections.set_function(lambda: server.open_connections)
        await server.run(config.agi_host, config.agi_port, stop, service.ready)
