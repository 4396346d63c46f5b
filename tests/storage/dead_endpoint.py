"""A loopback endpoint that fails every request, and counts the connections made to it."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Literal

Mode = Literal["hangup", "503"]
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 11\r\nConnection: close\r\n\r\nunavailable"
)


class DeadEndpoint:
    """Accept connections on 127.0.0.1 and, one at a time, hang up at once or answer 503 and close.

    Every connection carries at most one request (503s say `Connection: close`),
    so the number of connections is the number of attempts a client made.
    """

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepted = 0
        self._probes = 0
        self._thread = threading.Thread(target=self._serve, name="dead-endpoint", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                self._accepted += 1
                if self.mode == "503" and _read_request_head(conn):
                    conn.sendall(_UNAVAILABLE)

    def connections(self) -> int:
        """Connections clients made so far, counted once every one of them has been served.

        A probe connection queues behind all earlier ones (the listener accepts
        in order); when the listener has closed it, it has accepted every
        connection made before it.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as probe:
            probe.shutdown(socket.SHUT_WR)
            while probe.recv(4096):
                pass
        self._probes += 1
        return self._accepted - self._probes

    def close(self) -> None:
        """Stop listening (shutdown wakes the accept() that close alone would leave blocked)."""
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=30)

    def __enter__(self) -> DeadEndpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_request_head(conn: socket.socket) -> bool:
    """Read up to the end of the request's headers; False if the peer sent none."""
    conn.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
    return True
