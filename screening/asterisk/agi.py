"""The FastAGI protocol, as Asterisk's res_agi speaks it: parsing only, no I/O.

A connection starts with `agi_name: value` lines ending at a blank line (the environment);
then the server writes one command per line and reads one response each. Asterisk may write
an unsolicited `HANGUP` line at any time. Lines are at most 8 KB (AGI_BUF_LEN). Values from
the far end reach the environment unescaped, so what follows it is trusted only from the
first response that echoes the session's random token (echo_command).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Asterisk's AGI buffer: no line it writes or reads is longer.
MAX_LINE = 8192
#: res_agi writes about 25 environment lines plus one per argument (at most 128); more is
#: a caller's newlines, and is not parsed.
MAX_ENV_LINES = 200
#: What is read of an environment at once. Asterisk's SIP packets are at most 64 KB, so
#: the far end's values fit; what does not is skipped, unread, before the first response.
MAX_ENV_BYTES = 65536
#: The line Asterisk writes when the channel hangs up (when AGISIGHUP is not "no").
HANGUP = "HANGUP"

_ENV_LINE = re.compile(r"(agi_[a-z0-9_]{1,40}): ?(.*)")


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


#: What res_agi writes before the first value a caller controls (agi_callerid, then the
#: name, DNID, RDNIS and extension, all URL-decoded by pjsip, newlines included): these
#: are read only from there, so no line a caller slips into the environment can set them.
_HEADER = frozenset(
    {
        "agi_network",
        "agi_network_script",
        "agi_request",
        "agi_channel",
        "agi_language",
        "agi_type",
        "agi_uniqueid",
        "agi_version",
    }
)
_FAR_END_STARTS = "agi_callerid"


def environment(block: bytes, cut: bool = False) -> AgiRequest:
    """The request an environment describes, from its bytes up to the blank line that ends
    it (the blank line included or not); `cut` when the reader stopped short of that line.
    res_agi does not escape what it writes, so a newline in a caller ID adds lines of the
    caller's choosing, and a long name makes a long line: such lines are counted
    (`tampered`), never obeyed, and never a reason to refuse the call (a refusal would let
    the dialplan route it unscreened). Only a first line that is not AGI is refused: the
    peer is not Asterisk."""
    header: dict[str, str] = {}
    env: dict[str, str] = {}
    seen: dict[str, int] = {}
    odd = 0
    far_end = False
    for i, raw in enumerate(block.split(b"\n")):
        if raw in (b"", b"\r"):
            break
        if i == MAX_ENV_LINES:
            odd += 1
            break
        line = text(raw[:MAX_LINE])
        m = _ENV_LINE.fullmatch(line) if len(raw) < MAX_LINE else None
        if m is None:
            if i == 0:
                raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
            odd += 1  # part of a value with a newline in it, or too long
            continue
        key, value = m.group(1), m.group(2)
        far_end = far_end or key == _FAR_END_STARTS
        if not far_end and key in _HEADER:
            header.setdefault(key, value)
        seen[key] = seen.get(key, 0) + 1
        env[key] = value
    tampered = cut or odd > 0 or any(n > 1 for n in seen.values())
    return request(env, header, tampered, unique={k for k, n in seen.items() if n == 1})


@dataclass(frozen=True)
class AgiRequest:
    """The parts of the environment the doors use."""

    script: str  # the path of agi://host/PATH?query, e.g. "screen"
    query: str  # after the "?", as written: our dialplan puts a call's facts here
    args: tuple[str, ...]  # agi_arg_1 ... agi_arg_N (an older dialplan's way)
    channel: str
    unique_id: str
    caller_id: str  # "unknown" when the caller sent none (as res_agi writes it)
    caller_name: str
    context: str  # the dialplan context AGI() ran in; "" when the environment is unclear
    extension: str
    #: Lines res_agi would never write were in it: a value from the far end held newlines.
    tampered: bool = False


def request(
    env: Mapping[str, str],
    header: Mapping[str, str] | None = None,
    tampered: bool = False,
    unique: set[str] | None = None,
) -> AgiRequest:
    """The request an environment describes: header fields from `header` (what came before
    any value from the far end; `env` itself when not given), the rest from `env`. A
    context that appears more than once is not believed. Arguments are read in order and
    stop at the first gap, as res_agi numbers them from 1 without gaps."""
    header = env if header is None else header
    path, _, query = header.get("agi_network_script", "").partition("?")
    args: list[str] = []
    while f"agi_arg_{len(args) + 1}" in env:
        args.append(env[f"agi_arg_{len(args) + 1}"])
    context = env.get("agi_context", "")
    if unique is not None and "agi_context" not in unique:
        context = ""
    return AgiRequest(
        script=path.strip("/"),
        query=query,
        args=tuple(args),
        channel=header.get("agi_channel", ""),
        unique_id=header.get("agi_uniqueid", ""),
        caller_id=env.get("agi_callerid", ""),
        caller_name=env.get("agi_calleridname", ""),
        context=context,
        extension=env.get("agi_extension", ""),
        tampered=tampered,
    )


#: What a value set through an echoed command may hold: what res_agi reads as one word and
#: Asterisk reads as plain text inside ${SET(...)}.
_PLAIN = re.compile(r"[A-Za-z0-9_,.&/+*#=-]{0,256}")
#: Or base64, longer: a header value of ours for [screening-reject], at most the 1,024
#: bytes screening's module takes (its MAX_REASON; 603+'s Reason is 589 at its longest).
MAX_HEADER_VALUE = 1024
# 1,024 bytes are 1,366 base64 characters and "==": one byte more no longer fits.
_BASE64 = re.compile(rf"[A-Za-z0-9+/]{{4,{(MAX_HEADER_VALUE + 2) // 3 * 4 - 2}}}={{0,2}}")
_ECHO = re.compile(r"200 result=1 \((.*)\)")


def echo_command(expression: str, token: str) -> bytes:
    """`GET FULL VARIABLE ${EXPRESSION}-TOKEN`: Asterisk evaluates it (a ${SET(...)} in it
    sets a variable) and answers `200 result=1 (VALUE-TOKEN)`. Every command is one of
    these, so that the response to it carries the session's random token: no line a caller
    slipped into the environment can pass for it. (res_agi reads commands through stdio but
    waits on the socket, so two commands written at once would leave the second unread:
    the token has to ride in the command itself.)"""
    return f"GET FULL VARIABLE ${{{expression}}}-{token}\n".encode()


def set_expression(name: str, value: str) -> str:
    """The expression that sets `name` to `value`; only plain values (ours) are allowed."""
    plain = _PLAIN.fullmatch(value) or _BASE64.fullmatch(value)
    if not plain or not re.fullmatch(r"[A-Z_]{1,32}", name):
        raise ValueError(f"not a plain value for {name}: {value!r}")
    return f"SET({name}={value})"


def echoed(line: str, token: str) -> str | None:
    """The value in the response to an echo command of `token`, or None when the line is
    not that response (an environment's leftover, a HANGUP, anything else)."""
    m = _ECHO.fullmatch(line)
    if m is None or not m.group(1).endswith(f"-{token}"):
        return None
    return m.group(1)[: -len(token) - 1]


def text(raw: bytes) -> str:
    """A line as text, without its line end. res_agi writes whatever the channel holds
    (caller names in any encoding): never fail on it."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")
