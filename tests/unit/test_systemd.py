"""systemd's notify protocol over a real unix datagram socket: READY, STATUS, and watchdog
pings that stop when the event loop hangs."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from screening.service.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    sock.settimeout(0.05)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            return out


def test_ready_and_status(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready("FastAGI on 127.0.0.1:4573")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=FastAGI on 127.0.0.1:4573"
    n.stopping()
    assert sock.recv(4096).decode().startswith("STOPPING=1\n")
    n.close()


def test_abstract_socket_names(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"screening-test-{time.monotonic_ns()}"
    sock.bind("\0" + name)
    sock.settimeout(2)
    Notifier({"NOTIFY_SOCKET": "@" + name}).ready("x")
    assert sock.recv(4096).startswith(b"READY=1")
    sock.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    n.ready("x")  # no socket, no error
    assert n.watchdog_interval == 0.0


def test_watchdog_pings_come_from_the_loop_and_stop_while_it_hangs(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # 0.1 s: ping every 0.05

    async def go() -> None:
        pings = asyncio.create_task(n.watchdog())
        await asyncio.sleep(0.5)
        alive = received(sock)
        time.sleep(0.5)  # noqa: ASYNC251 - on purpose: the loop hangs, nothing can ping
        hung = received(sock)
        await asyncio.sleep(0.3)
        again = received(sock)
        pings.cancel()
        assert alive.count("WATCHDOG=1") >= 6
        assert hung.count("WATCHDOG=1") <= 1  # at most the one the hang interrupted
        assert again.count("WATCHDOG=1") >= 3

    asyncio.run(go())


def test_watchdog_for_another_pid_is_not_ours(notify_socket: tuple[socket.socket, str]) -> None:
    _, path = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval == 0.0
