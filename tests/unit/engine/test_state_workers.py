"""State partitions' user calls in worker processes (engine/state_workers.py): a job runs
in a child interpreter when it is large enough, its errors come back as they were raised,
and a worker that dies fails its job and is replaced for the next."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from unbounded.engine import state_workers
from unbounded.engine.state_workers import ShipsArrow, StateWorkerLost, StateWorkerPool


class Refused(ValueError):
    """An error class of the test module: it must come back with its type."""


def pid_plus(n: int) -> tuple[int, int]:
    return os.getpid(), n + 1


def refuse(n: int) -> None:
    raise Refused(f"no {n}")


def die(_: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Job(ShipsArrow):
    rows: pa.Table
    note: str


def double(job: Job) -> Job:
    return Job(job.rows.append_column("y", pc.multiply(job.rows["x"], 2)), job.note)


@pytest.fixture(scope="module")
def pool() -> Iterator[StateWorkerPool]:
    started = StateWorkerPool(1)
    yield started
    started.stop()


def test_a_job_runs_in_a_worker_process_and_returns_its_result(pool):
    pid, answer = pool.run(pid_plus, 41)
    assert answer == 42 and pid != os.getpid()
    assert pool.run(pid_plus, 1) == (pid, 2)  # the same worker, reused


def test_tables_travel_as_arrow_and_come_back_equal(pool):
    rows = pa.table({"x": list(range(10)), "s": [str(i) for i in range(10)]}).slice(3, 4)
    result = pool.run(double, Job(rows, "n"))
    assert result.rows.to_pydict() == {"x": [3, 4, 5, 6], "s": ["3", "4", "5", "6"],
                                       "y": [6, 8, 10, 12]}
    assert result.note == "n"


def test_a_sliced_table_ships_only_its_own_rows():
    big = pa.table({"x": pa.array(range(100_000), pa.int64())})
    small, whole = pickle.dumps(Job(big.slice(0, 10), "")), pickle.dumps(Job(big, ""))
    assert len(small) < 2_000 < 800_000 < len(whole)


def test_the_jobs_error_is_raised_with_its_type_and_message(pool):
    with pytest.raises(Refused, match="no 3"):
        pool.run(refuse, 3)
    assert pool.run(pid_plus, 0)[1] == 1  # the worker survives its job's error


def test_a_worker_that_dies_fails_its_job_and_the_next_job_gets_a_new_one(pool):
    before, _ = pool.run(pid_plus, 0)
    with pytest.raises(StateWorkerLost, match=r"exited unexpectedly \(crashed\) with exit "
                                              r"code -9 while running die"):
        pool.run(die, 0)
    after, answer = pool.run(pid_plus, 0)
    assert answer == 1 and after not in (before, os.getpid())


def test_a_small_job_runs_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(state_workers, "MIN_CALLS_PER_WORKER", 100)
    assert state_workers.run_job(pid_plus, 1, calls=99) == (os.getpid(), 2)


def test_no_workers_when_configured_to_zero(monkeypatch):
    monkeypatch.setenv("UNBOUNDED_STATE_WORKERS", "0")
    assert state_workers._pool_size() == 0
    monkeypatch.setenv("UNBOUNDED_STATE_WORKERS", "3")
    assert state_workers._pool_size() == 3


def test_a_job_runs_on_the_calling_thread_when_no_worker_can_start(monkeypatch):
    def cannot_start() -> None:
        raise OSError("no interpreter")

    monkeypatch.setattr(state_workers, "_Worker", cannot_start)
    pool = StateWorkerPool(2)
    assert pool.run(pid_plus, 1) == (os.getpid(), 2)
    assert pool.size == 0
