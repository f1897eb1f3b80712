"""kafka-python's selector and connection manager, as the wire reader and writer use them.

Both drive the network from their own thread only: nothing moves between calls, and a
wait is a poll of the selector. Closing also aborts transports still flushing to a
broker that stopped answering, so a paused broker never holds a socket open.
"""

from __future__ import annotations

import time
import warnings
import weakref
from typing import Any

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.net import KafkaConnectionManager, NetworkSelector

from unbounded._kafka.frames import FrameConnectionManager

__all__ = ["Connections"]


class Connections:
    """One selector and one connection manager (every broker of one cluster)."""

    def __init__(self, client_id: str, **manager_config: Any) -> None:
        self.net = NetworkSelector(client_id=client_id, slow_task_threshold_secs=0)
        self.manager = FrameConnectionManager(self.net, client_id=client_id, **manager_config)
        self._finalizer = weakref.finalize(self, _close, self.net, self.manager)

    @property
    def cluster(self) -> Any:
        return self.manager.cluster

    def send(self, request: Any, node: Any = None) -> Any:
        """A future of the response to ``request`` from broker ``node``."""
        return self.manager.send(request, node_id=node)

    def poll(self, seconds: float, future: Any = None) -> None:
        """Move the network for up to ``seconds``, returning early once ``future`` is done."""
        self.net.poll(timeout_ms=max(0.0, seconds) * 1000, future=future)

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass while connections make progress (reconnects, metadata)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self.net.poll(timeout_ms=left * 1000)

    def close(self) -> None:
        self._finalizer()


def _close(net: NetworkSelector, manager: KafkaConnectionManager) -> None:
    manager.close()
    net.poll(timeout_ms=0)  # let the transports close their sockets
    for conn in list(manager._conns.values()):  # still flushing to a silent broker
        if conn.transport is not None:
            conn.transport.abort()
    net.close()
