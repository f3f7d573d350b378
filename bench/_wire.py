"""Real calls from sipp, timed on the wire.

sipp places the calls (bench/sipp/call.xml: one INVITE per row of a caller list, ACK, BYE
when answered) and logs each call's final status. tcpdump captures the SIP packets on
loopback, and INVITE-to-final-response is read from the capture's timestamps: sipp's own
clock adds about 1-2 ms of its event loop to every figure on this machine, more than the
floor being measured.

Given the ARI port, the capture also takes the app's websocket, and each call's time is
split in three: INVITE to the StasisStart event reaching the app (Asterisk), StasisStart to
the app's request that moves the call on (the app), and that request to the final response
(Asterisk again). Given the FastAGI port instead, the same three parts are read off each
AGI connection: INVITE to the end of the AGI environment, the environment to the server's
SET VARIABLE, and that to the final response.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent / "sipp" / "call.xml"


@dataclass(frozen=True)
class Split:
    """One call's time on the wire, in ms, by who held it."""

    to_app: float  # INVITE -> StasisStart sent to the app (Asterisk)
    in_app: float  # StasisStart -> the app's request that moves the call on (the app)
    after_app: float  # that request -> the final response (Asterisk)


@dataclass(frozen=True)
class Call:
    caller: str
    dialled: str
    status: int
    call_id: str
    sent_at: float  # epoch seconds, by sipp's clock
    sipp_ms: float  # INVITE to final response by sipp's clock
    wire_ms: float | None  # the same, on the wire (None without a capture)
    split: Split | None = None  # None unless the ARI websocket was captured too

    @property
    def ms(self) -> float:
        return self.wire_ms if self.wire_ms is not None else self.sipp_ms


@dataclass(frozen=True)
class Batch:
    """What one sipp run produced: `sent` INVITEs, `calls` with a final response."""

    sent: int
    calls: list[Call]
    seconds: float

    @property
    def timeouts(self) -> int:
        return self.sent - len(self.calls)


def require_tools(capture: bool = True) -> None:
    missing = [t for t in (["sipp"] + (["tcpdump"] if capture else [])) if not shutil.which(t)]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} not found: apt-get install "
            + " ".join({"sipp": "sip-tester", "tcpdump": "tcpdump"}[t] for t in missing)
        )


