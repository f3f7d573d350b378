"""Place real SIP calls and report the final response: for the sandbox, tests and benchmarks.

A minimal UDP user agent client, no authentication: it is meant for a PBX that trusts
loopback (the sandbox), not for calling out through a provider.

    python -m tests.sipprobe --from +15551234567 --to 201 [--port 5060]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from pathlib import Path


@dataclass
class CallResult:
    status: int  # 0 = no final response before the timeout
    reason: str
    elapsed_ms: float  # INVITE sent -> final response received
    rtp_packets: int = 0  # audio received while the call was up
    provisional: list[int] = field(default_factory=list)
    remote_hangup: bool = False  # the far end sent BYE before we did
    duration_s: float = 0.0  # answer -> hang-up, for answered calls
    early_media_ms: float | None = None  # INVITE sent -> 183 with SDP received
    early_rtp_packets: int = 0  # audio received between the 183 and the final response
    early_audio_s: float = 0.0  # first to last packet of it: how long the prompt played
    pressed: str = ""  # digits sent as RFC 4733 events in early media
    response: str = ""  # the final response's status line and header lines, as received

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}" if self.status else "timeout"

    def header_lines(self) -> list[str]:
        """The final response's header lines, in order (no folding: Asterisk never folds)."""
        return self.response.split("\r\n")[1:] if self.response else []

    def headers(self, name: str) -> list[str]:
        """Every value of the header `name` (case-insensitive) in the final response."""
        out = []
        for line in self.header_lines():
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                out.append(value.strip())
        return out


@dataclass(frozen=True)
class EarlyMedia:
    """What the caller does once early media starts (a 183 with SDP): listen for `listen`
    seconds (sending silence, as a phone does), then press the digits `press()` returns
    ("" for none), or hang up (CANCEL) when `hang_up`."""

    press: Callable[[], Awaitable[str]] | None = None
    listen: float = 0.0
    hang_up: bool = False


def _headers(message: str) -> tuple[str, dict[str, str]]:
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return head[0], headers


