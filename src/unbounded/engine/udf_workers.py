"""Row UDFs over row ranges in worker processes, as PySpark runs Python UDFs.

A row UDF is one Python call per row, bound by the GIL; a large batch is cut into row
ranges that the calling thread and the idle worker processes take in order until none is
left (a worker still starting joins late; a slower one takes fewer), and the results are
put back together in row order. A worker is a child interpreter
(``python -m unbounded.engine.udf_workers``, never a fork: Polars' threads do not survive
one, and a spawned ``multiprocessing`` child would re-run the user's unguarded script)
started the first time a batch is large enough, reused for every later batch and UDF.

Protocol, one pickle (protocol 5) after another on the child's stdin and stdout:
the child first writes ``"ready"``; then for each task ``(pickled_function, source, rows,
return_type, arrow, target)`` it writes ``("ok",)`` once the results are in the file ``target``,
``("row", index, error)`` when the function raised on the row at ``index`` of the range,
or ``("batch", error)`` (errors as cloudpickle bytes). Arguments (``source``) and results
(``target``) are Arrow IPC files in a folder of this worker in shared memory
(``/dev/shm`` where it has room, else the temp folder), which carry only a slice's own
bytes and are read memory-mapped; only the small messages cross the pipes (a 10 MB
payload read from a pipe in 64 KiB pieces made the calling thread take the GIL back from
the UDF loop for each: 0.1-0.4 s per range, as long as its calls). The parent queues a
worker's next task before collecting its result, so a worker never waits for the parent
between ranges. The child points its fd 1 at stderr, so a ``print`` in a UDF cannot
corrupt the protocol.

Nothing here is durable: a worker that dies mid-task is dropped and its range is run by
the calling thread, so the batch's answer does not depend on it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import cloudpickle
import pyarrow as pa

from unbounded.engine.row_udfs import RowFailure, load_function, rows_to_arrow
from unbounded.engine.worker_pools import (
    configured_workers,
    pool_of_this_process,
    usable_cores,
)
from unbounded.plan import types as T

__all__ = ["MIN_ROWS_PER_PROCESS", "RANGES_PER_PROCESS", "UdfWorkerPool", "main",
           "run_row_udf", "worker_pool"]

logger = logging.getLogger(__name__)

# Below this many rows per range, shipping the range costs more than the calls it saves.
MIN_ROWS_PER_PROCESS = 100_000
# A range is at most 1 / (RANGES_PER_PROCESS x processes) of the rows left (guided
# self-scheduling): large ranges first, small ones last, so no core idles long at the end.
RANGES_PER_PROCESS = 2
_IN_FLIGHT = 2  # tasks queued on a worker: its next range waits while it runs one
_IDLE_POLL_S = 0.02  # how often a lending thread looks for an idle worker
_WORKERS_ENV = "UNBOUNDED_UDF_WORKERS"


def run_row_udf(pickled: bytes, columns: list[pa.Array], n: int,
                return_type: T.DataType, arrow: bool = False) -> pa.Array:
    """The row UDF ``pickled`` over ``n`` rows: shared with the worker processes when the
    batch is large, else on this thread. Raises ``RowFailure`` (batch-wide row index)
    or the function's own exception, as a local run does. ``arrow``: a ``useArrow`` UDF
    (``rows_to_arrow``)."""
    pool = worker_pool()
    if pool.size == 0 or not columns or n < 2 * MIN_ROWS_PER_PROCESS:
        return rows_to_arrow(load_function(pickled), columns, n, return_type, arrow)
    return _SharedRun(pool, pickled, columns, (return_type, arrow), n).run()


@dataclass(frozen=True)
class _Range:
    start: int
    stop: int


def _ranges(n: int, processes: int) -> list[_Range]:
    """Ranges shrinking with the rows left, none under ``MIN_ROWS_PER_PROCESS`` rows."""
    bounds = [0]
    while bounds[-1] < n:
        size = max((n - bounds[-1]) // (RANGES_PER_PROCESS * processes), MIN_ROWS_PER_PROCESS)
        bounds.append(min(bounds[-1] + size, n))
    return [_Range(a, b) for a, b in itertools.pairwise(bounds)]


class _SharedRun:
    """One batch cut into ranges that this thread and every worker that is, or becomes,
    idle take in row order until none is left: a worker still starting joins late, a
    slow one takes fewer. After a failure no range is handed out; the earliest failing
    row among the ranges taken is reported (later ranges hold later rows)."""

    def __init__(self, pool: UdfWorkerPool, pickled: bytes, columns: list[pa.Array],
                 returns: tuple[T.DataType, bool], n: int) -> None:
        self.pool, self.pickled, self.columns = pool, pickled, columns
        self.returns = returns  # the return type, and whether it is a useArrow UDF
        self.ranges = _ranges(n, pool.size + 1)
        self.outcomes: dict[int, _Outcome] = {}
        self._next = 0
        self._lock = threading.Lock()

    def run(self) -> pa.Array:
        helpers = self.pool.lend(self._with_worker, self.has_work)
        while (i := self._take()) is not None:
            self._record(i, self._here(self.ranges[i]))
        for helper in helpers:
            helper.result()
        return self._combine()

    def has_work(self) -> bool:
        with self._lock:
            return self._next < len(self.ranges) and not self._failed()

    def _failed(self) -> bool:
        return any(o.error is not None for o in self.outcomes.values())

    def _take(self) -> int | None:
        with self._lock:
            if self._next == len(self.ranges) or self._failed():
                return None
            self._next += 1
            return self._next - 1

    def _record(self, index: int, outcome: _Outcome) -> None:
        with self._lock:
            self.outcomes[index] = outcome

    def _with_worker(self, worker: _Worker) -> None:
        """Ranges for ``worker``, ``_IN_FLIGHT`` queued at a time; if it dies, the ranges
        it held run here."""
        queued: collections.deque[int] = collections.deque()
        try:
            while self._queue_more(worker, queued):
                self._record(queued[0], worker.receive())
                queued.popleft()
        except (OSError, EOFError, pickle.UnpicklingError) as error:
            logger.warning("A UDF worker process failed (%s); running its rows here.", error)
            worker.stop()
            for i in queued:
                self._record(i, self._here(self.ranges[i]))

    def _queue_more(self, worker: _Worker, queued: collections.deque[int]) -> bool:
        """Send ranges until ``_IN_FLIGHT`` are queued; whether one awaits its result."""
        while len(queued) < _IN_FLIGHT and (i := self._take()) is not None:
            queued.append(i)
            worker.send(self.pickled, self._slice(self.ranges[i]), self.returns)
        return bool(queued)

    def _here(self, rows: _Range) -> _Outcome:
        try:
            function = load_function(self.pickled)
            return _Outcome(rows_to_arrow(function, self._slice(rows), rows.stop - rows.start,
                                          *self.returns))
        except Exception as error:
            return _Outcome(None, error)

    def _slice(self, rows: _Range) -> list[pa.Array]:
        return [c.slice(rows.start, rows.stop - rows.start) for c in self.columns]

    def _combine(self) -> pa.Array:
        for index in sorted(self.outcomes):
            error, start = self.outcomes[index].error, self.ranges[index].start
            if isinstance(error, RowFailure):
                raise RowFailure(start + error.index, error.error)
            if error is not None:
                raise error
        return pa.concat_arrays([self.outcomes[i].array for i in range(len(self.ranges))])


@dataclass(frozen=True)
class _Outcome:
    array: pa.Array | None
    error: Exception | None = None


# ---- the parent's side ---------------------------------------------------------------
class _Worker:
    """One child interpreter; used by one thread at a time (it is taken from the pool)."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unbounded.engine.udf_workers"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_child: IO[bytes] = self.process.stdin
        self.from_child: IO[bytes] = self.process.stdout
        self.folder = tempfile.mkdtemp(prefix="unbounded-udf-", dir=_exchange_root())
        self._names = itertools.count()
        self._queued: collections.deque[tuple[str, str]] = collections.deque()

    def wait_ready(self) -> bool:
        try:
            return bool(pickle.load(self.from_child) == "ready")
        except (OSError, EOFError, pickle.UnpicklingError):
            return False

    def send(self, pickled: bytes, columns: list[pa.Array],
             returns: tuple[T.DataType, bool]) -> None:
        """Queue a task: its arguments go to a file, the message to the child."""
        task = next(self._names)
        source, target = (os.path.join(self.folder, f"{task}.{kind}") for kind in ("in", "out"))
        self._queued.append((source, target))
        _write_ipc(source, columns)
        pickle.dump((pickled, source, len(columns[0]), *returns, target), self.to_child,
                    protocol=5)
        self.to_child.flush()

    def receive(self) -> _Outcome:
        """The outcome of the oldest queued task."""
        source, target = self._queued.popleft()
        try:
            reply = pickle.load(self.from_child)
            if reply[0] == "ok":
                return _Outcome(_read_ipc(target)[0])
            if reply[0] == "row":
                return _Outcome(None, RowFailure(reply[1], _received(reply[2])))
            return _Outcome(None, _received(reply[1]))
        finally:
            for path in (source, target):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Close the pipes (the child exits at end of input), reap the child and remove
        its folder."""
        for stream in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class UdfWorkerPool:
    """The worker processes of this interpreter; started in the background on first use:
    the first large batch starts on its own thread and shares its ranges with the
    workers as they come up."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._started = False
        self._threads = ThreadPoolExecutor(max_workers=max(size, 1),
                                           thread_name_prefix="udf-worker-io")

    def lend(self, work: Callable[[_Worker], None], wanted: Callable[[], bool]
             ) -> list[Future[None]]:
        """One I/O thread per worker slot, each waiting (while ``wanted()``) for an idle
        worker, then running ``work(worker)`` with it; the pool starts on first use."""
        self._start_once()
        return [self._threads.submit(self._lend_one, work, wanted) for _ in range(self.size)]

    def _lend_one(self, work: Callable[[_Worker], None], wanted: Callable[[], bool]) -> None:
        while wanted():
            try:
                worker = self._idle.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                continue
            try:
                work(worker)
            finally:
                if worker.alive():
                    self._idle.put(worker)
            return

    def wait_ready(self, timeout: float) -> bool:
        """Start the workers and wait until every one answered (tests, benchmarks)."""
        self._start_once()
        return self._ready.wait(timeout)

    def _start_once(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._start, name="udf-worker-start", daemon=True).start()

    def _start(self) -> None:
        try:
            for _ in range(self.size):
                worker = _Worker()
                self._all.append(worker)
                if worker.wait_ready():
                    self._idle.put(worker)
        except OSError as error:  # no interpreter to start: UDFs run on their threads
            logger.warning("UDF worker processes could not start (%s).", error)
        finally:
            self._ready.set()

    def cpu_seconds(self) -> float | None:
        """CPU time the live workers have used (Linux ``/proc``; None elsewhere): on a
        loaded machine a benchmark's CPU time moves less than its wall time."""
        try:
            return sum(_cpu_seconds(w.process.pid) for w in self._all if w.alive())
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop every worker (at exit; a stopped pool is replaced on next use)."""
        for worker in self._all:
            worker.stop()
        self._threads.shutdown(wait=False)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (fields 14 and 15 of its stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_POOL: list[UdfWorkerPool] = []


def worker_pool() -> UdfWorkerPool:
    """This process's pool (a forked child gets its own: pipes do not survive a fork)."""
    return pool_of_this_process(_POOL, lambda: UdfWorkerPool(_pool_size()))