@contextmanager
def capture(path: Path, sip_port: int, door_port: int | None = None) -> Iterator[None]:
    """tcpdump of the SIP port (and the door's TCP port) on loopback while the block runs."""
    err = path.with_suffix(".err")
    what = f"udp port {sip_port}" + (f" or tcp port {door_port}" if door_port else "")
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", str(path), what],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        for _ in range(100):  # it only sees packets once it says it is listening
            if "listening on" in err.read_text() or proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"tcpdump failed: {err.read_text().strip()}")
        yield
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def place_calls(
    callers: Sequence[tuple[str, str]],
    *,
    rate: float,
    count: int,
    source_ip: str,
    sip_port: int,
    local_port: int,
    workdir: Path,
    wire: bool = True,
    ari_port: int | None = None,
    agi_port: int | None = None,
) -> Batch:
    """`count` calls at `rate` per second from `source_ip` (which picks the dialplan path),
    cycling through (caller, dialled) pairs. With `ari_port` or `agi_port`, each call is
    also split by who held it (see Split)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{source_ip}-{local_port}"
    inf, log, pcap = (workdir / f"{tag}.{ext}" for ext in ("csv", "log", "pcap"))
    inf.write_text("SEQUENTIAL\n" + "".join(f"{c};{d}\n" for c, d in callers))
    log.unlink(missing_ok=True)
    cmd = [
        "sipp",
        "-sf",
        str(SCENARIO),
        "-inf",
        str(inf),
        "-i",
        source_ip,
        "-p",
        str(local_port),
        "-mp",
        str(local_port + 10000),
        "-r",
        f"{rate:g}",
        "-m",
        str(count),
        "-l",
        str(max(50, int(rate * 5))),
        "-timer_resol",
        "1",
        "-recv_timeout",
        "5000",
        "-timeout",
        f"{count / rate + 30:.0f}s",
        "-nostdin",
        "-trace_logs",
        "-log_file",
        str(log),
        f"127.0.0.1:{sip_port}",
    ]
    t0 = time.monotonic()
    door_port = ari_port or agi_port
    with capture(pcap, sip_port, door_port) if wire else _nothing():
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1):  # 1: some calls failed, which we count ourselves
        raise RuntimeError(f"sipp exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    on_wire = wire_times(pcap) if wire else {}
    splits: dict[str, Split] = {}
    if wire and ari_port:
        splits = split_calls(pcap, ari_port)
    elif wire and agi_port:
        splits = split_agi_calls(pcap, agi_port)
    calls = []
    for line in log.read_text().splitlines() if log.exists() else []:
        fields = line.split(";")
        if len(fields) != 8 or not fields[2].isdigit():
            raise RuntimeError(f"sipp logged an unexpected line: {line!r}")
        caller, dialled, status, call_id, *stamps = fields
        try:
            sent_s, sent_us, got_s, got_us = (float(x) for x in stamps)
        except ValueError:  # sipp occasionally logs a time stamp empty; the wire has it
            sent_s = sent_us = got_s = got_us = float("nan")
        sipp_ms = (got_s - sent_s) * 1000 + (got_us - sent_us) / 1000
        sent_at = sent_s + sent_us / 1e6
        calls.append(
            Call(
                caller,
                dialled,
                int(status),
                call_id,
                sent_at,
                sipp_ms,
                on_wire.get(call_id),
                splits.get(call_id),
            )
        )
    return Batch(sent=count, calls=calls, seconds=seconds)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass(frozen=True)
class _SipCall:
    invite_at: float
    final_at: float
    caller: str  # the From user
    dialled: str  # the Request-URI user

    def split(self, seen: float, request: float) -> Split:
        """This call's time by who held it: the door saw it at `seen` and answered at
        `request`."""
        return Split(
            to_app=(seen - self.invite_at) * 1000,
            in_app=(request - seen) * 1000,
            after_app=(self.final_at - request) * 1000,
        )


def wire_times(pcap: Path) -> dict[str, float]:
    """Call-ID -> ms from the first INVITE to the first final response to it."""
    return {k: (c.final_at - c.invite_at) * 1000 for k, c in _sip_calls(pcap).items()}


def _sip_calls(pcap: Path) -> dict[str, _SipCall]:
    invites: dict[str, tuple[float, str, str]] = {}
    finals: dict[str, float] = {}
    for t, proto, _, payload in _packets(pcap):
        if proto != "udp":
            continue
        head, _, rest = payload.partition(b"\r\n")
        headers = _headers(rest)
        call_id = headers.get(b"call-id") or headers.get(b"i")
        if call_id is None:
            continue
        key = call_id.decode(errors="replace")
        if head.startswith(b"INVITE "):
            to = re.match(rb"INVITE sip:([^@;]*)@", head)
            frm = re.search(rb"sip:([^@;>]*)@", headers.get(b"from") or headers.get(b"f") or b"")
            users = [m.group(1).decode(errors="replace") if m else "" for m in (frm, to)]
            invites.setdefault(key, (t, users[0], users[1]))
        elif (
            head.startswith(b"SIP/2.0 ")
            and headers.get(b"cseq", b"").endswith(b"INVITE")
            and int(head.split()[1]) >= 200
        ):
            finals.setdefault(key, t)
    return {k: _SipCall(invites[k][0], finals[k], *invites[k][1:]) for k in invites.keys() & finals}


_CHANNEL_IN_URI = re.compile(r"channels/([^/?]+)")


def split_calls(pcap: Path, ari_port: int) -> dict[str, Split]:
    """Call-ID -> Split, from a capture of both SIP and the app's ARI websocket. A PJSIP
    channel's StasisStart carries the SIP Call-ID as `protocol_id`."""
    started: dict[str, tuple[float, str]] = {}  # channel id -> (StasisStart seen, Call-ID)
    moved_on: dict[str, float] = {}  # channel id -> the app's first request about it
    for t, to_server, message in _ari_messages(pcap, ari_port):
        if not isinstance(message, dict):
            continue
        if to_server:
            uri = message.get("uri")
            found = _CHANNEL_IN_URI.search(uri) if isinstance(uri, str) else None
            if found:
                moved_on.setdefault(found.group(1), t)
        elif message.get("type") == "StasisStart":
            channel = message.get("channel") or {}
            started.setdefault(str(channel.get("id")), (t, str(channel.get("protocol_id"))))
    sip = _sip_calls(pcap)
    out: dict[str, Split] = {}
    for channel_id, (seen, call_id) in started.items():
        call = sip.get(call_id)
        request = moved_on.get(channel_id)
        if call is None or request is None:
            continue
        out[call_id] = call.split(seen, request)
    return out