class _Sip(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.inbox.put_nowait(data.decode("utf-8", "replace"))


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.first_at: float | None = None  # time.perf_counter() of the first packet
        self.last_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets += 1
        self.last_at = time.perf_counter()
        if self.first_at is None:
            self.first_at = self.last_at


#: RFC 4733 event codes.
_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_PCMU_SILENCE = b"\xff" * 160  # 20 ms


def _sdp_media(body: str) -> tuple[str, int, int | None] | None:
    """(address, audio port, telephone-event payload type) from an SDP answer."""
    address, port, event = "", 0, None
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            address = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
        elif line.startswith("a=rtpmap:") and "telephone-event/" in line:
            event = int(line[len("a=rtpmap:") :].split()[0])
    return (address, port, event) if address and port else None


class _RtpSender:
    """A phone's side of early media: 20 ms of silence every 20 ms, and RFC 4733 events on
    the same stream (same SSRC and sequence), as real phones send them."""

    def __init__(self, rtp: _Rtp, to: tuple[str, int], event_type: int | None) -> None:
        self._rtp, self._to, self._event_type = rtp, to, event_type
        self._seq = secrets.randbelow(1 << 15)
        self._ts = secrets.randbelow(1 << 30)
        self._ssrc = secrets.randbits(32)
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def press(self, digits: str) -> None:
        for d in digits:
            self._events.put_nowait(d)

    def close(self) -> None:
        self._task.cancel()

    def _send(self, payload_type: int, payload: bytes, marker: bool = False) -> None:
        header = bytes([0x80, (0x80 if marker else 0) | payload_type])
        header += self._seq.to_bytes(2, "big") + self._ts.to_bytes(4, "big")
        header += self._ssrc.to_bytes(4, "big")
        self._seq = (self._seq + 1) & 0xFFFF
        if self._rtp.transport is not None:
            self._rtp.transport.sendto(header + payload, self._to)

    async def _run(self) -> None:
        while True:
            if not self._events.empty() and self._event_type is not None:
                await self._event(_EVENTS[self._events.get_nowait()])
            else:
                self._send(0, _PCMU_SILENCE)
                self._ts = (self._ts + 160) & 0xFFFFFFFF
                await asyncio.sleep(0.02)

    async def _event(self, code: int) -> None:
        """One digit: 100 ms of event packets, then the end packet three times."""
        assert self._event_type is not None
        for n in range(1, 6):
            payload = bytes([code, 10]) + (160 * n).to_bytes(2, "big")
            self._send(self._event_type, payload, marker=n == 1)
            await asyncio.sleep(0.02)
        for _ in range(3):
            self._send(self._event_type, bytes([code, 0x80 | 10]) + (800).to_bytes(2, "big"))
        self._ts = (self._ts + 800) & 0xFFFFFFFF
        await asyncio.sleep(0.06)  # a pause between digits


async def place_call(
    to: str,
    caller: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5060,
    display_name: str = "",
    hold: float = 0.0,
    final_within: float = 5.0,
    extra_headers: dict[str, str] | None = None,
    from_uri: str | None = None,
    source: str = "127.0.0.1",
    early: EarlyMedia | None = None,
) -> CallResult:
    """INVITE sip:TO@host:port from CALLER (the From user; "" sends a From with no user),
    sent from the address `source` (which can pick the trunk, as on a real PBX).
    Non-2xx finals are ACKed; a 200 OK is ACKed, held for `hold` seconds (or until the far
    end sends BYE), then hung up with BYE. `early` says what to do in early media."""
    loop = asyncio.get_running_loop()
    sip_transport, sip = await loop.create_datagram_endpoint(_Sip, local_addr=(source, 0))
    rtp_transport, rtp = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    try:
        rtp_port = rtp_transport.get_extra_info("sockname")[1]
        request = _Request(to, caller, host, port, display_name, extra_headers or {}, from_uri)
        return await _call(sip, rtp, rtp_port, request, hold, final_within, early)
    finally:
        sip_transport.close()
        rtp_transport.close()


@dataclass(frozen=True)
class _Request:
    to: str
    caller: str
    host: str
    port: int
    display_name: str
    extra: dict[str, str]
    from_uri: str | None


async def _call(
    sip: _Sip,
    rtp: _Rtp,
    rtp_port: int,
    req: _Request,
    hold: float,
    final_within: float,
    early: EarlyMedia | None = None,
) -> CallResult:
    to, caller, host, port = req.to, req.caller, req.host, req.port
    display_name, extra, from_uri = req.display_name, req.extra, req.from_uri
    assert sip.transport is not None
    lhost, lport = sip.transport.get_extra_info("sockname")[:2]
    call_id = f"{secrets.token_hex(8)}@{lhost}"
    tag = secrets.token_hex(4)
    branch = "z9hG4bK" + secrets.token_hex(8)
    ruri = f"sip:{to}@{host}:{port}"
    user = f"{caller}@" if caller else ""
    name = f'"{display_name}" ' if display_name else ""
    from_hdr = f"{name}<{from_uri or f'sip:{user}{lhost}'}>;tag={tag}"
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
    extra_lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
    invite = (
        f"INVITE {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {from_hdr}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:{user}{lhost}:{lport}>\r\n{extra_lines}"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )

    def send(msg: str) -> None:
        assert sip.transport is not None
        sip.transport.sendto(msg.encode(), (host, port))

    def request(method: str, cseq: int, to_hdr: str, target: str, via_branch: str) -> str:
        return (
            f"{method} {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {lhost}:{lport};branch={via_branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {from_hdr}\r\nTo: {to_hdr}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )

    t0 = time.perf_counter()
    deadline = t0 + final_within
    send(invite)
    retransmit, interval = t0 + 0.5, 0.5  # RFC 3261 timer A, until something answers
    provisional: list[int] = []
    media = _Early(early, rtp) if early is not None else None
    try:
        while True:
            now = time.perf_counter()
            if now >= deadline:
                send(request("CANCEL", 1, f"<{ruri}>", ruri, branch))
                return CallResult(0, "", (now - t0) * 1000, provisional=provisional)
            try:
                msg = await asyncio.wait_for(sip.inbox.get(), min(deadline, retransmit) - now)
            except TimeoutError:
                if not provisional and time.perf_counter() >= retransmit:
                    send(invite)
                    interval *= 2
                retransmit = time.perf_counter() + interval
                continue
            first, headers = _headers(msg)
            if not first.startswith("SIP/2.0 ") or headers.get("call-id") != call_id:
                continue
            if not headers.get("cseq", "").endswith("INVITE"):
                continue  # e.g. the 200 OK to our CANCEL
            status = int(first.split()[1])
            if status < 200:
                provisional.append(status)
                retransmit = deadline
                if media is not None and status == 183:
                    cancel = request("CANCEL", 1, f"<{ruri}>", ruri, branch)
                    media.start(msg, (time.perf_counter() - t0) * 1000, partial(send, cancel))
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            reason = first.split(" ", 2)[2] if first.count(" ") >= 2 else ""
            final_head = msg.split("\r\n\r\n", 1)[0]
            to_hdr = headers.get("to", f"<{ruri}>")
            break
    finally:
        if media is not None:
            media.stop()
    result = CallResult(status, reason, elapsed, provisional=provisional, response=final_head)
    if media is not None:
        result.early_media_ms = media.at_ms
        result.early_rtp_packets = media.packets
        result.early_audio_s = media.audio_s
        result.pressed = media.pressed
    if status >= 300:
        send(request("ACK", 1, to_hdr, ruri, branch))  # same transaction as the INVITE
        return result
    target = headers.get("contact", f"<{ruri}>").split("<", 1)[-1].split(">", 1)[0]
    send(request("ACK", 1, to_hdr, target, "z9hG4bK" + secrets.token_hex(8)))
    answered = time.perf_counter()
    rtp.packets = 0  # from here: audio while the call is up
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wait_for_bye(sip, send, call_id), max(hold, 0.0))
        result.rtp_packets = rtp.packets
        result.remote_hangup = True
        result.duration_s = time.perf_counter() - answered
        return result  # the far end hung up and we answered its BYE
    result.rtp_packets = rtp.packets
    result.duration_s = time.perf_counter() - answered
    send(request("BYE", 2, to_hdr, target, "z9hG4bK" + secrets.token_hex(8)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wait_for_response(sip, call_id, "BYE"), 2.0)
    return result


class _Early:
    """Early media as a caller lives it: from the first 183 with SDP, listen (counting the
    prompt's packets) while sending silence, then press digits or hang up."""

    def __init__(self, plan: EarlyMedia, rtp: _Rtp) -> None:
        self._plan, self._rtp = plan, rtp
        self._sender: _RtpSender | None = None
        self._caller: asyncio.Task[None] | None = None
        self._from = 0
        self.at_ms: float | None = None
        self.pressed = ""
        self.packets = 0
        self.audio_s = 0.0

    def start(self, message: str, at_ms: float, cancel: Callable[[], None]) -> None:
        if self._sender is not None:
            return
        found = _sdp_media(message.split("\r\n\r\n", 1)[-1])
        if found is None:
            return  # a 183 without SDP: no early media yet
        address, port, event_type = found
        self.at_ms, self._from = at_ms, self._rtp.packets
        self._rtp.first_at = self._rtp.last_at = None
        self._sender = _RtpSender(self._rtp, (address, port), event_type)
        self._caller = asyncio.create_task(self._act(self._sender, cancel))

    async def _act(self, sender: _RtpSender, cancel: Callable[[], None]) -> None:
        await asyncio.sleep(self._plan.listen)
        if self._plan.hang_up:
            cancel()
            return
        digits = await self._plan.press() if self._plan.press else ""
        self.pressed = digits
        sender.press(digits)

    def stop(self) -> None:
        self.packets = self._rtp.packets - self._from if self.at_ms is not None else 0
        if self.packets and self._rtp.first_at is not None and self._rtp.last_at is not None:
            self.audio_s = self._rtp.last_at - self._rtp.first_at
        if self._caller is not None:
            self._caller.cancel()
        if self._sender is not None:
            self._sender.close()


async def _wait_for_bye(sip: _Sip, send: Callable[[str], None], call_id: str) -> None:
    while True:
        msg = await sip.inbox.get()
        first, headers = _headers(msg)
        if first.startswith("BYE ") and headers.get("call-id") == call_id:
            ok = (
                "SIP/2.0 200 OK\r\n"
                + "".join(
                    f"{h}: {headers[h.lower()]}\r\n"
                    for h in ("Via", "From", "To", "Call-ID", "CSeq")
                )
                + "Content-Length: 0\r\n\r\n"
            )
            send(ok)
            return


async def _wait_for_response(sip: _Sip, call_id: str, method: str) -> None:
    while True:
        first, headers = _headers(await sip.inbox.get())
        if (
            first.startswith("SIP/2.0 ")
            and headers.get("cseq", "").endswith(method)
            and headers.get("call-id") == call_id
            and int(first.split()[1]) >= 200
        ):
            return


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def identity_headers(
    key_pem: bytes,
    x5u: str,
    caller: str,
    dest: str,
    attest: str = "A",
    *,
    at: float | None = None,
) -> dict[str, str]:
    """Identity and Date headers for a call from `caller` to `dest`: a SHAKEN PASSporT
    (RFC 8588) signed ES256 with the PEM key, as an originating carrier would send it."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    when = time.time() if at is None else at
    header = {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": x5u}
    payload = {
        "attest": attest,
        "dest": {"tn": [dest]},
        "iat": int(when),
        "orig": {"tn": caller.lstrip("+")},
        "origid": str(uuid.uuid4()),
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    signature = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return {
        "Identity": f"{signing_input}.{signature};info=<{x5u}>;alg=ES256;ppt=shaken",
        "Date": formatdate(when, usegmt=True),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.sipprobe", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="caller", required=True, help="caller number (From user)")
    p.add_argument("--to", required=True, help="dialled extension")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--hold", type=float, default=0.0, help="seconds to stay on an answered call")
    p.add_argument(
        "--source", default="127.0.0.1", help="send from this address (picks the sandbox trunk)"
    )
    p.add_argument("--name", default="", help="caller name (From display name)")
    p.add_argument("--sign", metavar="KEY.pem", help="send a STIR/SHAKEN Identity signed with it")
    p.add_argument("--x5u", default="", help="the signing certificate's URL (with --sign)")
    p.add_argument("--attest", default="A", choices=("A", "B", "C"), help="with --sign")
    p.add_argument(
        "--press",
        choices=("right", "wrong", "none"),
        help="in a challenge: press the digit the app's JSON log (--log) names, another, or none",
    )
    p.add_argument("--log", metavar="FILE", help="the app's log (log.format = json): its digit")
    args = p.parse_args(argv)
    extra = None
    if args.sign:
        key = Path(args.sign).read_bytes()
        extra = identity_headers(key, args.x5u, args.caller, args.to, args.attest)
    early = None
    if args.press is not None:
        early = EarlyMedia(press=_press_from_log(args.log, args.caller, args.press), listen=1.0)
    result = asyncio.run(
        place_call(
            args.to,
            args.caller,
            host=args.host,
            port=args.port,
            hold=args.hold,
            source=args.source,
            display_name=args.name,
            extra_headers=extra,
            early=early,
            final_within=30 if early else 5,
        )
    )
    heard = ""
    if result.early_media_ms is not None:
        heard = (
            f"; 183 after {result.early_media_ms:.1f} ms, {result.early_audio_s:.1f} s of prompt "
            f"({result.early_rtp_packets} RTP packets), pressed {result.pressed or 'nothing'}"
        )
    took = (
        f"{result.elapsed_ms:.1f} ms"
        if result.elapsed_ms < 1000
        else f"{result.elapsed_ms / 1000:.1f} s"
    )
    # What else the caller's network hears on a rejection (README, "607 or 608?").
    said = "".join(
        f"; {name}: {v}" for name in ("Reason", "Call-Info") for v in result.headers(name)
    )
    print(f"{args.caller} -> {args.to}: {result.status_line} ({took}){heard}{said}")
    return 0 if result.status else 1


def _press_from_log(log: str | None, caller: str, how: str) -> Callable[[], Awaitable[str]]:
    """What a caller presses: the digit the app's log line names for this caller
    ("challenged (press 4)"), another one, or nothing."""

    async def press() -> str:
        if how == "none" or log is None:
            return ""
        for _ in range(100):
            text = await asyncio.to_thread(Path(log).read_text, errors="replace")
            digit = named_digit(text, caller)
            if digit is not None:
                return digit if how == "right" else str((int(digit) + 1) % 10)
            await asyncio.sleep(0.05)
        return ""

    return press


def named_digit(log_text: str, caller: str) -> str | None:
    """The digit the app asked `caller` (the caller ID as sent) to press: the `digit` of
    its latest JSON log line for that caller ID (log.format = "json"); None when there is
    none yet."""
    for line in reversed(log_text.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("caller_id") == caller and "digit" in record:
            return str(record["digit"])
    return None


if __name__ == "__main__":
    sys.exit(main())


async def load(
    calls: list[tuple[str, str]],
    rate: float,
    seconds: float,
    *,
    port: int = 5060,
    final_within: float = 10.0,
    source: str = "127.0.0.1",
    headers: Callable[[str, str], dict[str, str]] | None = None,
) -> list[tuple[float, str, str, CallResult]]:
    """Open-loop load: start a call every 1/rate seconds for `seconds`, cycling through
    (caller, extension) pairs, whatever the earlier calls are doing; `headers(caller, ext)`
    adds headers to each INVITE (Identity). Returns (start offset s, caller, extension,
    result) per call, in start order."""
    out: list[tuple[float, str, str, CallResult]] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(offset: float, caller: str, ext: str) -> None:
        extra = headers(caller, ext) if headers else None
        result = await place_call(
            ext, caller, port=port, final_within=final_within, source=source, extra_headers=extra
        )
        out.append((offset, caller, ext, result))

    t0 = time.monotonic()
    started = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        while started < int(elapsed * rate) + 1:
            caller, ext = calls[started % len(calls)]
            tasks.append(asyncio.create_task(one(elapsed, caller, ext)))
            started += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)
    return sorted(out, key=lambda r: r[0])
