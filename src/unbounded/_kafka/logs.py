"""librdkafka's own messages, through Python logging and rate-limited.

Left alone, librdkafka writes straight to stderr: an unreachable broker prints about 20
raw lines a second. Every confluent-kafka client this package creates gets
``KAFKA_CLIENT_LOG`` as its ``logger``: each (facility, client) pair passes one message
per interval, and the next one it passes says how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["KAFKA_CLIENT_LOG", "LIBRDKAFKA_LOGGER", "RateLimitedLog"]

LIBRDKAFKA_LOGGER = logging.getLogger("unbounded.kafka.librdkafka")


class RateLimitedLog:
    """A ``logger`` for confluent-kafka clients: it calls ``log(level, fmt, fac, name,
    message)``; at most one message per ``interval_s`` per facility and client passes."""

    def __init__(self, target: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target, self.interval_s, self.clock = target, interval_s, clock
        self._last: dict[tuple[str, ...], float] = {}
        self._held: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: object) -> None:
        held = self._admit(tuple(str(a) for a in args[:2]))
        if held is None:
            return
        suffix = f" ({held} similar messages suppressed)" if held else ""
        self.target.log(level, fmt + "%s", *args, suffix)

    def _admit(self, key: tuple[str, ...]) -> int | None:
        """How many messages of ``key`` were held back, or None to hold this one too."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


KAFKA_CLIENT_LOG = RateLimitedLog(LIBRDKAFKA_LOGGER)
