"""The ``socket`` source: UTF-8 lines from a TCP server, for demos and tests.

Not replayable (as in Spark): lines live only in this process's buffer, so lines that
arrived but were not committed before a crash are lost. Never use it where
exactly-once matters.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.plan.types import StringType, StructField, StructType, TimestampType
from unbounded.sources.base import InputPartition, Offset, SourceContext, parse_bool_option

__all__ = ["SocketSource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketPartition:
    lines: tuple[str, ...]
    arrivals_us: tuple[int, ...]
    include_timestamp: bool

    def read(self) -> pa.Table:
        cols = {"value": pa.array(self.lines, pa.large_string())}
        if self.include_timestamp:
            cols["timestamp"] = pa.array(self.arrivals_us, pa.timestamp("us", tz="UTC"))
        return pa.table(cols)


class SocketSource:
    def __init__(self, fmt: str, ctx: SourceContext) -> None:
        self.host, self.port = self._address(ctx)
        self.include_timestamp = parse_bool_option(ctx, "includeTimestamp", False)
        log.warning("The socket source is not fault tolerant: lines received but not "
                    "committed are lost if the query fails.")
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=10)
        except OSError as e:
            raise AnalysisException(
                f"Cannot connect to the socket source at {self.host}:{self.port}: {e}. "
                "Start the server first (e.g. `nc -lk PORT`).") from e
        self.sock.settimeout(0.5)
        self.lines: list[str] = []
        self.arrivals: list[int] = []
        self.dropped = 0  # lines committed and released before index 0 of self.lines
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read_loop, daemon=True,
                                       name=f"socket-source-{self.port}")
        self.reader.start()

    @staticmethod
    def _address(ctx: SourceContext) -> tuple[str, int]:
        host, port = ctx.option("host"), ctx.option("port")
        if not host or not port:
            raise AnalysisException(
                "The socket source needs options 'host' and 'port', e.g. "
                ".option('host', 'localhost').option('port', 9999).")
        try:
            return host, int(port)
        except ValueError:
            raise AnalysisException(f"Option 'port' must be a number, got {port!r}.") from None

    @classmethod
    def infer_schema(cls, fmt: str, ctx: SourceContext) -> StructType:
        cls._address(ctx)
        fields = [StructField("value", StringType())]
        if parse_bool_option(ctx, "includeTimestamp", False):
            fields.append(StructField("timestamp", TimestampType()))
        return StructType(fields)

    def _read_loop(self) -> None:
        pending = b""
        while not self.closed.is_set():
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            now_us = int(time.time() * 1_000_000)
            with self.lock:
                for raw in complete:
                    self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\r"))
                    self.arrivals.append(now_us)

    @property
    def schema(self) -> StructType:
        return self.infer_schema("socket", SourceContext(
            {"host": self.host, "port": str(self.port),
             "includeTimestamp": str(self.include_timestamp).lower()}, None, None))

    @property
    def description(self) -> str:
        return f"TextSocketV2[host: {self.host}, port: {self.port}]"

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset:
        with self.lock:
            total = self.dropped + len(self.lines)
        return None if total == 0 else total - 1

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        first = 0 if start is None else int(start) + 1
        with self.lock:
            lo, hi = first - self.dropped, int(end) + 1 - self.dropped
            if lo < 0:
                raise AnalysisException(
                    "The socket source cannot replay lines it already released; it is not "
                    "fault tolerant. Start the query with a new checkpoint.")
            lines, arrivals = tuple(self.lines[lo:hi]), tuple(self.arrivals[lo:hi])
        return [SocketPartition(lines, arrivals, self.include_timestamp)]

    def commit(self, end: Offset) -> None:
        with self.lock:
            release = int(end) + 1 - self.dropped
            if release > 0:
                del self.lines[:release]
                del self.arrivals[:release]
                self.dropped += release

    def stop(self) -> None:
        self.closed.set()
        self.sock.close()
