"""A loopback TCP proxy between the engine and the broker that cuts, stalls and slows
connections on demand (the broker advertises the proxy's port, so every client goes
through it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["Proxy"]

_RESET_ON_CLOSE = bytes([1, 0, 0, 0, 0, 0, 0, 0])  # struct linger {on, 0 s}: close sends RST


class Proxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target``; ``cut()`` resets every open
    connection, ``stall(s)`` stops forwarding for ``s`` seconds, ``delay_s`` slows each
    chunk."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.target = 0
        self.delay_s = 0.0
        self.cuts = 0
        self._stalled_until = 0.0
        self._armed: tuple[int, bool] | None = None
        self.fired = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self, target: int) -> None:
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                while time.monotonic() < self._stalled_until:
                    time.sleep(0.01)
                if self.delay_s:
                    time.sleep(self.delay_s)
                if self._trips(chunk):
                    return
                dst.sendall(chunk)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every open connection (RST), as a dropped network path does."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                s.close()
        self.cuts += 1

    def arm_cut(self, api_key: int, after: bool) -> None:
        """Cut every connection at the next request with ``api_key`` (26: EndTxn, the
        transaction commit): before the broker sees it, or once it is forwarded (the
        broker commits, the client never hears)."""
        self._armed = (api_key, after)

    def _trips(self, chunk: bytes) -> bool:
        """Whether ``chunk`` is the armed request (then the connections are cut and, if
        not ``after``, the request is dropped)."""
        armed = self._armed
        if armed is None or len(chunk) < 6 or int.from_bytes(chunk[4:6]) != armed[0]:
            return False
        self._armed, self.fired = None, self.fired + 1
        if armed[1]:
            threading.Timer(0.05, self.cut).start()
            return False
        self.cut()
        return True

    def stall(self, seconds: float) -> None:
        self._stalled_until = time.monotonic() + seconds

    def close(self) -> None:
        self._server.close()
        self.cut()
