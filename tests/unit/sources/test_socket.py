"""The socket source: lines from a loopback server, released once committed."""

from __future__ import annotations

import socket
import time

import pytest

from unbounded.errors import AnalysisException
from unbounded.sources.base import SourceContext
from unbounded.sources.socket import SocketSource


def _rows(source, start, end):
    return [r for p in source.partitions(start, end) for r in p.read().to_pylist()]


def _wait_for(source, offset, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if source.latest_offset(None) is not None and source.latest_offset(None) >= offset:
            return
        time.sleep(0.01)
    raise AssertionError(f"offset {offset} not reached")


def test_lines_arrive_as_rows_and_are_released_when_committed():
    server = socket.create_server(("127.0.0.1", 0))
    ctx = SourceContext({"host": "127.0.0.1", "port": str(server.getsockname()[1]),
                         "includeTimestamp": "true"}, None, None)
    source = SocketSource("socket", ctx)
    conn, _ = server.accept()
    try:
        assert source.schema.names == ["value", "timestamp"]
        conn.sendall(b"one\ntwo\r\nthr")
        _wait_for(source, 1)
        conn.sendall(b"ee\n")
        _wait_for(source, 2)
        rows = _rows(source, None, 2)
        assert [r["value"] for r in rows] == ["one", "two", "three"]
        assert all(r["timestamp"] is not None for r in rows)
        source.commit(1)
        assert [r["value"] for r in _rows(source, 1, 2)] == ["three"]
        with pytest.raises(AnalysisException, match="not fault tolerant"):
            _rows(source, None, 2)
    finally:
        source.stop()
        conn.close()
        server.close()


def test_missing_or_unreachable_address_is_reported_before_start():
    with pytest.raises(AnalysisException, match="needs options 'host' and 'port'"):
        SocketSource.infer_schema("socket", SourceContext({}, None, None))
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(AnalysisException, match="Cannot connect"):
        SocketSource("socket", SourceContext({"host": "127.0.0.1", "port": str(port)},
                                             None, None))