def _pool_size() -> int:
    """``UNBOUNDED_UDF_WORKERS`` if set, else one less than the usable cores (the calling
    thread runs ranges too); none in a Ray worker process."""
    return configured_workers(_WORKERS_ENV, usable_cores() - 1)


# ---- Arrow IPC files in shared memory -------------------------------------------------
_SHARED_MEMORY = "/dev/shm"
_MIN_SHARED_BYTES = 1 << 30  # a container's /dev/shm is often 64 MiB: too small for ranges


def _exchange_root() -> str | None:
    """``/dev/shm`` when it exists with room for a few ranges, else the temp folder
    (None: files in the page cache, written back only under memory pressure)."""
    try:
        stats = os.statvfs(_SHARED_MEMORY)
    except (OSError, AttributeError):  # no /dev/shm, or no statvfs (Windows)
        return None
    return _SHARED_MEMORY if stats.f_bavail * stats.f_frsize >= _MIN_SHARED_BYTES else None


def _write_ipc(path: str, columns: list[pa.Array]) -> None:
    """``columns`` as an Arrow IPC file (a slice writes only its own rows)."""
    batch = pa.record_batch(columns, names=[f"_{i}" for i in range(len(columns))])
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


def _read_ipc(path: str) -> list[pa.Array]:
    """The columns of an Arrow IPC file, memory-mapped (they stay valid once the file is
    closed and removed)."""
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    return [c.combine_chunks() for c in table.columns]


