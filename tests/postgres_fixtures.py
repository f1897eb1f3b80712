"""The tests' private PostgreSQL server (``unbounded.testing.postgres``) as fixtures.

``postgres_server`` (session scope) starts one server on a free loopback port from
Debian's ``postgresql`` package, installed first when missing and the tests run as root
with ``apt-get`` (CI on a clean machine); otherwise the tests are skipped with the
reason. It is stopped by its PID at the end. ``postgres_db`` gives each test a fresh
database on it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from unbounded.testing.postgres import PASSWORD, PostgresServer, server_binaries, start_server

__all__ = ["PASSWORD", "PostgresServer", "postgres_bin_dir", "postgres_db",
           "postgres_server"]


def postgres_bin_dir() -> str:
    """The server's binaries, installed when missing and possible; else the test skips."""
    found = server_binaries()
    if found is None:
        pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin and "
                    "not installable here (needs root and apt-get): apt-get install "
                    "postgresql")
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the session, stopped by PID at the end."""
    pytest.importorskip("psycopg")
    server = start_server(postgres_bin_dir())
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.root, ignore_errors=True)


_DATABASES = iter(range(1_000_000))


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server, for one test."""
    name = f"test_{os.getpid()}_{next(_DATABASES)}"
    postgres_server.create_database(name)
    return name
