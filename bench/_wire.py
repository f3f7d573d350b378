"""Real calls from sipp, timed on the wire.

sipp places the calls (bench/sipp/call.xml: one INVITE per row of a caller list, ACK, BYE
when answered) and logs each call's final status. tcpdump captures the SIP packets on
loopback, and INVITE-to-final-response is read from the capture's timestamps: sipp's own
clock adds about 1-2 ms of its event loop to every figure on this machine, more than the
floor being measured.
"""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent / "sipp" / "call.xml"


@dataclass(frozen=True)
class Call:
    caller: str
    dialled: str
    status: int
    call_id: str
    sent_at: float  # epoch seconds, by sipp's clock
    sipp_ms: float  # INVITE to final response by sipp's clock
    wire_ms: float | None  # the same, on the wire (None without a capture)

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
def capture(path: Path, sip_port: int) -> Iterator[None]:
    """tcpdump of the SIP port on loopback while the block runs."""
    err = path.with_suffix(".err")
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", str(path), _filter(sip_port)],
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


def _filter(sip_port: int) -> str:
    return f"udp port {sip_port}"


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
) -> Batch:
    """`count` calls at `rate` per second from `source_ip` (which picks the dialplan path),
    cycling through (caller, dialled) pairs."""
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
    with capture(pcap, sip_port) if wire else _nothing():
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1):  # 1: some calls failed, which we count ourselves
        raise RuntimeError(f"sipp exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    on_wire = wire_times(pcap) if wire else {}
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
            Call(caller, dialled, int(status), call_id, sent_at, sipp_ms, on_wire.get(call_id))
        )
    return Batch(sent=count, calls=calls, seconds=seconds)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def wire_times(pcap: Path) -> dict[str, float]:
    """Call-ID -> ms from the first INVITE to the first final response to it."""
    invites: dict[str, float] = {}
    finals: dict[str, float] = {}
    for t, payload in _udp_payloads(pcap):
        head, _, rest = payload.partition(b"\r\n")
        headers = _headers(rest)
        call_id = headers.get(b"call-id") or headers.get(b"i")
        if call_id is None:
            continue
        key = call_id.decode(errors="replace")
        if head.startswith(b"INVITE "):
            invites.setdefault(key, t)
        elif (
            head.startswith(b"SIP/2.0 ")
            and headers.get(b"cseq", b"").endswith(b"INVITE")
            and int(head.split()[1]) >= 200
        ):
            finals.setdefault(key, t)
    return {k: (finals[k] - invites[k]) * 1000 for k in invites.keys() & finals.keys()}


def _headers(block: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in block.split(b"\r\n"):
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep:
            out.setdefault(name.strip().lower(), value.strip())
    return out


def _udp_payloads(pcap: Path) -> Iterator[tuple[float, bytes]]:
    """(timestamp, UDP payload) from a pcap of Linux loopback (Ethernet framing, IPv4)."""
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
        udp = ip[(ip[0] & 0x0F) * 4 :]
        yield sec + frac * scale, udp[8:]


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