# ---- the child's side ------------------------------------------------------------------
def main() -> None:
    """The worker loop: read a task, run it, write the reply, until stdin closes."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the user's prints go to stderr, never into the protocol
    tasks = sys.stdin.buffer
    _reply(replies, "ready")
    while True:
        try:
            pickled, source, rows, return_type, arrow, target = pickle.load(tasks)
        except EOFError:
            return
        _reply(replies, _serve(pickled, source, rows, (return_type, arrow), target))


def _serve(pickled: bytes, source: str, rows: int, returns: tuple[T.DataType, bool],
           target: str) -> tuple[Any, ...]:
    try:
        result = rows_to_arrow(load_function(pickled), _read_ipc(source), rows, *returns)
        _write_ipc(target, [result])
    except RowFailure as failure:
        return ("row", failure.index, _sendable(failure.error))
    except Exception as error:
        return ("batch", _sendable(error))
    return ("ok",)


def _sendable(error: Exception) -> bytes:
    """``error`` pickled by cloudpickle (a class defined in the user's script travels by
    value), else a RuntimeError with its type and text."""
    try:
        return bytes(cloudpickle.dumps(error))
    except Exception:
        return bytes(cloudpickle.dumps(RuntimeError(f"{type(error).__name__}: {error}")))


def _received(pickled: bytes) -> Exception:
    error = pickle.loads(pickled)
    return error if isinstance(error, Exception) else RuntimeError(repr(error))


def _reply(stream: IO[bytes], reply: object) -> None:
    pickle.dump(reply, stream, protocol=5)
    stream.flush()


if __name__ == "__main__":
    main()
