"""Place real SIP calls and report the final response: for the sandbox, tests and benchmarks.

A minimal UDP user agent client, no authentication: it is meant for a PBX that trusts
loopback (the sandbox), not for calling out through a provider.

    python -m screening.sipprobe --from +15551234567 --to 201 [--port 5060]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
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

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}" if self.status else "timeout"


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

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets += 1


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
) -> CallResult:
    """INVITE sip:TO@host:port from CALLER (the From user; "" sends a From with no user),
    sent from the address `source` (which can pick the trunk, as on a real PBX).
    Non-2xx finals are ACKed; a 200 OK is ACKed, held for `hold` seconds (or until the far
    end sends BYE), then hung up with BYE."""
    loop = asyncio.get_running_loop()
    sip_transport, sip = await loop.create_datagram_endpoint(_Sip, local_addr=(source, 0))
    rtp_transport, rtp = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    try:
        rtp_port = rtp_transport.get_extra_info("sockname")[1]
        request = _Request(to, caller, host, port, display_name, extra_headers or {}, from_uri)
        return await _call(sip, rtp, rtp_port, request, hold, final_within)
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
    sip: _Sip, rtp: _Rtp, rtp_port: int, req: _Request, hold: float, final_within: float
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
        f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
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
        status = int(first.split()[1])
        if status < 200:
            provisional.append(status)
            retransmit = deadline
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        reason = first.split(" ", 2)[2] if first.count(" ") >= 2 else ""
        to_hdr = headers.get("to", f"<{ruri}>")
        break
    if status >= 300:
        send(request("ACK", 1, to_hdr, ruri, branch))  # same transaction as the INVITE
        return CallResult(status, reason, elapsed, provisional=provisional)
    target = headers.get("contact", f"<{ruri}>").split("<", 1)[-1].split(">", 1)[0]
    send(request("ACK", 1, to_hdr, target, "z9hG4bK" + secrets.token_hex(8)))
    result = CallResult(status, reason, elapsed, provisional=provisional)
    answered = time.perf_counter()
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
    p = argparse.ArgumentParser(
        prog="python -m screening.sipprobe", description=__doc__.split("\n")[0]
    )
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
    args = p.parse_args(argv)
    extra = None
    if args.sign:
        key = Path(args.sign).read_bytes()
        extra = identity_headers(key, args.x5u, args.caller, args.to, args.attest)
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
        )
    )
    print(f"{args.caller} -> {args.to}: {result.status_line} ({result.elapsed_ms:.1f} ms)")
    return 0 if result.status else 1


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
