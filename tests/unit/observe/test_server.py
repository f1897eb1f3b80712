from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from unbounded.observe.server import Response, UiServer


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


@pytest.fixture
def server():
    srv = UiServer.start("127.0.0.1", 0)
    yield srv
    srv.close()


def test_a_registered_route_answers_and_an_unknown_path_is_404(server):
    server.add_route("/metrics/prometheus", lambda: Response(b"x 1\n", "text/plain"))
    assert _get(server.url + "/metrics/prometheus") == (200, b"x 1\n", "text/plain")
    assert _get(server.url + "/metrics/prometheus/?q=1")[0] == 200
    assert _get(server.url + "/nope")[0] == 404
    server.remove_route("/metrics/prometheus")
    assert _get(server.url + "/metrics/prometheus")[0] == 404


def test_a_failing_route_answers_500_and_the_server_keeps_serving(server):
    def broken() -> Response:
        raise RuntimeError("page bug")

    server.add_route("/bad", broken)
    server.add_route("/good", lambda: Response(b"ok"))
    assert _get(server.url + "/bad")[0] == 500
    assert _get(server.url + "/good")[:2] == (200, b"ok")


def test_a_taken_port_moves_to_the_next_free_one():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    try:
        srv = UiServer.start("127.0.0.1", taken, max_retries=16)
        try:
            assert taken < srv.port <= taken + 16
            assert srv.url == f"http://127.0.0.1:{srv.port}"
        finally:
            srv.close()
    finally:
        holder.close()


def test_no_free_port_within_the_retries_is_an_error_naming_the_setting():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(OSError, match=r"spark\.ui\.port"):
            UiServer.start("127.0.0.1", holder.getsockname()[1], max_retries=0)
    finally:
        holder.close()
