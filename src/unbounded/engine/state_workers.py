"""The user functions of stateful operators in worker processes, as Spark runs a Python
worker per task.

``applyInPandasWithState`` calls the user's function once per key; under the GIL one
process runs one call at a time however many state partitions a batch has. A state
partition's calls depend on nothing but its own rows and state, so a large partition is
shipped to a worker process as one job (a module-level function and a picklable
argument: Arrow tables travel as IPC streams, ``ShipsArrow``), and the partitions of a
batch run in as many processes as there are cores. The process that holds the
partition's stores (the driver, or its Ray state actor, which starts no workers: Ray
already spreads the actors) keeps everything durable: a job only computes.

A worker is a child interpreter (``python -m unbounded.engine.state_workers``, never a
fork: Polars' threads do not survive one) started on first use and reused. Protocol, one
pickle (protocol 5) after another on the child's stdin and stdout: the child first writes
``"ready"``; for each job ``(function, argument)`` it writes ``("ok", result)`` or
``("error", exception)`` (the exception as cloudpickle bytes, so a class from the user's
script travels by value). The child points its fd 1 at stderr, so a ``print`` in user code
cannot corrupt the protocol, and exits when its stdin closes (the driver stopped or died).

A worker that dies mid-job fails the job with ``StateWorkerLost`` and is replaced for the
next one; the batch fails as Spark's does when its Python worker crashes, and a restarted
query runs it again from the checkpoint. Whether a job ships is decided by its size only
(``MIN_CALLS_PER_WORKER``): below it the round trip costs more than it saves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

import cloudpickle
import pyarrow as pa

from unbounded.engine.worker_pools import (
    configured_workers,
    pool_of_this_process,
    usable_cores,
)
from unbounded.errors import UnboundedError

__all__ = ["MIN_CALLS_PER_WORKER", "ShipsArrow", "StateWorkerLost", "StateWorkerPool",
           "main", "run_job", "worker_pool"]

logger = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")

# A job with fewer user calls runs on the calling thread. A round trip costs 0.1-0.5 ms
# (63 us for an empty job, plus the tables' IPC), a call 20 us (a no-op function) to
# 200 us: from 256 calls on, shipping costs under a tenth of what the job takes.
MIN_CALLS_PER_WORKER = 256
_WORKERS_ENV = "UNBOUNDED_STATE_WORKERS"


class StateWorkerLost(UnboundedError, RuntimeError):
    """The worker process running a state partition's user calls exited mid-job (Spark:
    "Python worker exited unexpectedly"). Defined here, not in ``errors.py`` (another
    engineer's file this session): it moves there with the next edit of that file."""

    error_class = "PYTHON_WORKER_EXITED"


def run_job(function: Callable[[A], R], argument: A, calls: int) -> R:
    """``function(argument)``: in a worker process when the job makes at least
    ``MIN_CALLS_PER_WORKER`` user calls and workers may run, else on this thread.
    ``function`` must be importable by name (module level); its errors are raised here."""
    pool = worker_pool()
    if pool.size == 0 or calls < MIN_CALLS_PER_WORKER:
        return function(argument)
    return pool.run(function, argument)


class ShipsArrow:
    """A mix-in for a job's argument or result: its ``pa.Table`` fields pickle as Arrow
    IPC streams (a slice ships only its own bytes) and the rest as usual. Works on frozen
    dataclasses."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: _Ipc.of(v) if isinstance(v, pa.Table) else v for k, v in vars(self).items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v.table() if isinstance(v, _Ipc) else v)


class _Ipc:
    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def of(cls, table: pa.Table) -> _Ipc:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return cls(sink.getvalue().to_pybytes())

    def table(self) -> pa.Table:
        return pa.ipc.open_stream(pa.py_buffer(self.data)).read_all()


# ---- the parent's side ---------------------------------------------------------------
class _Worker:
    """One child interpreter; used by one thread at a time (it is taken from the pool)."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unbounded.engine.state_workers"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_child: IO[bytes] = self.process.stdin
        self.from_child: IO[bytes] = self.process.stdout
        self.ready = False

    def call(self, function: Callable[[A], R], argument: A) -> R:
        """The job's result, its own error, or ``StateWorkerLost``."""
        try:
            self._wait_ready()
            pickle.dump((function, argument), self.to_child, protocol=5)
            self.to_child.flush()
            status, payload = pickle.load(self.from_child)
        except (OSError, EOFError, pickle.UnpicklingError) as error:
            self.stop()
            raise StateWorkerLost(
                "[PYTHON_WORKER_EXITED] Python worker exited unexpectedly (crashed) with exit "
                f"code {self.process.returncode} while running {function.__name__} "
                f"({type(error).__name__}). A streaming query restarted from its checkpoint "
                "runs the batch again.") from error
        if status == "error":
            raise _received(payload)
        result: R = payload
        return result

    def _wait_ready(self) -> None:
        if not self.ready:
            if pickle.load(self.from_child) != "ready":
                raise pickle.UnpicklingError("the worker did not start")
            self.ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Close the pipes (the child exits at end of input) and reap the child."""
        for stream in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class StateWorkerPool:
    """Up to ``size`` worker processes of this interpreter, started as jobs need them
    (all of them start at the first job, so the next ones need not wait) and reused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def run(self, function: Callable[[A], R], argument: A) -> R:
        """``function(argument)`` in the next idle worker (waiting for one), or on this
        thread when no worker process can start."""
        worker = self._take()
        if worker is None:
            return function(argument)
        try:
            return worker.call(function, argument)
        finally:
            self._give_back(worker)

    def _take(self) -> _Worker | None:
        with self._lock:
            while len(self._all) < self.size:
                try:
                    worker = _Worker()
                except OSError as error:  # no interpreter to start: calls stay here
                    logger.warning("State worker processes could not start (%s).", error)
                    self.size = len(self._all)
                    break
                self._all.append(worker)
                self._idle.put(worker)
            if not self._all:
                return None
        return self._idle.get()

    def _give_back(self, worker: _Worker) -> None:
        if worker.alive():
            self._idle.put(worker)
            return
        with self._lock:
            self._all.remove(worker)  # the next job starts a new one

    def stop(self) -> None:
        """Stop every worker (at exit)."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


_POOL: list[StateWorkerPool] = []


def worker_pool() -> StateWorkerPool:
    """This process's pool (a forked child gets its own: pipes do not survive a fork)."""
    return pool_of_this_process(_POOL, lambda: StateWorkerPool(_pool_size()))


def _pool_size() -> int:
    """``UNBOUNDED_STATE_WORKERS`` if set, else the usable cores (the driver thread that
    ships a job waits for it); none in a Ray worker process."""
    return configured_workers(_WORKERS_ENV, usable_cores())


# ---- the child's side ------------------------------------------------------------------
def main() -> None:
    """The worker loop: read a job, run it, write the reply, until stdin closes (or the
    driver is gone when the reply is written). Ctrl-C in a terminal reaches the whole
    process group: the driver handles it, and its exit closes our stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the user's prints go to stderr, never into the protocol
    jobs = sys.stdin.buffer
    with contextlib.suppress(BrokenPipeError, EOFError):
        _reply(replies, "ready")
        while True:
            function, argument = pickle.load(jobs)
            try:
                reply: tuple[str, Any] = ("ok", function(argument))
            except Exception as error:
                reply = ("error", _sendable(error))
            _reply(replies, reply)


def _sendable(error: Exception) -> bytes:
    """``error`` pickled by cloudpickle, else a RuntimeError with its type and text."""
    try:
        return bytes(cloudpickle.dumps(error))
    except Exception:
        return bytes(cloudpickle.dumps(RuntimeError(f"{type(error).__name__}: {error}")))


def _received(pickled: bytes) -> Exception:
    try:
        error = pickle.loads(pickled)
    except Exception as failure:  # e.g. a class the driver cannot import
        return RuntimeError(f"A worker's error could not be read: {failure}")
    return error if isinstance(error, Exception) else RuntimeError(repr(error))


def _reply(stream: IO[bytes], reply: tuple[str, Any] | str) -> None:
    try:
        data = pickle.dumps(reply, protocol=5)
    except Exception as error:  # a result that does not pickle fails the job, not the worker
        data = pickle.dumps(("error", _sendable(error)), protocol=5)
    stream.write(data)
    stream.flush()


if __name__ == "__main__":
    main()
