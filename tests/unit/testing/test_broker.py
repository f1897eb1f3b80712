"""The test broker's start-up check: the port that answers must be held by our broker
process, not by one another test run started on the same port."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from unbounded.testing.broker import _listens

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_listening_socket_is_found_held_by_its_own_process() -> None:
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        port = mine.getsockname()[1]
        assert _listens(os.getpid(), port)
        assert not _listens(os.getppid(), port)


def test_a_port_nobody_listens_on_is_held_by_no_one() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening
        assert not _listens(os.getpid(), bound.getsockname()[1])
