"""Cuts database connections whose query has hung.

A server that stops answering without closing the connection (a frozen VM, a process
stopped mid-query, a partition that swallows the reset) leaves the client waiting in
recv() until TCP gives up, which can take many minutes. libpq has no client-side query
time-out (PyMySQL's read_timeout would do for MariaDB alone), so a thread watches the
queries in flight and shuts down the socket of any that has run too long: the driver
then raises at once, the caller discards the connection, and the next query opens a fresh
one.

SQLite connections have no socket and are never watched; their waits are bounded by the
busy time-out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection

log = logging.getLogger(__name__)


def socket_fd(conn: Connection) -> int | None:
    """The descriptor of the connection's socket, or None if it has none (SQLite)."""
    dbapi: Any = conn.connection.dbapi_connection
    pgconn = getattr(dbapi, "pgconn", None)  # psycopg 3
    if pgconn is not None:
        fd = pgconn.socket
        return fd if isinstance(fd, int) and fd >= 0 else None
    sock = getattr(dbapi, "_sock", None)  # PyMySQL
    if isinstance(sock, socket.socket):
        fd = sock.fileno()
        return fd if fd >= 0 else None
    return None


class Watchdog:
    """Watches queries in flight; one thread, started with the first watched query."""

    def __init__(self, what: str, limit: float) -> None:
        self.what = what
        self.limit = limit
        self.cut = 0
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, int]] = {}  # thread -> (started, fd)
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, conn: Connection) -> Iterator[None]:
        fd = socket_fd(conn)
        if fd is None:
            yield
            return
        me = threading.get_ident()
        with self._lock:
            self._running[me] = (time.monotonic(), fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name=f"{self.what}-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            # Under the lock, so a descriptor is only ever cut while its query still runs.
            with self._lock:
                self._running.pop(me, None)  # gone already if it was cut

    def _watch(self) -> None:
        while True:
            time.sleep(min(0.25, self.limit / 4))
            now = time.monotonic()
            with self._lock:
                for me, (started, fd) in list(self._running.items()):
                    if now - started > self.limit:
                        self._cut(fd, now - started)
                        del self._running[me]

    def _cut(self, fd: int, waited: float) -> None:
        log.warning(
            "%s: the database has not answered for %.1f s; closing that connection",
            self.what,
            waited,
        )
        self.cut += 1
        # shutdown() acts on the socket itself, so a duplicate descriptor reaches it; the
        # driver's own descriptor stays open for the driver to close.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