def split_agi_calls(pcap: Path, agi_port: int) -> dict[str, Split]:
    """Call-ID -> Split, from a capture of both SIP and the FastAGI port. The environment
    names no Call-ID: each AGI connection is matched to the latest INVITE before it from the
    same caller to the same extension (sipp cycles through a thousand callers, so the same
    pair repeats only seconds apart)."""
    sip = _sip_calls(pcap)
    invites: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for call_id, sip_call in sip.items():
        invites.setdefault((sip_call.caller, sip_call.dialled), []).append(
            (sip_call.invite_at, call_id)
        )
    streams: dict[bytes, bytearray] = {}  # Asterisk's side of each connection
    env_done: dict[bytes, tuple[float, dict[str, str]]] = {}
    answered: dict[bytes, float] = {}
    for t, proto, tcp, payload in _packets(pcap):
        if proto != "tcp" or not payload:
            continue
        sport, dport = struct.unpack("!HH", tcp[:4])
        if dport == agi_port and tcp[:2] not in env_done:
            buffer = streams.setdefault(tcp[:2], bytearray())
            buffer += payload
            if b"\n\n" in buffer:
                lines = bytes(buffer).split(b"\n\n", 1)[0].decode(errors="replace").splitlines()
                env = dict(line.split(": ", 1) for line in lines if ": " in line)
                env_done[tcp[:2]] = (t, env)
        elif sport == agi_port:
            answered.setdefault(tcp[2:4], t)
    out: dict[str, Split] = {}
    for conn, (seen, env) in env_done.items():
        request = answered.get(conn)
        candidates = invites.get((env.get("agi_callerid", ""), env.get("agi_arg_1", "")), [])
        before = [c for c in candidates if c[0] <= seen]
        if request is None or not before:
            continue
        invited, call_id = max(before)
        call = sip.get(call_id)
        # A pair repeats seconds apart: a match further back, or a final response before
        # our answer, is another call's.
        if call is None or call_id in out or seen - invited > 1.0 or call.final_at < request:
            continue
        out[call_id] = call.split(seen, request)
    return out


def _ari_messages(pcap: Path, ari_port: int) -> Iterator[tuple[float, bool, object]]:
    """(time, sent to Asterisk?, JSON) for each websocket text message on the ARI port, and
    each plain HTTP request as {"uri": ...}. The time is that of the packet that completed
    the message. Each TCP direction is reassembled by sequence number."""
    streams: dict[tuple[bytes, bool], bytearray] = {}
    next_seq: dict[tuple[bytes, bool], int] = {}
    for t, proto, tcp, payload in _packets(pcap):
        if proto != "tcp" or not payload:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if ari_port not in (sport, dport):
            continue
        to_server = dport == ari_port
        key = (tcp[:4], to_server)  # ports in this direction
        expected = next_seq.get(key, seq)
        if seq != expected:
            if (seq - expected) % 2**32 > 2**31:  # a retransmission of what we have
                payload = payload[(expected - seq) % 2**32 :]
                seq = expected
            if not payload:
                continue
        next_seq[key] = (seq + len(payload)) % 2**32
        buffer = streams.setdefault(key, bytearray())
        buffer += payload
        for message in _take_messages(buffer):
            yield t, to_server, message


_HTTP_START = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HTTP/")


def _take_messages(buffer: bytearray) -> Iterable[object]:
    """Consume every complete HTTP head or websocket frame at the start of buffer."""
    while buffer:
        if buffer.startswith(_HTTP_START):
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode(errors="replace")
            length = re.search(r"(?im)^content-length:\s*(\d+)", head)
            total = end + 4 + (int(length.group(1)) if length else 0)
            if len(buffer) < total:
                return
            del buffer[:total]
            method, _, rest = head.partition(" ")
            if method != "HTTP/1.1":
                yield {"uri": rest.split(" ", 1)[0]}
            continue
        if len(buffer) < 2:
            return
        opcode, masked, size = buffer[0] & 0x0F, buffer[1] & 0x80, buffer[1] & 0x7F
        at = 2
        if size == 126:
            size, at = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            size, at = int.from_bytes(buffer[2:10], "big"), 10
        mask = bytes(buffer[at : at + 4]) if masked else b""
        at += len(mask)
        if len(buffer) < at + size:
            return
        data = bytes(buffer[at : at + size])
        del buffer[: at + size]
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if opcode == 1:  # text; the ARI sends every event and reply as one JSON text frame
            try:
                yield json.loads(data)
            except ValueError:
                continue


def _headers(block: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in block.split(b"\r\n"):
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep:
            out.setdefault(name.strip().lower(), value.strip())
    return out


def _packets(pcap: Path) -> Iterator[tuple[float, str, bytes, bytes]]:
    """(timestamp, "udp" or "tcp", transport header, payload) from a pcap of Linux
    loopback (Ethernet framing, IPv4)."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, length, _ = struct.unpack("<IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        total = struct.unpack("!H", ip[2:4])[0]
        segment = ip[(ip[0] & 0x0F) * 4 : total]
        if ip[9] == 17:
            yield sec + frac * scale, "udp", segment[:8], segment[8:]
        elif ip[9] == 6:
            header = (segment[12] >> 4) * 4
            yield sec + frac * scale, "tcp", segment[:header], segment[header:]


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
