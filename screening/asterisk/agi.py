"""The FastAGI protocol, as Asterisk's res_agi speaks it: parsing only, no I/O.

A connection starts with `agi_name: value` lines ending at a blank line (the environment);
then the server writes one command per line and reads one response each. Asterisk may write
an unsolicited `HANGUP` line at any time; a command on a hung-up channel answers 511; a
command with bad syntax answers a multi-line 520. Lines are at most 8 KB (AGI_BUF_LEN).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

#: Asterisk's AGI buffer: no line it writes or reads is longer.
MAX_LINE = 8192
#: res_agi writes about 25 environment lines plus one per argument (at most 128).
MAX_ENV_LINES = 200
#: The most a whole environment can take, whatever its lines.
MAX_ENV_BYTES = 65536
#: The line Asterisk writes when the channel hangs up (when AGISIGHUP is not "no").
HANGUP = "HANGUP"

_ENV_LINE = re.compile(r"(agi_[a-z0-9_]{1,40}): ?(.*)")
_RESPONSE = re.compile(r"(\d{3})[ -](.*)")
_RESULT = re.compile(r"result=(-?\d+)(?: \((.*)\))?(?: (.*))?")


class AgiProtocolError(Exception):
    """What the peer sent is not FastAGI; the connection is closed."""


def env_line(raw: bytes) -> tuple[str, str] | None:
    """One environment line -> (name, value); None for the blank line that ends it."""
    line = text(raw)
    if line == "":
        return None
    m = _ENV_LINE.fullmatch(line)
    if m is None:
        raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
    return m.group(1), m.group(2)


def environment(block: bytes) -> AgiRequest:
    """The request an environment describes, from its bytes up to the blank line that ends
    it (the blank line included or not)."""
    lines = block.rstrip(b"\n").split(b"\n")
    if len(lines) > MAX_ENV_LINES:
        raise AgiProtocolError(f"more than {MAX_ENV_LINES} environment lines")
    env: dict[str, str] = {}
    for raw in lines:
        if len(raw) >= MAX_LINE:
            raise AgiProtocolError(f"a line longer than {MAX_LINE} bytes")
        pair = env_line(raw)
        if pair is None:
            break
        env[pair[0]] = pair[1]
    return request(env)


@dataclass(frozen=True)
class AgiRequest:
    """The parts of the environment the doors use."""

    script: str  # the path of agi://host/PATH?query, e.g. "screen"
    query: Mapping[str, str]
    args: tuple[str, ...]  # agi_arg_1 ... agi_arg_N
    channel: str
    unique_id: str
    caller_id: str  # "unknown" when the caller sent none (as res_agi writes it)
    caller_name: str
    context: str  # the dialplan context AGI() ran in
    extension: str


def request(env: Mapping[str, str]) -> AgiRequest:
    """The request an environment describes. Arguments are read in order and stop at the
    first gap, as res_agi numbers them from 1 without gaps."""
    path, _, query = env.get("agi_network_script", "").partition("?")
    args: list[str] = []
    while f"agi_arg_{len(args) + 1}" in env:
        args.append(env[f"agi_arg_{len(args) + 1}"])
    params = {}
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        params[unquote(key)] = unquote(value)
    return AgiRequest(
        script=path.strip("/"),
        query=params,
        args=tuple(args),
        channel=env.get("agi_channel", ""),
        unique_id=env.get("agi_uniqueid", ""),
        caller_id=env.get("agi_callerid", ""),
        caller_name=env.get("agi_calleridname", ""),
        context=env.get("agi_context", ""),
        extension=env.get("agi_extension", ""),
    )


@dataclass(frozen=True)
class Response:
    code: int  # 200 success, 510 unknown command, 511 dead channel, 520 usage
    result: int | None  # the value of result=, when there is one
    data: str | None  # the text in parentheses after result=
    text: str  # the whole response, for the log

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def dead_channel(self) -> bool:
        return self.code == 511


def response_line(raw: bytes) -> tuple[int, bool, str]:
    """The first line of a response -> (code, more lines follow, rest). After `520-...`
    Asterisk writes the command's usage text as it is, then a line starting `520 `."""
    line = text(raw)
    m = _RESPONSE.fullmatch(line)
    if m is None:
        raise AgiProtocolError(f"not an AGI response: {line[:80]!r}")
    return int(m.group(1)), line[3] == "-", m.group(2)


def response(code: int, lines: list[str]) -> Response:
    """A whole response from its code and the text of its line(s)."""
    first = lines[0] if lines else ""
    m = _RESULT.fullmatch(first) if code == 200 else None
    if m is None:
        return Response(code, None, None, f"{code} " + " / ".join(lines))
    return Response(code, int(m.group(1)), m.group(2), f"{code} {first}")


def set_variable(name: str, value: str) -> bytes:
    """`SET VARIABLE name "value"`, quoted the way res_agi's argument parser reads it."""
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'SET VARIABLE {name} "{quoted}"\n'.encode()


def text(raw: bytes) -> str:
    """A line as text, without its line end. res_agi writes whatever the channel holds
    (caller names in any encoding): never fail on it."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")
