"""A TCP relay to a real database server that a test can break in two ways: cut (the server
is gone: connections drop, new ones are refused) or hang (the server stops answering and
never closes what is open). The outage is on the real connection path, and the machine's
shared server is never stopped."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        # Connections that were open when the server hung: they stay open and silent for
        # good, as after a partition that swallowed the reset.
        self._silent: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._up = False
        self.restore()

    def restore(self) -> None:
        """The server is back: new connections work (hung ones stay hung)."""
        if self._up:
            return
        if self._listener.fileno() == -1:
            self._listener = socket.socket()
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._up = True
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        self._stop_listening()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()
            self._silent.clear()

    def hang(self) -> None:
        """Refuse new connections; every open one stays open but nothing more gets through,
        either way."""
        self._stop_listening()
        with self._lock:
            self._silent.update(self._open)

    def _stop_listening(self) -> None:
        self._up = False
        # close() alone does not wake a thread blocked in accept(); shutdown() does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src in self._silent:
                    continue  # read and dropped: the sender sees no error, ever
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if src not in self._silent:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
