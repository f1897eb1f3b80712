"""A private PostgreSQL server on loopback, from Debian's ``postgresql`` package.

The tests (``tests/postgres_fixtures.py``) and the benchmarks (``bench/postgres.py``)
start one the same way: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free
loopback port, stopped by its PID at the end. The binaries live in
``/usr/lib/postgresql/<version>/bin`` (not on PATH); :func:`server_binaries` installs the
package first when they are missing and we are root with ``apt-get`` (CI on a clean
machine). The server refuses to run as root, so as root every server command runs as the
unprivileged system user ``postgres`` (created when missing) through ``runuser``.

Password authentication (scram-sha-256) is on for TCP, so the tests can prove that the
password never leaks.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

__all__ = ["PASSWORD", "PostgresServer", "server_binaries", "start_server"]

PASSWORD = "pw-S3cr3t-7f2b9c"
SERVER_USER = "postgres"
_INSTALL_TIMEOUT_S = 240  # each apt-get step


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def _install_package() -> str | None:
    """``apt-get install postgresql`` when root on a Debian-like machine (CI).

    Test processes running in parallel (pytest-xdist workers) take turns on a lock file:
    apt-get's own lock would fail the second one, which then finds the binaries installed
    by the first."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(os.path.join(tempfile.gettempdir(), "unbounded-postgres-install.lock"),
              "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # bounded by the other holder's apt-get timeouts
        try:
            if (found := _bin_dir()) is not None:
                return found
            for cmd in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                         "postgresql"]):
                subprocess.run(cmd, env=env, check=False, capture_output=True,
                               timeout=_INSTALL_TIMEOUT_S)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _bin_dir()


def server_binaries() -> str | None:
    """The folder of ``initdb``/``pg_ctl``, installing the package when missing and
    possible; None when neither (the caller skips, saying so)."""
    return _bin_dir() or _install_package()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        # check=False: a parallel test process may have created the account meanwhile;
        # getpwnam below raises if neither did
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                        SERVER_USER], check=False, capture_output=True)
        return pwd.getpwnam(SERVER_USER)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class PostgresServer:
    """One running server: its folder, port and superuser login."""

    bin_dir: str
    root: str
    port: int
    account: pwd.struct_passwd | None
    user: str = "postgres"
    password: str = PASSWORD

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def log_file(self) -> str:
        return os.path.join(self.root, "server.log")

    def jdbc_url(self, database: str = "postgres") -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} dbname={database} user={self.user} "
                f"password={self.password} connect_timeout=5")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A server binary run as the server's account."""
        cmd = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        if self.account is not None:
            cmd = ["runuser", "-u", self.account.pw_name, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.root)

    def init(self) -> None:
        pwfile = os.path.join(self.root, "pwfile")
        with open(pwfile, "w") as out:
            out.write(self.password + "\n")
        self._give_to_account(self.root, pwfile)
        done = self.run("initdb", "-D", self.data_dir, "-U", self.user, "--pwfile", pwfile,
                        "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                        "-E", "UTF8", "--locale=C")
        os.unlink(pwfile)
        _check(done, "initdb")

    def _options(self) -> str:
        return (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories='{self.root}' -c fsync=off "
                "-c full_page_writes=off -c max_connections=40")

    def start(self) -> None:
        done = self.run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o",
                        self._options(), "-w", "-t", "60", "start")
        _check(done, "pg_ctl start", self.server_log())

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server comes back."""
        done = self.run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o",
                        self._options(), "-m", "fast", "-w", "-t", "60", "restart")
        _check(done, "pg_ctl restart", self.server_log())

    def stop_server(self) -> None:
        """``pg_ctl stop -m fast`` (the server can be started again)."""
        _check(self.run("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"),
               "pg_ctl stop")

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """Stop the server by its PID (fast shutdown, SIGKILL if it lingers)."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def server_log(self) -> str:
        try:
            with open(self.log_file) as f:
                return f.read()
        except OSError:
            return ""

    def _give_to_account(self, *paths: str) -> None:
        if self.account is not None:
            for path in paths:
                os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def _check(done: subprocess.CompletedProcess[str], what: str, log: str = "") -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): "
                           f"{(done.stderr + log).strip()[-2000:]}")


def start_server(bin_dir: str) -> PostgresServer:
    """Init and start a server from ``bin_dir`` (callers must ``kill()`` it and remove
    its ``root``)."""
    root = tempfile.mkdtemp(prefix="unbounded-pg-")
    server = PostgresServer(bin_dir, root, _free_port(), _server_account())
    try:
        server.init()
        server.start()
    except BaseException:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
