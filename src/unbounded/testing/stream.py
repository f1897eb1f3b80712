"""Test helpers that ship with the library, as Spark's testStream does.

``MemoryStream`` feeds rows to a query from the test; the recovery DSL (``AddData``,
``CheckAnswer``, ``StopStream``, ``StartStream``...) runs a query step by step and, on
failure, reports progress, sink contents and the plan.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unbounded.plan.logical import SourceSpec, StreamingRelation
from unbounded.plan.types import StructType, parse_ddl_schema
from unbounded.sources.memory import MemoryData, register_memory_data

if TYPE_CHECKING:
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame
    from unbounded.sql.streaming import StreamingQuery

__all__ = [
    "AddData",
    "CheckAnswer",
    "CheckLastBatch",
    "ExpectFailure",
    "MemoryStream",
    "ProcessAllAvailable",
    "StartStream",
    "StopStream",
    "run_stream_test",
]


class MemoryStream:
    """A replayable in-memory stream: ``stream.addData([...])`` then read ``toDF()``."""

    def __init__(self, schema: StructType | str, session: SparkSession) -> None:
        self.schema = parse_ddl_schema(schema) if isinstance(schema, str) else schema
        self.session = session
        self.id = uuid.uuid4().hex
        self.data = MemoryData(self.schema)
        register_memory_data(self.id, self.data)

    def addData(self, rows: Sequence[Any]) -> int:
        """Append one block of rows (tuples, dicts or an Arrow table); returns its offset."""
        from unbounded.sql.local_data import table_from_data

        table = rows if isinstance(rows, pa.Table) else table_from_data(list(rows), self.schema)
        return self.data.add(table.cast(self.schema.to_arrow_schema()))

    add_data = addData

    def toDF(self) -> DataFrame:
        from unbounded.sql.dataframe import DataFrame

        spec = SourceSpec("memory", (("id", self.id),), self.schema)
        return DataFrame(StreamingRelation(spec, self.schema), self.session)


# ---- the recovery DSL ------------------------------------------------------------------
@dataclass
class _State:
    start: Callable[[], StreamingQuery]
    sink_rows: Callable[[], list[tuple[Any, ...]]]
    query: StreamingQuery | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class AddData:
    stream: MemoryStream
    rows: Sequence[Any]

    def run(self, state: _State) -> None:
        self.stream.addData(self.rows)


@dataclass
class ProcessAllAvailable:
    timeout: float = 60.0

    def run(self, state: _State) -> None:
        assert state.query is not None, "no query is running"
        state.query.processAllAvailable(self.timeout)


@dataclass
class CheckAnswer:
    """The sink holds exactly these rows (as a multiset, any order)."""

    rows: Sequence[tuple[Any, ...]]
    timeout: float = 60.0

    def run(self, state: _State) -> None:
        if state.query is not None and state.query.isActive:
            state.query.processAllAvailable(self.timeout)
        actual = state.sink_rows()
        if Counter(map(tuple, actual)) != Counter(map(tuple, self.rows)):
            raise AssertionError(f"sink rows {sorted(actual, key=repr)} != expected "
                                 f"{sorted(self.rows, key=repr)}")


@dataclass
class CheckLastBatch:
    """The last progress reports exactly ``num_output_rows`` output rows."""

    num_output_rows: int

    def run(self, state: _State) -> None:
        assert state.query is not None
        state.query.processAllAvailable()
        progress = state.query.lastProgress
        assert progress is not None, "no batch has run"
        got = progress["sink"]["numOutputRows"]
        assert got == self.num_output_rows, f"last batch wrote {got} rows, not " \
            f"{self.num_output_rows}"


@dataclass
class StopStream:
    def run(self, state: _State) -> None:
        if state.query is not None:
            state.query.stop()


@dataclass
class StartStream:
    def run(self, state: _State) -> None:
        state.query = state.start()


@dataclass
class ExpectFailure:
    """The running query fails with an exception whose text contains ``message``."""

    message: str
    timeout: float = 60.0

    def run(self, state: _State) -> None:
        from unbounded.errors import StreamingQueryException

        assert state.query is not None
        try:
            state.query.awaitTermination(self.timeout)
        except StreamingQueryException as e:
            if self.message not in str(e):
                raise AssertionError(f"query failed with {e!s}, not {self.message!r}") from e
            return
        raise AssertionError(f"query did not fail with {self.message!r}")


def run_stream_test(start: Callable[[], StreamingQuery],
                    sink_rows: Callable[[], list[tuple[Any, ...]]],
                    *actions: Any) -> None:
    """Run ``actions`` in order against a query started by ``start``; on failure the
    message carries the step, the last progress, the sink rows and the plan."""
    state = _State(start, sink_rows)
    state.query = start()
    try:
        for step, action in enumerate(actions):
            try:
                action.run(state)
            except AssertionError as e:
                raise AssertionError(_report(state, step, action, e)) from e
    finally:
        if state.query is not None and state.query.isActive:
            state.query.stop()


def _report(state: _State, step: int, action: Any, error: AssertionError) -> str:
    q = state.query
    progress = q.lastProgress.prettyJson if q is not None and q.lastProgress else "none"
    return (f"step {step} ({action!r}) failed: {error}\n"
            f"== last progress ==\n{progress}\n== sink ==\n{state.sink_rows()!r}")
