"""systemd's notify protocol in a few lines of standard library (no libsystemd): READY=1 once
a door takes calls, STATUS= lines, and watchdog pings sent from the event loop itself, so
that systemd restarts a door whose loop hangs, and never one that merely waits for Asterisk.

Without NOTIFY_SOCKET (not run by systemd, or Type= is not notify) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = (
            int(usec) / 1e6 if usec.isascii() and usec.isdigit() and mine else 0.0
        )
        self._sock: socket.socket | None = None

    def send(self, *lines: str) -> None:
        if not self._address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as e:
            log.warning("cannot notify systemd at %s: %s", self._address.lstrip("\0"), e)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=finishing the calls in hand")

    async def watchdog(self) -> None:
        """Ping at half the interval systemd asked for, for as long as the loop runs: a loop
        that hangs stops pinging and is restarted."""
        if not self.watchdog_interval:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval / 2)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
